"""Timestamp skew."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from comparators.errors import RuleError
from comparators.sql import Params

_UNITS = {"us": Decimal(1), "ms": Decimal(1000), "s": Decimal(10**6), "m": Decimal(6 * 10**7),
          "h": Decimal(36 * 10**8)}  # fmt: skip
_SKEW = re.compile(r"^(\d+(?:\.\d+)?)\s*(us|ms|s|m|h)?$")


@dataclass(frozen=True)
class TimestampSkew:
    """Timestamps at most `micros` microseconds apart are the same moment.

    >>> TimestampSkew.parse("1.5s").micros
    1500000
    """

    micros: int
    prefix: ClassVar[str] = "skew"

    @classmethod
    def parse(cls, argument: str) -> TimestampSkew:
        m = _SKEW.match(argument.strip())
        if not m:
            raise RuleError(f"skew: {argument!r} is not a duration; e.g. skew:2s, skew:250ms")
        return cls(int(Decimal(m[1]) * _UNITS[m[2] or "s"]))

    def fits(self, family: str) -> bool:
        return family in ("time", "timestamptz")

    def explains(self, left: str, right: str, sql_type: str, params: Params) -> str:
        bound = params.bind(self.micros)
        return f"({left} IS NOT NULL AND {right} IS NOT NULL AND abs(epoch_us({left}) - epoch_us({right})) <= {bound})"

    def describe(self) -> str:
        for unit in ("h", "m", "s", "ms"):
            if self.micros and self.micros % _UNITS[unit] == 0:
                return f"skew:{self.micros // int(_UNITS[unit])}{unit}"
        return f"skew:{self.micros}us"
