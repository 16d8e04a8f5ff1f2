"""Absolute numeric tolerance."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from comparators.rules._numbers import as_decimal, is_float, non_negative
from comparators.sql import Params


@dataclass(frozen=True)
class AbsoluteTolerance:
    """|left - right| <= tolerance, exactly at the boundary for every storage type: in the
    column's own type for DECIMAL and integers, on the shortest decimal form of each value
    for DOUBLE/FLOAT (so 1.00 vs 1.01 is within abs:0.01 whatever their binary forms).

    >>> AbsoluteTolerance(Decimal("0.01")).explains('"l"', '"r"', "DECIMAL(12,2)", Params())
    '("l" IS NOT NULL AND "r" IS NOT NULL AND coalesce(TRY(abs("l" - "r") <= $p0), FALSE))'
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
        if is_float(sql_type):
            exact = f"abs({as_decimal(left)} - {as_decimal(right)}) <= {bound}"
            within = f"coalesce({exact}, abs({left} - {right}) <= {bound}::DOUBLE)"
        else:
            # TRY: a difference too large for the column's type is beyond any tolerance.
            within = f"coalesce(TRY(abs({left} - {right}) <= {bound}), FALSE)"
        return f"({left} IS NOT NULL AND {right} IS NOT NULL AND {within})"

    def describe(self) -> str:
        return f"abs:{self.tolerance}"
