"""Reconcile a batch run with outputs the user's own streaming job wrote (`stream.pipeline` absent).

No dualrun process runs beside the user's job. For the batch position P:

1. wait (bounded by `compare.wait_seconds`) until the job's consumer group (`stream.group`) has
   committed past P on every partition of the change topics it consumes (`cdc.progress`), and
   then drained its internal topics (Kafka Streams repartition and foreign-key topics,
   `cdc.chain`); otherwise the verdict is "stream behind" with the lag, never a defect;
2. read each output topic into its changelog with the tap (`migrate.stream.tap`), incrementally;
3. take on trust only what the positions allow: an output with records that carry no position
   (or that could not be decoded) is not compared ("no positions", with evidence); keys whose
   positions go backwards around P (design-byo §2.3 H1) are left out of the comparison as in
   flight and reported; every other key is compared exactly as of P.

A sink table (`outputs.X.stream.table`, a SQLAlchemy URL with `?table=`) may stand for the
stream side when it has the changelog contract's position columns (`__pos_order`, or
`__pos_file` and `__pos_offset`) and `__op`; without them, or with rows whose position is NULL
(the as-of filter would drop them unseen), it is "no positions" too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import pyarrow as pa

from cdc.chain import wait_job_progress
from cdc.progress import GroupProgress
from comparators import ChangelogSource, FrameSource, Reconciliation, Settings, Source, reconcile
from comparators import history as run_history
from comparators.report import key_text
from comparators.sources import open_source
from comparators.sql import describe
from migrate.batch import BatchRun, run_output
from migrate.coverage import record_coverage, record_exact
from migrate.fence import (
    FencedWindow,
    current_rows,
    offset_window,
    output_fence,
    unexplained_keys,
    windowed,
    written_versions,
)
from migrate.metrics import write_tap
from migrate.progress import debezium_passed
from migrate.sides import WithoutKeys, stream_side
from migrate.spec import PipelineSpec
from migrate.stream.findings import TapReport, reordered_keys_around, tap_report
from migrate.stream.tap import BROKER_WAIT_S, TapRun, segment_files, tap_dir, tap_output
from migrate.window import Coverage, Window, in_flight_keys, key_coverage

POSITION_COLUMNS = ({"__pos_order"}, {"__pos_file", "__pos_offset"})


@dataclass(frozen=True)
class SinkPositions:
    """What a sink table shows about its positions: `problem` is None when it can be read as of a
    position, else one line saying what is missing (columns, or `without_position` of `rows` rows)."""

    label: str
    rows: int
    without_position: int
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.label, "rows": self.rows, "without_position": self.without_position,
                "problem": self.problem}  # fmt: skip


def sink_positions(url: str, keys: list[str]) -> tuple[SinkPositions, Source]:
    """Inspect the sink table at `url` (SourceError when it cannot be read): its findings and source."""
    table = open_source(url)
    with duckdb.connect() as con:
        table.register(con, "sink", keys)
        has = {c for c, _ in describe(con, "sink")}
        usable = [cols for cols in POSITION_COLUMNS if cols <= has]
        if not usable or "__op" not in has:
            what = (
                "no position columns (__pos_order, or __pos_file and __pos_offset)" if not usable else "no __op column"
            )
            return SinkPositions(table.label, 0, 0, f"sink table {table.label} has {what}"), table
        # A row has a position when one usable set is complete; the as-of filter drops the others.
        placed = " OR ".join("(" + " AND ".join(f'"{c}" IS NOT NULL' for c in sorted(cols)) + ")" for cols in usable)
        row = con.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT ({placed})) FROM sink").fetchone()
    rows, without = (int(row[0]), int(row[1])) if row else (0, 0)
    problem = f"sink table {table.label}: {without:,} of {rows:,} rows have a NULL position" if without else None
    return SinkPositions(table.label, rows, without, problem), table


@dataclass(frozen=True)
class OutputCheck:
    """What the stream side of one output allowed: compared, or why not, with the tap's findings."""

    output: str
    source: str  # "topic <name>" or "table <url without secrets>"
    # None: compared; "no_positions", "undecodable", "tap_incomplete", "lineage_incomplete" or "unverified"
    # (every key in flight): not compared
    cause: str | None
    detail: str
    in_flight_keys: int
    tap: TapReport | None
    records_read: int = 0  # by this call's tap (incremental: only what is new since the last one)
    # Compared through the offset fence (no positions, lineage declared): the window and the keys
    # verified (compared exactly) and in flight.
    window: Window | None = None
    coverage: Coverage | None = None
    in_flight: pa.Table | None = field(default=None, repr=False, compare=False)  # the keys, for the ledger

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output, "source": self.source, "cause": self.cause, "detail": self.detail,
            "in_flight_keys": self.in_flight_keys, "records_read": self.records_read,
            "tap": self.tap.to_dict() if self.tap else None,
            "window": self.window.to_dict() if self.window else None,
            "coverage": self.coverage.to_dict() if self.coverage else None,
        }  # fmt: skip


