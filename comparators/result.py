"""The outcome of a reconciliation: frozen dataclasses that own their `to_dict()`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

# Causes in report order. The first group fails a run; the second explains differences.
UNEXPLAINED_CAUSES = (
    "missing_in_stream",
    "missing_in_batch",
    "duplicate_key",
    "value_mismatch",
    "schema_drift",
    "type_mismatch",
    "aggregate_mismatch",
)
EXPLAINED_CAUSES = ("within_tolerance", "in_flight")


def jsonable(value: Any) -> Any:
    """A value as JSON can carry it without losing exactness (Decimals become strings)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def _pair(left: Any, right: Any) -> dict[str, Any]:
    """Both sides' values; when their JSON forms are equal but the values are not (a
    DECIMAL and its text, NaN and 'nan'), their types too, so they never look the same."""
    out = {"left": jsonable(left), "right": jsonable(right)}
    if out["left"] == out["right"] and (type(left) is not type(right) or repr(left) != repr(right)):
        out.update(left_type=type(left).__name__, right_type=type(right).__name__)
    return out


@dataclass(frozen=True)
class Side:
    """One side's size and identity."""

    label: str
    rows: int
    duplicate_keys: int  # distinct keys that occur more than once
    duplicate_rows: int  # rows carrying those keys
    position: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "rows": self.rows,
            "duplicate_keys": self.duplicate_keys,
            "duplicate_rows": self.duplicate_rows,
            "position": self.position,
        }


@dataclass(frozen=True)
class ColumnStats:
    """Per-column statistics over key-matched rows."""

    name: str
    left_type: str
    right_type: str
    compared_as: str
    rules: tuple[str, ...]
    mismatches: int  # rows where the values differ beyond every rule
    within_tolerance: int  # rows where they differ but a rule accepts it
    null_vs_value: int  # mismatches where exactly one side is NULL
    max_abs_diff: Any = None  # largest |left - right| among differing rows (numbers, seconds)
    right_name: str | None = None  # when renamed
    lossy_left: int = 0  # left values that did not convert to `compared_as` exactly
    lossy_right: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mismatches": self.mismatches,
            "within_tolerance": self.within_tolerance,
            "null_vs_value": self.null_vs_value,
            "max_abs_diff": jsonable(self.max_abs_diff),
            "left_type": self.left_type,
            "right_type": self.right_type,
            "compared_as": self.compared_as,
            "rules": list(self.rules),
            "right_name": self.right_name,
            "lossy_left": self.lossy_left,
            "lossy_right": self.lossy_right,
        }


@dataclass(frozen=True)
class TypeMismatch:
    column: str
    left_type: str
    right_type: str
    compared_as: str
    acknowledged: bool  # an explicit coercion was given for it

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "left_type": self.left_type,
            "right_type": self.right_type,
            "compared_as": self.compared_as,
            "acknowledged": self.acknowledged,
        }


@dataclass(frozen=True)
class Schema:
    """Columns present on one side only, and columns whose types differ in kind."""

    only_in_left: tuple[str, ...] = ()
    only_in_right: tuple[str, ...] = ()
    type_mismatches: tuple[TypeMismatch, ...] = ()

    @property
    def unacknowledged(self) -> int:
        return sum(not t.acknowledged for t in self.type_mismatches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "only_in_left": list(self.only_in_left),
            "only_in_right": list(self.only_in_right),
            "type_mismatches": [t.to_dict() for t in self.type_mismatches],
        }


@dataclass(frozen=True)
class Sample:
    """One differing key: its cause and the values on each side (only differing columns
    for value mismatches; the row's values for rows present on one side)."""

    cause: str
    key: tuple[tuple[str, Any], ...]
    values: tuple[tuple[str, Any, Any], ...] = ()  # (column, left, right)
    left_count: int | None = None  # for duplicates
    right_count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cause": self.cause, "key": {k: jsonable(v) for k, v in self.key}}
        if self.values:
            out["values"] = {c: _pair(lv, rv) for c, lv, rv in self.values}
        if self.left_count is not None:
            out["left_count"] = self.left_count
            out["right_count"] = self.right_count
        return out


