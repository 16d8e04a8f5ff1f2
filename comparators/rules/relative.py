"""Relative numeric tolerance."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from comparators.rules._numbers import non_negative
from comparators.sql import Params


@dataclass(frozen=True)
class RelativeTolerance:
    """|left - right| <= tolerance * max(|left|, |right|).

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
        return (
            f"({left} IS NOT NULL AND {right} IS NOT NULL AND "
            f"abs({left} - {right}) <= {bound} * greatest(abs({left}), abs({right})))"
        )

    def describe(self) -> str:
        return f"rel:{self.tolerance}"
