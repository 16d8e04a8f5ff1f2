"""Checks on the source positions the stream's outputs carry: every record has one, and per key
they never go backwards (design-byo §2.3 H1). Without both, "as of the batch position" is only
partly true: outputs without positions cannot be compared, reordered keys are left out as in flight.

The user's own job (`stream.pipeline` absent) is read through the tap (incrementally, into the
state dir); dualrun's own job writes its changelogs directly and is checked there.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from comparators.errors import ComparatorError
from migrate.batch import has_output, run_output
from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.errors import CheckUnavailable, DualrunError
from migrate.external import SinkPositions, sink_positions, tap_spec_output
from migrate.stream.findings import KeyEvidence, TapReport, changelog_report, tap_report
from migrate.stream.tap import tap_dir


def _batch_schema(ctx: Context, output: str) -> pa.Schema | None:
    run = ctx.batch_run
    if run is None or not has_output(ctx.spec.warehouse_path, run.run_id, output):
        return None
    return run_output(ctx.spec.warehouse_path, run.run_id, output).schema


def _reports(ctx: Context) -> dict[str, TapReport]:
    """Per output with a stream side dualrun can read: the position findings (cached per checklist)."""
    if "positions" in ctx.memo:
        return ctx.memo["positions"]
    spec = ctx.spec
    position = ctx.batch_run.position.order_value if ctx.batch_run is not None else None
    reports: dict[str, TapReport] = {}
    for name, out in spec.outputs.items():
        keys = list(out.keys)
        if spec.is_external:
            if out.stream.topic is None:
                continue  # a sink table: see _sinks
            # Typed like the batch output, as reconcile taps it: segments of one output share one schema.
            with ctx.kafka():
                try:
                    # The checklist does not wait a broker out: unreachable is its own answer (exit 2).
                    tap_spec_output(spec, name, _batch_schema(ctx, name), ctx.timeout, broker_wait_s=ctx.timeout)
                except DualrunError as exc:
                    raise CheckUnavailable(str(exc)) from exc
            reports[name] = tap_report(tap_dir(spec.path("."), spec.stream.group, name), keys, position, output=name)
        else:
            files = sorted(str(p) for p in Path(spec.changelog_path / name).glob("*.parquet"))
            reports[name] = changelog_report(files, keys, position, name)
    ctx.memo["positions"] = reports
    return reports


def _sinks(ctx: Context) -> dict[str, SinkPositions]:
    """Per output the user's job writes to a sink table: its position findings (cached)."""
    if "sinks" in ctx.memo:
        return ctx.memo["sinks"]
    sinks: dict[str, SinkPositions] = {}
    if ctx.spec.is_external:
        for name, out in ctx.spec.outputs.items():
            if out.stream.topic is None and out.stream.table is not None:
                try:
                    sinks[name] = sink_positions(out.stream.table, list(out.keys))[0]
                except ComparatorError as exc:
                    raise CheckUnavailable(f"{name}: {exc}") from exc
    ctx.memo["sinks"] = sinks
    return sinks


def outputs_carry_positions(ctx: Context) -> CheckResult:
    """Every record of every output carries a source position (and could be decoded).

    The position is the `dbz.source` header (or `__source_*`, or dualrun's own) that the job copies
    from its input. Example: `account_balance 1,204 records, all with positions` passes;
    `account_balance 12 of 1,204 records without a position, e.g. key {"account_id": "7"} at
    partition 0 offset 3` fails.
    """
    r = ctx.begin("outputs_carry_positions", "0 records without a source position")
    reports = _reports(ctx)
    sinks = _sinks(ctx)
    if not reports and not sinks:
        return r.skip("no output is read from a topic, a changelog or a sink table")
    # Without positions but with lineage: compared through the offset fence instead (`coverage` gates it).
    fenced = [rep for rep in reports.values() if rep.without_position and not rep.undecodable
              and ctx.spec.outputs[rep.output].lineage]  # fmt: skip
    bad = [rep for rep in reports.values() if (rep.without_position or rep.undecodable) and rep not in fenced]
    bad_sinks = [f"{name} {sink.problem}" for name, sink in sinks.items() if sink.problem]
    if bad or bad_sinks:
        parts = list(bad_sinks)
        for rep in bad:
            sample = rep.without_position_samples[0].to_dict() if rep.without_position_samples else None
            undecodable = f", {rep.undecodable} undecodable" if rep.undecodable else ""
            parts.append(f"{rep.output} {rep.without_position:,} of {rep.records:,} records without a position"
                         f"{undecodable}" + (f", e.g. {sample}" if sample else ""))  # fmt: skip
        return r.failed("; ".join(parts))
    empty = [rep.output for rep in reports.values() if rep.records == 0]
    empty += [name for name, sink in sinks.items() if sink.rows == 0]
    summary = ", ".join([f"{rep.output} {rep.records:,}" for rep in reports.values()]
                        + [f"{name} {sink.rows:,} (sink table)" for name, sink in sinks.items()])  # fmt: skip
    if empty:
        return r.warned(f"no records yet in {', '.join(empty)} (records read: {summary})")
    if fenced:
        names = ", ".join(f"{rep.output} ({rep.without_position:,} of {rep.records:,})" for rep in fenced)
        return r.warned(f"records without a position in {names}: compared through the offset fence and lineage, "
                        "exact outside the window only (see coverage)")  # fmt: skip
    return r.passed(f"every record carries a position ({summary} records)")


def positions_monotone(ctx: Context) -> CheckResult:
    """Per key, positions never go backwards in the order the job wrote them (Kafka offset order).

    Equal positions are ties (Debezium's snapshot events share one), not reordering. A decrease
    (Kafka Streams picks across topics by timestamp; foreign-key joins travel through internal
    topics) leaves the key out of the comparison when it straddles the batch position: then it
    is not verified, and this check fails. Decreases elsewhere only warn.
    Example: `positions never go backwards (3 outputs)` passes; `order_enrichment 2 key(s)
    reordered around the batch position, e.g. ...` fails.
    """
    r = ctx.begin("positions_monotone", "0 keys whose positions go backwards around the batch position")
    reports = _reports(ctx)
    if not reports:
        return r.skip("no output is read from a topic or a changelog")
    around = [(rep.output, rep.reordered_around, rep.reordered_around_samples) for rep in reports.values()]
    if any(n for _, n, _ in around):
        return r.failed(_keys(around, "reordered around the batch position (not verified)"))
    anywhere = [(rep.output, rep.reordered_keys, rep.reordered_samples) for rep in reports.values()]
    if any(n for _, n, _ in anywhere):
        return r.warned(_keys(anywhere, "with positions going backwards away from the batch position"))
    # A sink table has no write order (no offsets) to check against: say so rather than pass it.
    unchecked = "".join(f"; {name}: sink table, write order unknown, not checked" for name in _sinks(ctx))
    return r.passed(f"positions never go backwards per key ({len(reports)} output(s)){unchecked}")


def _keys(found: list[tuple[str, int, tuple[KeyEvidence, ...]]], what: str) -> str:
    return "; ".join(f"{output} {n:,} key(s) {what}, e.g. {samples[0].to_dict()}" for output, n, samples in found if n)