@dataclass(frozen=True)
class PartitionDiff:
    """One partition whose aggregates or fingerprint differ."""

    value: Any
    left_rows: int
    right_rows: int
    fingerprint_equal: bool
    sums: tuple[tuple[str, Any, Any], ...] = ()  # (column, left sum, right sum) beyond threshold

    @property
    def aggregate_mismatch(self) -> bool:
        return self.left_rows != self.right_rows or bool(self.sums)

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": jsonable(self.value),
            "left_rows": self.left_rows,
            "right_rows": self.right_rows,
            "fingerprint_equal": self.fingerprint_equal,
            "sums": {c: {"left": jsonable(lv), "right": jsonable(rv)} for c, lv, rv in self.sums},
        }


@dataclass(frozen=True)
class Aggregates:
    """Per-partition counts, sums and fingerprints."""

    column: str
    partitions: int
    differing: tuple[PartitionDiff, ...]  # every differing partition, sorted by value
    aggregate_mismatches: int  # partitions whose counts or sums differ beyond threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "partitions": self.partitions,
            "differing_partitions": len(self.differing),
            "aggregate_mismatches": self.aggregate_mismatches,
            "differing": [p.to_dict() for p in self.differing],
        }


@dataclass(frozen=True)
class Reconciliation:
    """Everything one reconciliation found; `left` is the batch side, `right` the stream."""

    keys: tuple[str, ...]
    left: Side
    right: Side
    matched_rows: int  # keys present once on each side
    only_in_left: int
    only_in_right: int
    mismatched_rows: int  # matched rows with at least one mismatch beyond tolerance
    within_tolerance_rows: int  # matched rows that differ only within tolerance
    in_flight_rows: int
    columns: tuple[ColumnStats, ...]
    schema: Schema
    samples: tuple[Sample, ...]
    spec: dict[str, Any] = field(default_factory=dict)
    aggregates: Aggregates | None = None
    baselines: tuple[tuple[str, Reconciliation], ...] = ()  # (what, noise reconciliation)
    name: str | None = None
    elapsed_s: float = 0.0
    # How comparisons were made where that is not plain equality of like types
    # (naive timestamps' zone, conversions that lost information).
    notes: tuple[str, ...] = ()
    # Why the sides were never compared, e.g. ("sink_behind", "connect group ... 12 records behind"):
    # the verdict and its one-line reason. Such a result is never clean (it counts as unexplained).
    not_compared: tuple[str, str] | None = None

    @property
    def causes(self) -> dict[str, int]:
        """Count per cause, unexplained causes first."""
        return {
            "missing_in_stream": self.only_in_left,
            "missing_in_batch": self.only_in_right,
            "duplicate_key": self.left.duplicate_keys + self.right.duplicate_keys,
            "value_mismatch": self.mismatched_rows,
            "schema_drift": len(self.schema.only_in_left) + len(self.schema.only_in_right),
            "type_mismatch": self.schema.unacknowledged,
            "aggregate_mismatch": self.aggregates.aggregate_mismatches if self.aggregates else 0,
            "within_tolerance": self.within_tolerance_rows,
            "in_flight": self.in_flight_rows,
        }

    @property
    def unexplained(self) -> int:
        causes = self.causes
        return sum(causes[c] for c in UNEXPLAINED_CAUSES) + (1 if self.not_compared else 0)

    @property
    def verdict(self) -> str:
        if self.not_compared is not None:
            return self.not_compared[0]
        return "differences" if self.unexplained else "clean"

    @property
    def exit_code(self) -> int:
        return 1 if self.unexplained else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "name": self.name,
            "keys": list(self.keys),
            "left_rows": self.left.rows,
            "right_rows": self.right.rows,
            "matched_rows": self.matched_rows,
            "only_in_left": self.only_in_left,
            "only_in_right": self.only_in_right,
            "duplicate_keys_left": self.left.duplicate_keys,
            "duplicate_keys_right": self.right.duplicate_keys,
            "mismatched_rows": self.mismatched_rows,
            "within_tolerance_rows": self.within_tolerance_rows,
            "in_flight_rows": self.in_flight_rows,
            "causes": self.causes,
            "columns": {c.name: c.to_dict() for c in self.columns},
            "schema": self.schema.to_dict(),
            "left": self.left.to_dict(),
            "right": self.right.to_dict(),
            "samples": [s.to_dict() for s in self.samples],
            "aggregates": self.aggregates.to_dict() if self.aggregates else None,
            "baselines": {what: r.to_dict() for what, r in self.baselines},
            "spec": self.spec,
            "notes": list(self.notes),
            **({} if self.not_compared is None else {"not_compared": list(self.not_compared)}),
            "elapsed_s": round(self.elapsed_s, 3),
        }
