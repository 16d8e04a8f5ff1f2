"""Tolerance and normalisation rules, one module each, behind the `Rule` protocol.

A rule decides, in SQL, whether a pair of values that are *not* identical is still
acceptable ("within tolerance"). Identical values (NULL with NULL included) never
reach a rule. Rules are registered in `RULES`, in the order `parse_rule` tries
their prefixes.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from comparators.errors import RuleError
from comparators.rules.absolute import AbsoluteTolerance
from comparators.rules.exact import Exact
from comparators.rules.normalise import Normalise
from comparators.rules.nulls import NullAs
from comparators.rules.relative import RelativeTolerance
from comparators.rules.skew import TimestampSkew
from comparators.sql import Params


class Rule(Protocol):
    """A per-column rule; `prefix` is its CLI name (`COL=prefix:argument`)."""

    prefix: ClassVar[str]

    @classmethod
    def parse(cls, argument: str) -> Rule: ...

    def fits(self, family: str) -> bool:
        """Whether the rule makes sense for a column compared in this type family."""
        ...

    def explains(self, left: str, right: str, sql_type: str, params: Params) -> str:
        """A SQL boolean over two distinct values: true when the difference is acceptable."""
        ...

    def describe(self) -> str:
        """The rule as the CLI writes it, e.g. `abs:0.01`."""
        ...


RULES: tuple[type[Rule], ...] = (
    Exact,
    AbsoluteTolerance,
    RelativeTolerance,
    TimestampSkew,
    Normalise,
    NullAs,
)


def parse_rule(text: str) -> Rule:
    """Parse `prefix:argument` with the first registered rule whose prefix matches.

    >>> parse_rule("abs:0.01").describe(), parse_rule("skew:2s").describe()
    ('abs:0.01', 'skew:2s')
    """
    prefix, _, argument = text.strip().partition(":")
    for rule in RULES:
        if rule.prefix == prefix.strip().lower():
            return rule.parse(argument.strip())
    known = ", ".join(f"{r.prefix}:" for r in RULES)
    raise RuleError(f"unknown rule {text!r}; known rules: {known}")


__all__ = [
    "RULES",
    "AbsoluteTolerance",
    "Exact",
    "Normalise",
    "NullAs",
    "RelativeTolerance",
    "Rule",
    "TimestampSkew",
    "parse_rule",
]