def external_progress(spec: PipelineSpec, run: BatchRun, wait: float) -> GroupProgress:
    """Wait (at most `wait` s) until the user's group has committed past the batch position and
    consumed what its internal topics held then: only then do its outputs hold every change up to it."""
    topics = [spec.cdc.topic(t) for t in spec.cdc.tables]
    return wait_job_progress(
        spec.kafka.client(), spec.stream.group, topics, run.position,
        source_passed=lambda: debezium_passed(spec, run.position), timeout=wait,
    )  # fmt: skip


def tap_spec_output(
    spec: PipelineSpec, output: str, schema: pa.Schema | None, timeout: float = 15.0,
    broker_wait_s: float = BROKER_WAIT_S,
) -> TapRun:  # fmt: skip
    """Tap the topic the user's job writes `output` to, typed like the batch output (segments of one
    output share one schema), into the spec's state dir; TapError (KafkaUnavailable after waiting
    `broker_wait_s` for an unreachable broker) as `tap_output`."""
    out = spec.outputs[output]
    assert out.stream.topic is not None  # the spec refuses an external output without topic or table
    root = tap_dir(spec.path("."), spec.stream.group, output)
    run = tap_output(
        spec.kafka.client(), out.stream.topic, root, list(out.keys), output=output, schema=schema,
        position_header=spec.position_header_for(output) or "", timeout=timeout, broker_wait_s=broker_wait_s,
    )  # fmt: skip
    write_tap(spec, run)
    return run


def check_output(
    spec: PipelineSpec, run: BatchRun, output: str, batch: pa.Table
) -> tuple[OutputCheck, Source | None, pa.Table]:
    """Read the stream side of `output` and decide what may be compared:
    (check, stream source or None when not comparable, keys in flight to leave out of both sides)."""
    out = spec.outputs[output]
    keys = list(out.keys)
    none = pa.table({k: batch.column(k)[:0] for k in keys})
    at = f"{run.position.file}:{run.position.minor}"
    if out.stream.table is not None:
        found, table = sink_positions(out.stream.table, keys)
        if found.problem is not None:
            return OutputCheck(output, f"table {table.label}", "no_positions", found.problem, 0, None), None, none
        return OutputCheck(output, f"table {table.label}", None, "", 0, None), ChangelogSource(table, at), none
    assert out.stream.topic is not None  # the spec refuses an external output without topic or table
    root = tap_dir(spec.path("."), spec.stream.group, output)
    read = tap_spec_output(spec, output, batch.schema)
    order = run.position.order_value
    report = tap_report(root, keys, order, output=output)
    where = f"topic {out.stream.topic}"
    n = read.records_read
    if not read.complete:
        detail = f"the tap stopped before the end of {out.stream.topic} ({read.records_read} records read): {read.ends}"
        return OutputCheck(output, where, "tap_incomplete", detail, 0, report, n), None, none
    if report.undecodable:
        detail = f"{report.undecodable} record(s) could not be decoded, e.g. {report.undecodable_samples[0]}"
        return OutputCheck(output, where, "undecodable", detail, 0, report, n), None, none
    if report.without_position:
        detail = (
            f"{report.without_position} of {report.records} record(s) carry no position header "
            f"({spec.position_header_for(output)!r}): register the connector with the position-header SMT and "
            "let the job copy the header to its output (see the README, Bring your own pipeline)"
        )
        return OutputCheck(output, where, "no_positions", detail, 0, report, n), None, none
    skip = reordered_keys_around(root, keys, order) if segment_files(root) else none
    stream = stream_side(spec, output, run.position, batch.schema)
    check = OutputCheck(output, where, None, "", skip.num_rows, report, n)
    return check, (WithoutKeys(stream, skip) if skip.num_rows else stream), skip


