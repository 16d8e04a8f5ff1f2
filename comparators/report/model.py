"""What a run report shows: the outputs of one run, the trend, and optional extras from the caller.

A run of a dual pipeline records one history entry per output (named
`<pipeline>/<output>`); a `RunReport` gathers those entries back together, adds
the parity trend over earlier runs, and carries what only the caller can know:
key histories for the sampled keys, a stream-lag series and checklist results.
`reconciliation_from_dict` turns a stored `Reconciliation.to_dict()` back into the
dataclass, so every renderer works from the same objects whether the result is
fresh or read from history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from comparators.report.logcheck import ChangeLogCheck
from comparators.result import (
    Aggregates,
    ColumnStats,
    PartitionDiff,
    Reconciliation,
    Sample,
    Schema,
    Side,
    TypeMismatch,
    jsonable,
)

CHECK_STATUSES = ("pass", "fail", "warn", "skipped")


def _pairs(values: dict[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
    return tuple((c, v.get("left"), v.get("right")) for c, v in values.items())


def _side(d: dict[str, Any]) -> Side:
    return Side(d["label"], int(d["rows"]), int(d["duplicate_keys"]), int(d["duplicate_rows"]), d.get("position"))


def reconciliation_from_dict(d: dict[str, Any]) -> Reconciliation:
    """The inverse of `Reconciliation.to_dict()`; exact values come back as their JSON form.

    >>> from comparators.result import Schema, Side
    >>> r = Reconciliation(("id",), Side("a", 2, 0, 0), Side("b", 1, 0, 0), 1, 1, 0, 0, 0, 0, (), Schema(), ())
    >>> reconciliation_from_dict(r.to_dict()) == r
    True
    """
    schema = d.get("schema") or {}
    aggregates = d.get("aggregates")
    return Reconciliation(
        keys=tuple(d["keys"]),
        left=_side(d["left"]),
        right=_side(d["right"]),
        matched_rows=int(d["matched_rows"]),
        only_in_left=int(d["only_in_left"]),
        only_in_right=int(d["only_in_right"]),
        mismatched_rows=int(d["mismatched_rows"]),
        within_tolerance_rows=int(d["within_tolerance_rows"]),
        in_flight_rows=int(d["in_flight_rows"]),
        columns=tuple(
            ColumnStats(
                name=name,
                left_type=c["left_type"],
                right_type=c["right_type"],
                compared_as=c["compared_as"],
                rules=tuple(c["rules"]),
                mismatches=int(c["mismatches"]),
                within_tolerance=int(c["within_tolerance"]),
                null_vs_value=int(c["null_vs_value"]),
                max_abs_diff=c.get("max_abs_diff"),
                right_name=c.get("right_name"),
                lossy_left=int(c.get("lossy_left") or 0),
                lossy_right=int(c.get("lossy_right") or 0),
            )
            for name, c in (d.get("columns") or {}).items()
        ),  # fmt: skip
        schema=Schema(
            only_in_left=tuple(schema.get("only_in_left", ())),
            only_in_right=tuple(schema.get("only_in_right", ())),
            type_mismatches=tuple(TypeMismatch(**t) for t in schema.get("type_mismatches", ())),
        ),
        samples=tuple(
            Sample(
                cause=s["cause"],
                key=tuple(s["key"].items()),
                values=_pairs(s.get("values") or {}),
                left_count=s.get("left_count"),
                right_count=s.get("right_count"),
            )
            for s in d.get("samples", ())
        ),
        spec=d.get("spec") or {},
        aggregates=None
        if aggregates is None
        else Aggregates(
            column=aggregates["column"],
            partitions=int(aggregates["partitions"]),
            differing=tuple(
                PartitionDiff(
                    value=p["partition"],
                    left_rows=int(p["left_rows"]),
                    right_rows=int(p["right_rows"]),
                    fingerprint_equal=bool(p["fingerprint_equal"]),
                    sums=_pairs(p.get("sums") or {}),
                )
                for p in aggregates.get("differing", ())
            ),
            aggregate_mismatches=int(aggregates["aggregate_mismatches"]),
        ),
        baselines=tuple((what, reconciliation_from_dict(r)) for what, r in (d.get("baselines") or {}).items()),
        name=d.get("name"),
        elapsed_s=float(d.get("elapsed_s") or 0.0),
        notes=tuple(d.get("notes") or ()),
        not_compared=None if d.get("not_compared") is None else (str(d["not_compared"][0]), str(d["not_compared"][1])),
    )


@dataclass(frozen=True)
class OutputRun:
    """One output's entry in the history: `name` as recorded, `output` the part after the pipeline."""

    output: str
    name: str
    run_id: str
    recorded_at: datetime
    result: Reconciliation

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "name": self.name,
            "run_id": self.run_id,
            "recorded_at": self.recorded_at.isoformat(),
            "result": self.result.to_dict(),
        }


@dataclass(frozen=True)
class TrendPoint:
    """One run of the pipeline (all its outputs) in the history, oldest first in a trend."""

    run_id: str  # the first output's entry
    recorded_at: datetime
    outputs: int
    unexplained: int
    # Clean source states in a row as of this point, each judged by its latest pipeline run so far
    # (batch runs at one source position, and re-checks, count once; see comparators.history.streaks).
    streak: int
    batch_run: str | None = None  # the batch run this pipeline run judged

    @property
    def clean(self) -> bool:
        return self.unexplained == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "recorded_at": self.recorded_at.isoformat(),
            "outputs": self.outputs,
            "unexplained": self.unexplained,
            "clean": self.clean,
            "streak": self.streak,
            "batch_run": self.batch_run,
        }


