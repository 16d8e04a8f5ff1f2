"""Absolute numeric tolerance."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from comparators.rules._numbers import non_negative
from comparators.sql import Params


@dataclass(frozen=True)
class AbsoluteTolerance:
    """|left - right| <= tolerance, computed in the column's own type (exact for DECIMAL).

    >>> AbsoluteTolerance(Decimal("0.01")).explains('"l"', '"r"', "DECIMAL(12,2)", Params())
    '("l" IS NOT NULL AND "r" IS NOT NULL AND abs("l" - "r") <= $p0)'
    """

    tolerance: Decimal
    prefix: ClassVar[str] = "abs"

    @classmethod
    def parse(cls, argument: str) -> AbsoluteTolerance:
        return cls(non_negative(argument, cls.prefix))

    def fits(self, family: str) -> bool:
        return family in ("exact", "float")

    def explains(self, left: str, right: str, sql_type: str, params: Params) -> str:
        bound = params.bind(self.tolerance)
        return f"({left} IS NOT NULL AND {right} IS NOT NULL AND abs({left} - {right}) <= {bound})"

    def describe(self) -> str:
        return f"abs:{self.tolerance}"
