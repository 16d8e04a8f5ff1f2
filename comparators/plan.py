"""Line up the two sides' columns: keys, compared columns, drift, types and rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from comparators.errors import RuleError, SpecError
from comparators.result import Schema, TypeMismatch
from comparators.rules import Rule
from comparators.spec import ReconcileSpec
from comparators.sql import ident
from comparators.types import Pairing, cast, exact_sql, pair


@dataclass(frozen=True)
class Column:
    """A column present on both sides, named by its left name."""

    name: str
    right_name: str
    pairing: Pairing
    rules: tuple[Rule, ...]

    def left(self, alias: str = "") -> str:
        """The left value in the comparison type; `alias` qualifies the column."""
        return cast(self.raw(True, alias), self.pairing, self.pairing.left_type)

    def right(self, alias: str = "") -> str:
        return cast(self.raw(False, alias), self.pairing, self.pairing.right_type)

    def raw(self, is_left: bool, alias: str = "") -> str:
        """The side's value as it holds it."""
        return f"{alias}{ident(self.name if is_left else self.right_name)}"

    def value(self, is_left: bool, alias: str = "") -> str:
        return self.left(alias) if is_left else self.right(alias)

    def side_type(self, is_left: bool) -> str:
        return self.pairing.left_type if is_left else self.pairing.right_type

    @property
    def converted(self) -> bool:
        """Whether either side is converted (then evidence shows the raw values)."""
        return self.pairing.converts(self.pairing.left_type) or self.pairing.converts(self.pairing.right_type)

    @property
    def checked(self) -> bool:
        """Whether either side's conversion may lose information (verified per value)."""
        return self.pairing.checked(self.pairing.left_type) or self.pairing.checked(self.pairing.right_type)

    def exact(self, is_left: bool, alias: str = "") -> str:
        """SQL boolean: this side's value converted without loss (TRUE when it cannot lose)."""
        if not self.pairing.checked(self.side_type(is_left)):
            return "TRUE"
        return exact_sql(self.raw(is_left, alias), self.value(is_left, alias), self.pairing, self.side_type(is_left))

    def hashed(self, is_left: bool, alias: str = "") -> list[str]:
        """What goes into the row hash: the compared value and, for a value that did not
        convert exactly, its raw text, so a lossy conversion never hides a difference."""
        parts = [self.value(is_left, alias)]
        if self.checked:
            parts.append(
                f"CASE WHEN {self.exact(is_left, alias)} THEN NULL ELSE CAST({self.raw(is_left, alias)} AS VARCHAR) END"
            )
        return parts


@dataclass(frozen=True)
class Plan:
    keys: tuple[Column, ...]
    columns: tuple[Column, ...]
    schema: Schema
    partition: Column | None = None
    in_flight_types: tuple[str, str] = ("", "")  # the in-flight column's type on each side


def _where(side: str, label: str, names: Sequence[str]) -> str:
    shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    return f"{side} side ({label}); its columns: {shown}"


def make_plan(
    spec: ReconcileSpec,
    left: Sequence[tuple[str, str]],
    right: Sequence[tuple[str, str]],
    left_label: str,
    right_label: str,
) -> Plan:
    """Decide what is compared with what, failing early on names that do not exist."""
    ltypes, rtypes = dict(left), dict(right)
    lnames, rnames = [c for c, _ in left], [c for c, _ in right]
    for rname, lname in spec.rename.items():
        if rname not in rtypes:
            raise SpecError(f"renamed column {rname!r} not in the {_where('right', right_label, rnames)}")
        if lname not in ltypes:
            raise SpecError(f"--rename {rname}={lname}: {lname!r} is not in the {_where('left', left_label, lnames)}")
        if lname in rtypes and lname not in spec.rename:
            raise SpecError(
                f"--rename {rname}={lname}: the right side already has a column {lname!r};"
                " rename or ignore that one too"
            )
    to_left = {r: spec.rename.get(r, r) for r in rnames}
    to_right = {lname: r for r, lname in to_left.items()}
    for key in spec.keys:
        if key not in ltypes:
            raise SpecError(f"key column {key!r} not in the {_where('left', left_label, lnames)}")
        if key not in to_right:
            raise SpecError(f"key column {key!r} not in the {_where('right', right_label, rnames)}")
    either = set(ltypes) | set(to_right)
    both = set(ltypes) & set(to_right)
    unknown = sorted(set(spec.ignore) - either)
    if unknown:
        raise SpecError(f"ignored column(s) {unknown} exist on neither side; check the names")
    for what, names in (("ruled", spec.rules), ("coerced", spec.coerce)):
        unknown = sorted(set(names) - either)
        if unknown:
            raise SpecError(f"{what} column(s) {unknown} exist on neither side; check the names")
        one_sided = sorted(set(names) - both)
        if one_sided:
            raise SpecError(f"{what} column(s) {one_sided} exist on one side only, so nothing compares them")
    if spec.in_flight is not None and (spec.in_flight.column not in ltypes or spec.in_flight.column not in to_right):
        raise SpecError(f"in-flight column {spec.in_flight.column!r} must exist on both sides")
    if spec.partition is not None and (spec.partition not in ltypes or spec.partition not in to_right):
        raise SpecError(f"partition column {spec.partition!r} must exist on both sides")

    def column(name: str, is_key: bool) -> Column:
        rname = to_right[name]
        pairing = pair(ltypes[name], rtypes[rname], spec.coerce.get(name), spec.naive_timezone)
        if (
            is_key
            and name not in spec.coerce
            and (pairing.checked(pairing.left_type) or pairing.checked(pairing.right_type))
        ):
            raise SpecError(
                f"{'key' if name in spec.keys else 'partition'} column {name!r} is {pairing.left_type} on the left"
                f" and {pairing.right_type} on the right;"
                f" matching them as {pairing.compared_as} could merge distinct keys. Add --coerce {name}=TYPE"
                " (keys that do not convert exactly are then refused)"
            )
        rules: tuple[Rule, ...] = ()
        if not is_key:
            explicit = name in spec.rules
            rules = tuple(r for r in spec.rules_for(name) if explicit or r.fits(pairing.family))
            for r in rules:
                if not r.fits(pairing.family):
                    raise RuleError(
                        f"rule {r.describe()} does not fit column {name!r} compared as "
                        f"{pairing.compared_as}; use it on a matching column or add --coerce"
                    )
        return Column(name, rname, pairing, rules)

    keys = tuple(column(k, True) for k in spec.keys)
    skip = set(spec.keys) | set(spec.ignore)
    columns = tuple(column(c, False) for c in lnames if c not in skip and c in to_right)
    for rule in spec.default:
        if columns and not any(rule in c.rules for c in columns):
            raise RuleError(f"default rule {rule.describe()} fits no compared column; name the column it is for")
    mismatches = tuple(
        TypeMismatch(c.name, c.pairing.left_type, c.pairing.right_type, c.pairing.compared_as,
                     c.pairing.acknowledged)
        for c in keys + columns
        if c.pairing.mismatch
    )  # fmt: skip
    schema = Schema(
        only_in_left=tuple(c for c in lnames if c not in to_right and c not in skip),
        only_in_right=tuple(r for r in rnames if to_left[r] not in ltypes and to_left[r] not in skip),
        type_mismatches=mismatches,
    )
    partition = column(spec.partition, True) if spec.partition is not None else None
    flight = spec.in_flight.column if spec.in_flight is not None else None
    types = (ltypes[flight], rtypes[to_right[flight]]) if flight is not None else ("", "")
    return Plan(keys, columns, schema, partition, types)
