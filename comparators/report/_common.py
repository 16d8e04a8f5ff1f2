"""Wording shared by the human-readable renderers."""

from __future__ import annotations

from typing import Any

from comparators.result import EXPLAINED_CAUSES, Reconciliation, Sample, jsonable

CAUSE_TITLES = {
    "missing_in_stream": "missing in stream (key only in left)",
    "missing_in_batch": "missing in batch (key only in right)",
    "duplicate_key": "duplicate keys",
    "value_mismatch": "value mismatch (rows)",
    "schema_drift": "schema drift (columns on one side)",
    "type_mismatch": "type mismatch (columns, not coerced)",
    "aggregate_mismatch": "aggregate mismatch (partitions)",
    "within_tolerance": "within tolerance (rows)",
    "in_flight": "in flight (rows)",
}


def value(v: Any) -> str:
    if v is None:
        return "NULL"
    out = jsonable(v)
    return out if isinstance(out, str) else str(out)


def headline(result: Reconciliation) -> str:
    if result.verdict == "clean":
        return "CLEAN: no unexplained differences"
    return f"DIFFERENCES: {result.unexplained} unexplained"


def cause_rows(result: Reconciliation) -> list[tuple[str, int, str]]:
    rows = []
    for cause, count in result.causes.items():
        note = "explained" if cause in EXPLAINED_CAUSES else ("" if not count else "unexplained")
        if cause == "duplicate_key" and count:
            note += (
                f" (left {result.left.duplicate_keys} keys/{result.left.duplicate_rows} rows,"
                f" right {result.right.duplicate_keys} keys/{result.right.duplicate_rows} rows)"
            )
        rows.append((CAUSE_TITLES[cause], count, note))
    return rows


def sample_line(s: Sample) -> str:
    key = ", ".join(f"{k}={value(v)}" for k, v in s.key)
    if s.cause == "duplicate_key":
        return f"{key}: {s.left_count} rows in left, {s.right_count} in right"
    if s.cause == "missing_in_stream":
        vals = ", ".join(f"{c}={value(lv)}" for c, lv, _ in s.values)
        return f"{key}: left has {vals}" if vals else key
    if s.cause == "missing_in_batch":
        vals = ", ".join(f"{c}={value(rv)}" for c, _, rv in s.values)
        return f"{key}: right has {vals}" if vals else key
    diffs = "; ".join(f"{c}: {value(lv)} -> {value(rv)}" for c, lv, rv in s.values)
    return f"{key}: {diffs}"
