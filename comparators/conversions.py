"""What the conversions a plan makes did to the data: counted, refused or reported.

A conversion that may lose information (`Column.checked`) is verified value by value:
the engine counts, per column and side, the values that did not convert exactly (one
aggregate in the counting scan it makes anyway). A key that does not convert exactly is
refused, since it could merge or split keys; a value that does not is compared as it is
(a difference unless the other side holds the same), and the report says so in a note.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from comparators.errors import RuleError, SpecError
from comparators.plan import Column, Plan
from comparators.rules import NullAs
from comparators.spec import ReconcileSpec
from comparators.sql import Params, one_row
from comparators.types import check_type_name

# (column name, is_left) -> (values that did not convert exactly, one of them as text)
Lossy = Mapping[tuple[str, bool], tuple[int, Any]]


def check_options(con: duckdb.DuckDBPyConnection, spec: ReconcileSpec) -> None:
    """Refuse, with one line each, a time zone or coercion type DuckDB does not know."""
    try:
        con.execute("SELECT timezone($z, TIMESTAMP '2000-01-01')", {"z": spec.naive_timezone}).fetchall()
    except duckdb.Error:
        raise SpecError(
            f"unknown time zone {spec.naive_timezone!r} for naive timestamps; use an IANA name such as"
            " UTC or America/New_York"
        ) from None
    for column, type_name in sorted(spec.coerce.items()):
        try:
            con.execute(f"SELECT CAST(NULL AS {check_type_name(type_name)})").fetchall()
        except duckdb.Error:
            raise RuleError(
                f"--coerce {column}={type_name}: DuckDB has no such type; e.g. DECIMAL(18,2), BIGINT"
            ) from None


def check_rules(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """A `null:V` rule whose V is not a value of its column's type would never apply: refuse it."""
    for col in plan.columns:
        for rule in col.rules:
            if isinstance(rule, NullAs):
                params = Params()
                sql = f"SELECT TRY_CAST({params.bind(rule.value)} AS {col.pairing.compared_as}) IS NULL"
                if one_row(con, sql, params.values)[0]:
                    raise RuleError(
                        f"rule {rule.describe()} on column {col.name!r}: {rule.value!r} is not a"
                        f" {col.pairing.compared_as} value, so the rule could never apply"
                    )


def checked_columns(plan: Plan, is_left: bool) -> list[Column]:
    """Keys and compared columns whose conversion on this side is verified per value."""
    return [c for c in (*plan.keys, *plan.columns) if c.pairing.checked(c.side_type(is_left))]


def lossy_aggregates(plan: Plan, is_left: bool) -> list[str]:
    """Two aggregates per checked column: values lost, and one of them as text."""
    out = []
    for col in checked_columns(plan, is_left):
        lost = f"NOT {col.exact(is_left, 't.')}"
        out += [f"count(*) FILTER ({lost})", f"min(CAST({col.raw(is_left, 't.')} AS VARCHAR)) FILTER ({lost})"]
    return out


def read_lossy(plan: Plan, is_left: bool, values: tuple[Any, ...]) -> dict[tuple[str, bool], tuple[int, Any]]:
    """The `lossy_aggregates` results, by (column, side)."""
    cols = checked_columns(plan, is_left)
    return {(c.name, is_left): (int(values[2 * i] or 0), values[2 * i + 1]) for i, c in enumerate(cols)}


def refuse_lossy_keys(plan: Plan, lossy: Lossy) -> None:
    for key in plan.keys:
        for is_left in (True, False):
            n, example = lossy.get((key.name, is_left), (0, None))
            if n:
                side = "left" if is_left else "right"
                raise SpecError(
                    f"key column {key.name!r}: {n} {side} value(s) do not convert to {key.pairing.compared_as}"
                    f" exactly (e.g. {example!r}); keys must match exactly, so compare them as they are"
                    " (drop the --coerce) or fix the side's key type"
                )


def notes(plan: Plan, spec: ReconcileSpec, lossy: Lossy) -> tuple[str, ...]:
    """How the report's comparisons were made, where that is not plain equality of like types."""
    out = []
    zoned = [c.name for c in (*plan.keys, *plan.columns) if c.pairing.naive_meets_aware]
    if zoned:
        out.append(
            f"timestamps without time zone are read as {spec.naive_timezone} wall-clock time where they meet"
            f" time-zone-aware ones: {', '.join(zoned)}"
        )
    for col in plan.columns:
        for is_left in (True, False):
            n, example = lossy.get((col.name, is_left), (0, None))
            if not n:
                continue
            side = "left" if is_left else "right"
            how = (
                f"--coerce {col.name}={col.pairing.compared_as} loses information: " if col.name in spec.coerce else ""
            )
            out.append(
                f"{how}{col.name}: {n} {side} value(s) ({col.side_type(is_left)}) do not convert to"
                f" {col.pairing.compared_as} exactly (e.g. {example!r}); each is compared as it is,"
                " a difference unless the other side holds the same"
            )
    return tuple(out)
