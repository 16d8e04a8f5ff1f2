"""String normalisation before comparison."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from comparators.errors import RuleError
from comparators.sql import Params

_OPTIONS = ("trim", "case")


@dataclass(frozen=True)
class Normalise:
    """Strings equal after trimming surrounding whitespace and/or folding case.

    >>> Normalise.parse("trim,case").explains('"l"', '"r"', "VARCHAR", Params())
    '(lower(trim("l")) = lower(trim("r")))'
    """

    trim: bool = True
    case: bool = True
    prefix: ClassVar[str] = "norm"

    @classmethod
    def parse(cls, argument: str) -> Normalise:
        options = {o.strip().lower() for o in argument.split(",") if o.strip()} or set(_OPTIONS)
        unknown = options - set(_OPTIONS)
        if unknown:
            raise RuleError(f"norm: unknown option(s) {sorted(unknown)}; use norm:trim,case")
        return cls(trim="trim" in options, case="case" in options)

    def fits(self, family: str) -> bool:
        return family == "string"

    def _norm(self, expr: str) -> str:
        expr = f"trim({expr})" if self.trim else expr
        return f"lower({expr})" if self.case else expr

    def explains(self, left: str, right: str, sql_type: str, params: Params) -> str:
        return f"({self._norm(left)} = {self._norm(right)})"

    def describe(self) -> str:
        return "norm:" + ",".join(o for o in _OPTIONS if getattr(self, o))