def reconcile_external(
    spec: PipelineSpec,
    run: BatchRun,
    *,
    wait: float,
    record: bool,
    progress: Callable[[str], None],
) -> tuple[GroupProgress, dict[str, Reconciliation], dict[str, OutputCheck], dict[str, str]]:
    """(group progress, compared outputs, every output's check, history ids) for an external job."""
    progress(f"waiting for group {spec.stream.group} to pass {run.position}")
    reached = external_progress(spec, run, wait)
    results: dict[str, Reconciliation] = {}
    checks: dict[str, OutputCheck] = {}
    ids: dict[str, str] = {}
    if not reached.reached:
        return reached, results, checks, ids
    fence = output_fence(spec, wait) if windowed(spec) else None
    if fence is not None and not fence.reached:
        return replace(reached, problem=fence.describe()), results, checks, ids
    deferred: list[tuple[str, pa.Table, OutputCheck]] = []
    for output in spec.outputs:
        progress(f"reading and reconciling {output}")
        batch = run_output(spec.warehouse_path, run.run_id, output)
        check, stream, skip = check_output(spec, run, output, batch)
        checks[output] = check
        if check.cause == "no_positions" and output in windowed(spec):
            deferred.append((output, batch, check))
            continue
        if stream is None:
            continue
        left: Any = FrameSource(batch, name=f"batch {output} {run.run_id}")
        if skip.num_rows:
            left = WithoutKeys(left, skip)
        results[output] = _reconcile(spec, run, output, left, stream, str(run.position))
    if deferred:
        # After every output was read: the upper fence, then the window between the fences.
        progress("reading the change events between the offset fences")
        assert fence is not None  # deferred outputs are windowed
        fenced = offset_window(spec, reached, fence, wait)
        for output, batch, check in deferred:
            checks[output], compared = _through_window(spec, run, output, batch, check, fenced)
            if compared is not None:
                results[output] = compared
    if record:
        for output, result in results.items():
            ids[output] = run_history.record(spec.history_path, result, batch_run=run.run_id)
            check = checks[output]
            if check.coverage is not None and check.in_flight is not None:
                record_coverage(spec, output, ids[output], check.coverage, check.in_flight)
            else:  # compared exactly at a position: every key verified
                record_exact(spec, output, ids[output])
    return reached, results, checks, ids


def _reconcile(spec: PipelineSpec, run: BatchRun, output: str, left: Any, right: Any, at: str) -> Reconciliation:
    out = spec.outputs[output]
    return reconcile(
        left, right, list(out.keys), rules=dict(out.tolerances) or None, ignore=out.ignore,
        partition=out.partition, left_position=str(run.position), right_position=at,
        name=f"{spec.name}/{output}", settings=Settings(allow_empty=True),
    )  # fmt: skip


def _through_window(
    spec: PipelineSpec,
    run: BatchRun,
    output: str,
    batch: pa.Table,
    check: OutputCheck,
    fenced: FencedWindow,
) -> tuple[OutputCheck, Reconciliation | None]:
    """One output without positions: its current rows against the batch, keys in the window's
    lineage left out of both sides (in flight), every other key compared exactly; not compared
    (cause "lineage_incomplete") when keys written since the self-check span's output fence are not
    in the lineage of its change events (`migrate.fence`)."""
    out = spec.outputs[output]
    keys = list(out.keys)
    window = fenced.window
    root = tap_dir(spec.path("."), spec.stream.group, output)
    stream = current_rows(root, keys, batch.schema)
    flying = in_flight_keys(output, keys, (batch, stream), window, out.lineage)
    since = {p: o for (t, p), o in fenced.span.since.items() if t == out.stream.topic}
    written = written_versions(root, keys, since, batch.schema.names)
    sides = (batch, stream, written) if written.num_rows else (batch, stream)
    unexplained = unexplained_keys(root, keys, since, in_flight_keys(output, keys, sides, fenced.checked, out.lineage))
    if unexplained.num_rows:
        span = "the previous run's" if fenced.span.previous else "this run's"
        detail = (
            f"the lineage of {output} is incomplete: {unexplained.num_rows:,} key(s) written since {span} offset "
            f"fence that no change since then names, e.g. {key_text(unexplained.slice(0, 1).to_pylist()[0].items())}; "
            f"add the table "
            f"their changes come from to outputs.{output}.lineage (or map it to `all`)"
        )
        return replace(check, cause="lineage_incomplete", detail=detail, window=window), None
    coverage = key_coverage(keys, (batch, stream), flying)
    if coverage.keys and not coverage.verified:
        # Both sides would be empty once the in-flight keys are left out: "clean" would mean nothing.
        detail = (
            f"no key of {output} could be verified: all {coverage.in_flight:,} are in flight "
            f"({window.size:,} change event(s) in the window); run again when the source is quieter"
        )
        return replace(check, cause="unverified", detail=detail, window=window, coverage=coverage), None
    left = WithoutKeys(FrameSource(batch, name=f"batch {output} {run.run_id}"), flying)
    right = WithoutKeys(FrameSource(stream, name=f"{output} as last written"), flying)
    result = _reconcile(spec, run, output, left, right, f"offset fence ({window.size} change events in the window)")
    detail = (
        f"no positions: compared through the offset fence, {flying.num_rows:,} key(s) in flight "
        f"from {window.size:,} change event(s) in the window"
    )
    compared = replace(
        check, cause=None, detail=detail, in_flight_keys=flying.num_rows, window=window, coverage=coverage,
        in_flight=flying,
    )  # fmt: skip
    return compared, result
