"""What to compare and how: keys, per-column rules, renames, coercions, partitions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from comparators.errors import RuleError, SpecError
from comparators.rules import Rule, parse_rule

DEFAULT = "*"  # the column name that stands for "every other column" in rule specs


@dataclass(frozen=True)
class InFlight:
    """Classify differences as in flight when `column` (either side) is after `since`.

    Only for sides without a source position: with positions, lag cannot cause a
    difference, so every difference is real.
    """

    column: str
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "since": self.since.isoformat()}


@dataclass(frozen=True)
class ReconcileSpec:
    """Options of one reconciliation; `rules` maps a (left) column name to its rules."""

    keys: tuple[str, ...]
    rules: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    default: tuple[Rule, ...] = ()
    ignore: frozenset[str] = frozenset()
    rename: Mapping[str, str] = field(default_factory=dict)  # right name -> left name
    coerce: Mapping[str, str] = field(default_factory=dict)  # left name -> DuckDB type
    partition: str | None = None
    aggregate_tolerance: Decimal = Decimal(0)  # relative, for per-partition sums
    samples: int = 10
    in_flight: InFlight | None = None
    naive_timezone: str = "UTC"  # IANA zone a timestamp without time zone is read in

    def __post_init__(self) -> None:
        if not self.keys:
            raise SpecError("no key column given; name at least one with --key COL")
        if len(set(self.keys)) != len(self.keys):
            raise SpecError(f"a key column is listed twice: {list(self.keys)}")
        if self.samples < 0:
            raise SpecError("samples must be >= 0")
        ignored_keys = set(self.keys) & set(self.ignore)
        if ignored_keys:
            raise SpecError(f"key column(s) {sorted(ignored_keys)} cannot also be ignored")
        ruled_keys = set(self.keys) & set(self.rules)
        if ruled_keys:
            raise SpecError(
                f"key column(s) {sorted(ruled_keys)} have a rule, but keys are matched exactly; remove the rule"
            )
        for what, names in (("a rule", self.rules), ("a coercion", self.coerce)):
            both = sorted(set(names) & set(self.ignore))
            if both:
                raise SpecError(f"column(s) {both} are ignored and also have {what}; drop one of the two")
        if self.aggregate_tolerance and self.partition is None:
            raise SpecError("an aggregate tolerance applies to per-partition sums; give --partition COL too")
        if not self.naive_timezone.strip():
            raise SpecError("the naive-timestamp zone is empty; give an IANA zone such as UTC")

    def rules_for(self, column: str) -> tuple[Rule, ...]:
        return self.rules.get(column, self.default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": list(self.keys),
            "rules": {c: [r.describe() for r in rs] for c, rs in sorted(self.rules.items())},
            "default": [r.describe() for r in self.default],
            "ignore": sorted(self.ignore),
            "rename": dict(sorted(self.rename.items())),
            "coerce": dict(sorted(self.coerce.items())),
            "partition": self.partition,
            "aggregate_tolerance": str(self.aggregate_tolerance),
            "samples": self.samples,
            "in_flight": self.in_flight.to_dict() if self.in_flight else None,
            "naive_timezone": self.naive_timezone,
        }


def _as_rules(value: Rule | str | Sequence[Rule | str]) -> tuple[Rule, ...]:
    items: Iterable[Rule | str] = [value] if isinstance(value, str) or not isinstance(value, Sequence) else value
    return tuple(parse_rule(v) if isinstance(v, str) else v for v in items)


def build_spec(
    keys: Sequence[str],
    *,
    rules: Mapping[str, Rule | str | Sequence[Rule | str]] | None = None,
    ignore: Iterable[str] = (),
    rename: Mapping[str, str] | None = None,
    coerce: Mapping[str, str] | None = None,
    partition: str | None = None,
    aggregate_tolerance: Decimal | str | int = 0,
    samples: int = 10,
    in_flight: InFlight | None = None,
    naive_timezone: str = "UTC",
) -> ReconcileSpec:
    """A spec from friendly arguments; rule values may be rule objects or `abs:0.01` strings,
    and the column `*` sets the default rule."""
    per_column = {c: _as_rules(v) for c, v in (rules or {}).items()}
    default = per_column.pop(DEFAULT, ())
    return ReconcileSpec(
        keys=tuple(keys),
        rules=per_column,
        default=default,
        ignore=frozenset(ignore),
        rename=dict(rename or {}),
        coerce=dict(coerce or {}),
        partition=partition,
        aggregate_tolerance=Decimal(aggregate_tolerance),
        samples=samples,
        in_flight=in_flight,
        naive_timezone=naive_timezone,
    )


def parse_assignments(items: Iterable[str], option: str) -> list[tuple[str, str]]:
    """`COL=VALUE` pairs from repeated CLI options; the last `=` separates, so column
    names may contain `=` only if values do not."""
    pairs = []
    for item in items:
        column, sep, value = item.rpartition("=")
        if not sep or not column or not value:
            raise RuleError(f"{option} {item!r}: expected COL=VALUE, e.g. {option} amount=abs:0.01")
        pairs.append((column, value))
    return pairs
