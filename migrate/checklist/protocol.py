"""The `Check` protocol: what every cutover check is, so the registry can hold and run them in order."""

from __future__ import annotations

from typing import Protocol

from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult


class Check(Protocol):
    """A cutover check: reads what it needs from the context and returns its result."""

    __name__: str

    def __call__(self, ctx: Context) -> CheckResult: ...
