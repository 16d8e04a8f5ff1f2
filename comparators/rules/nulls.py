"""NULL semantics: a NULL on one side standing for a default value on the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from comparators.sql import Params


@dataclass(frozen=True)
class NullAs:
    """NULL on one side equals `value` on the other (e.g. batch writes 0, stream NULL).

    Without this rule NULL equals only NULL, and NULL against a value is a mismatch
    counted as null-vs-value.

    >>> NullAs("0").explains("l", "r", "INT", Params())
    '((l IS NULL AND r = TRY_CAST($p0 AS INT)) OR (r IS NULL AND l = TRY_CAST($p0 AS INT)))'
    """

    value: str
    prefix: ClassVar[str] = "null"

    @classmethod
    def parse(cls, argument: str) -> NullAs:
        return cls(argument)

    def fits(self, family: str) -> bool:
        return True

    def explains(self, left: str, right: str, sql_type: str, params: Params) -> str:
        bound = params.bind(self.value)
        typed = f"TRY_CAST({bound} AS {sql_type})"
        return f"(({left} IS NULL AND {right} = {typed}) OR ({right} IS NULL AND {left} = {typed}))"

    def describe(self) -> str:
        return f"null:{self.value}"
