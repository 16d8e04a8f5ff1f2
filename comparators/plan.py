"""Line up the two sides' columns: keys, compared columns, drift, types and rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from comparators.errors import RuleError, SpecError
from comparators.result import Schema, TypeMismatch
from comparators.rules import Rule
from comparators.spec import ReconcileSpec
from comparators.sql import ident
from comparators.types import Pairing, cast, pair


@dataclass(frozen=True)
class Column:
    """A column present on both sides, named by its left name."""

    name: str
    right_name: str
    pairing: Pairing
    rules: tuple[Rule, ...]

    def left(self, alias: str = "") -> str:
        """The left value in the comparison type; `alias` qualifies the column."""
        return cast(f"{alias}{ident(self.name)}", self.pairing, self.pairing.left_type)

    def right(self, alias: str = "") -> str:
        return cast(f"{alias}{ident(self.right_name)}", self.pairing, self.pairing.right_type)


@dataclass(frozen=True)
class Plan:
    keys: tuple[Column, ...]
    columns: tuple[Column, ...]
    schema: Schema
    partition: Column | None = None


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
    for rname in spec.rename:
        if rname not in rtypes:
            raise SpecError(f"renamed column {rname!r} not in the {_where('right', right_label, rnames)}")
    to_left = {r: spec.rename.get(r, r) for r in rnames}
    to_right = {lname: r for r, lname in to_left.items()}
    for key in spec.keys:
        if key not in ltypes:
            raise SpecError(f"key column {key!r} not in the {_where('left', left_label, lnames)}")
        if key not in to_right:
            raise SpecError(f"key column {key!r} not in the {_where('right', right_label, rnames)}")
    both = set(ltypes) | set(to_right)
    for what, names in (("ignored", spec.ignore), ("ruled", spec.rules), ("coerced", spec.coerce)):
        unknown = sorted(set(names) - both)
        if unknown:
            raise SpecError(f"{what} column(s) {unknown} exist on neither side; check the names")
    if spec.partition is not None and (spec.partition not in ltypes or spec.partition not in to_right):
        raise SpecError(f"partition column {spec.partition!r} must exist on both sides")

    def column(name: str, is_key: bool) -> Column:
        rname = to_right[name]
        pairing = pair(ltypes[name], rtypes[rname], spec.coerce.get(name))
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
    return Plan(keys, columns, schema, partition)