@dataclass(frozen=True)
class LagPoint:
    """How far the stream was behind at one moment of the run, in the report's `lag_unit`."""

    at: datetime
    lag: float

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "lag": self.lag}


@dataclass(frozen=True)
class KeyEvent:
    """One version of a key on one side: a batch run's row, a changelog entry or the source now."""

    side: str  # "batch", "stream" or "source"
    at: str  # a position, a batch run id or "now"
    op: str  # c/u/d/r for the stream; "row" for batch and source; "absent" when the key is missing
    values: tuple[tuple[str, Any], ...] = ()
    when: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "at": self.at,
            "op": self.op,
            "values": {c: jsonable(v) for c, v in self.values},
            "when": None if self.when is None else self.when.isoformat(),
        }


@dataclass(frozen=True)
class KeyHistory:
    """Every known version of one output key, for the drill-down under a sampled difference."""

    output: str
    key: tuple[tuple[str, Any], ...]
    events: tuple[KeyEvent, ...]

    def matches(self, output: str, key: tuple[tuple[str, Any], ...]) -> bool:
        """Keys from JSON and keys from data compare by their JSON form (1 == 1, '2024-05-01' == date)."""
        return self.output == output and _key_form(self.key) == _key_form(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "key": {k: jsonable(v) for k, v in self.key},
            "events": [e.to_dict() for e in self.events],
        }


def _key_form(key: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, str], ...]:
    return tuple((k, str(jsonable(v))) for k, v in key)


@dataclass(frozen=True)
class CheckOutcome:
    """A cutover check as reports show it (the checklist owns the checks; this is their shape)."""

    name: str
    status: str  # one of CHECK_STATUSES
    evidence: str
    threshold: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckOutcome:
        return cls(str(d["name"]), str(d["status"]), str(d.get("evidence", "")), str(d.get("threshold", "")))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "evidence": self.evidence, "threshold": self.threshold}


@dataclass(frozen=True)
class RunReport:
    """One pipeline run for the renderers: verdict, outputs, trend and the caller's extras."""

    title: str
    outputs: tuple[OutputRun, ...]
    trend: tuple[TrendPoint, ...] = ()  # oldest first, ending with this run
    min_parity_streak: int | None = None
    lag: tuple[LagPoint, ...] | None = None  # None: no series was recorded
    lag_unit: str = "records behind"
    key_histories: tuple[KeyHistory, ...] = ()
    checks: tuple[CheckOutcome, ...] = ()
    checks_verdict: str | None = None  # "GO" / "NO-GO" when checks are included
    generated_at: datetime | None = None
    change_log: ChangeLogCheck | None = None  # the latest `dualrun cdc verify`, when one was recorded

    @property
    def unexplained(self) -> int:
        return sum(o.result.unexplained for o in self.outputs)

    @property
    def log_differs(self) -> bool:
        """The change-log check shown in this report found the log differing from the database: the
        report cannot be clean, whatever the outputs say (a batch side rebuilt from that same log,
        `run batch --from-log`, agrees with the stream and proves nothing)."""
        return self.change_log is not None and self.change_log.verdict == "differences"

    @property
    def verdict(self) -> str:
        return "differences" if self.unexplained or self.log_differs else "clean"

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict != "clean" or self.checks_verdict == "NO-GO" else 0

    @property
    def parity_streak(self) -> int:
        """Clean batch runs in a row as of this run (its trend point); without a trend, this run alone."""
        return self.trend[-1].streak if self.trend else (0 if self.unexplained else 1)

    @property
    def run_id(self) -> str:
        return self.outputs[0].run_id if self.outputs else ""

    @property
    def recorded_at(self) -> datetime | None:
        return self.outputs[0].recorded_at if self.outputs else None

    def history_for(self, output: str, key: tuple[tuple[str, Any], ...]) -> KeyHistory | None:
        return next((h for h in self.key_histories if h.matches(output, key)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "verdict": self.verdict,
            "unexplained": self.unexplained,
            "change_log_differs": self.log_differs,
            "run_id": self.run_id,
            "recorded_at": None if self.recorded_at is None else self.recorded_at.isoformat(),
            "parity_streak": self.parity_streak,
            "min_parity_streak": self.min_parity_streak,
            "outputs": {o.output: o.to_dict() for o in self.outputs},
            "trend": [t.to_dict() for t in self.trend],
            "lag": None if self.lag is None else [p.to_dict() for p in self.lag],
            "lag_unit": self.lag_unit,
            "key_histories": [h.to_dict() for h in self.key_histories],
            "checks": {
                "verdict": self.checks_verdict,
                "checks": [c.to_dict() for c in self.checks],
            }
            if self.checks or self.checks_verdict
            else None,
            "generated_at": None if self.generated_at is None else self.generated_at.isoformat(),
            **({"change_log": self.change_log.to_dict()} if self.change_log is not None else {}),
        }
