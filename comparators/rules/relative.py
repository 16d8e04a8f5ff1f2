"""Relative numeric tolerance."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from comparators.rules._numbers import as_decimal, is_float, non_negative
from comparators.sql import Params


@dataclass(frozen=True)
class RelativeTolerance:
    """|left - right| <= tolerance * max(|left|, |right|), exact at the boundary like
    `AbsoluteTolerance` (DOUBLE/FLOAT values read as their shortest decimal form).

    >>> RelativeTolerance(Decimal("0.001")).describe()
    'rel:0.001'
    """

    tolerance: Decimal
    prefix: ClassVar[str] = "rel"

    @classmethod
    def parse(cls, argument: str) -> RelativeTolerance:
        return cls(non_negative(argument, cls.prefix))

    def fits(self, family: str) -> bool:
        return family in ("exact", "float")

    def explains(self, left: str, right: str, sql_type: str, params: Params) -> str:
        bound = params.bind(self.tolerance)

        def test(lv: str, rv: str) -> str:
            return f"TRY(abs({lv} - {rv}) <= {bound} * greatest(abs({lv}), abs({rv})))"

        if is_float(sql_type):
            l_dec, r_dec = as_decimal(left), as_decimal(right)
            approx = f"abs({left} - {right}) <= {bound}::DOUBLE * greatest(abs({left}), abs({right}))"
            within = f"coalesce({test(l_dec, r_dec)}, {approx})"
        else:
            within = f"coalesce({test(left, right)}, FALSE)"
        return f"({left} IS NOT NULL AND {right} IS NOT NULL AND {within})"

    def describe(self) -> str:
        return f"rel:{self.tolerance}"
