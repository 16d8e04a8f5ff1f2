"""Exact comparison: no difference is acceptable (the default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from comparators.sql import Params


@dataclass(frozen=True)
class Exact:
    """Values must be identical; DECIMALs compare exactly, NULL equals NULL.

    Use it to override a default tolerance for one column (`amount=exact`).

    >>> Exact().explains('"l"', '"r"', "DECIMAL(12,2)", Params())
    'FALSE'
    """

    prefix: ClassVar[str] = "exact"

    @classmethod
    def parse(cls, argument: str) -> Exact:
        return cls()

    def fits(self, family: str) -> bool:
        return True

    def explains(self, left: str, right: str, sql_type: str, params: Params) -> str:
        return "FALSE"

    def describe(self) -> str:
        return "exact"
