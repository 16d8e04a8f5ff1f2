"""Checks on the reconciliation history: a streak of clean batch runs per output, and a quiet noise baseline."""

from __future__ import annotations

from contextlib import suppress

from comparators import history
from comparators.errors import ComparatorError, HistoryError
from comparators.report.runs import load_run as load_history_run
from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.coverage import load_coverage, never_verified
from migrate.errors import CheckUnavailable


def parity(ctx: Context) -> CheckResult:
    """The latest reconciliation of every output, and of every output's sink (`<output>@sink`: its
    table vs the output topic), is clean and each has a streak of clean batch runs (distinct source
    states, each judged by its latest reconciliation: re-checking one run counts it once, and batch
    runs at one source position count once); every output's newest reconciliation must judge the
    warehouse's latest batch run (a stream behind it recorded nothing, so older runs must not stand
    in for it), and a sink must have been compared in the latest pipeline run (a sink behind its
    read point was not, and is not clean).

    Example: `orders_enriched streak 3, orders_enriched@sink streak 3, daily_revenue streak 4`
    passes at 3; `daily_revenue latest run has differences (streak 0)` fails, and so do
    `orders_enriched@sink not compared in the latest run` and `orders_enriched batch run X not
    reconciled yet`.
    """
    need = ctx.spec.checklist.min_parity_streak
    r = ctx.begin("parity", f"latest run clean and >= {need} clean batch runs in a row per output")
    path = ctx.spec.history_path
    if not path.exists():
        return r.failed(f"no run history at {path}; reconcile with `dualrun reconcile --spec` first")
    latest_batch = ctx.batch_run
    if latest_batch is None:
        return r.failed(f"no batch run in the warehouse {ctx.spec.warehouse_path}; run `dualrun run batch` first")
    parts, bad = [], 0
    try:
        in_latest: set[str] = set()
        if ctx.sink_names:
            with suppress(HistoryError):  # no run of this spec yet: each output says "never reconciled"
                in_latest = {o.name for o in load_history_run(path, pipeline=ctx.spec.name).outputs}
        for name in [*ctx.output_names, *ctx.sink_names]:
            output = name.rpartition("/")[2]
            latest = history.runs(path, name, limit=1)
            if not latest:
                parts.append(f"{output} never reconciled")
                bad += 1
                continue
            streak = history.parity_streak(path, name)
            if latest[0].verdict not in ("clean", "differences"):  # e.g. sink_behind, sink_failed
                parts.append(f"{output} not compared in the latest run ({latest[0].verdict}; streak 0)")
            elif latest[0].verdict != "clean":
                parts.append(f"{output} latest run has {latest[0].unexplained:,} unexplained differences (streak 0)")
            elif name in ctx.output_names and latest[0].batch_run != latest_batch.run_id:
                parts.append(
                    f"{output} batch run {latest_batch.run_id} not reconciled yet (the stream was behind?); "
                    "run `dualrun reconcile --spec`"
                )
            elif name in ctx.sink_names and name not in in_latest:
                parts.append(f"{output} not compared in the latest run (the sink was behind its read point)")
            elif streak < need:
                parts.append(f"{output} streak {streak} < {need}")
            else:
                parts.append(f"{output} streak {streak}")
                continue
            bad += 1
    except ComparatorError as exc:
        raise CheckUnavailable(str(exc)) from exc
    return r.failed("; ".join(parts)) if bad else r.passed(", ".join(parts))


def coverage(ctx: Context) -> CheckResult:
    """Outputs compared through a window (no positions): enough keys verified over the parity streak.

    The streak's batch runs are each read at their latest check (as the parity streak counts them);
    a key in flight in every one of them was never compared; the share of the latest run's keys
    that were verified at least once must reach `checklist.min_coverage`. Outputs compared exactly
    at a position verify every key (their ledger says so); a run whose ledger is missing cannot be
    evaluated (never read as exact). Example: `orders_enriched 124 keys, 2 never verified over 3
    run(s) (98.4%)` passes at 0.95; `daily_revenue 60 keys, 60 never verified` fails.
    """
    need = ctx.spec.checklist.min_coverage
    r = ctx.begin("coverage", f">= {need:.0%} of keys verified over the parity streak")
    path = ctx.spec.history_path
    if not path.exists():
        return r.failed(f"no run history at {path}; reconcile with `dualrun reconcile --spec` first")
    parts, bad, windowed = [], 0, 0
    try:
        for name in ctx.output_names:
            output = name.rpartition("/")[2]
            # No streak (the latest batch run is not clean): its latest check alone.
            checks = history.streak_runs(path, name) or [run.run_id for run in history.runs(path, name, limit=1)]
            runs = [load_coverage(ctx.spec, output, run_id) for run_id in checks]
            latest = runs[0] if runs else None
            if latest is None:
                continue  # never reconciled (parity says so), or compared exactly at a position
            windowed += 1
            never = len(never_verified(runs))
            keys = latest[0].keys
            share = 1 - never / keys if keys else 1.0
            parts.append(f"{output} {keys:,} keys, {never:,} never verified over {len(runs)} run(s) ({share:.1%}), "
                         f"{latest[0].in_flight:,} in flight in the latest")  # fmt: skip
            bad += share < need
    except ComparatorError as exc:
        raise CheckUnavailable(str(exc)) from exc
    if not windowed:
        return r.passed("every output is compared exactly at the batch position (no window)")
    return r.failed("; ".join(parts)) if bad else r.passed("; ".join(parts))


def noise_baseline(ctx: Context) -> CheckResult:
    """The latest run's noise baseline (batch vs its rerun, stream vs its replay) is below the threshold.

    Example: `batch vs batch rerun 0 rows on 3 output(s)` passes at 0;
    `stream vs stream replay 12 rows (daily_revenue)` fails. No baseline measured warns.
    """
    limit = ctx.spec.checklist.max_noise_rows
    r = ctx.begin("noise_baseline", f"<= {limit:,} unexplained rows between a side and its own rerun")
    path = ctx.spec.history_path
    if not path.exists():
        return r.failed(f"no run history at {path}")
    try:
        report = load_history_run(path, pipeline=ctx.spec.name)
    except ComparatorError as exc:
        return r.failed(str(exc))
    noise: dict[str, int] = {}
    where: dict[str, list[str]] = {}
    for output in report.outputs:
        for what, baseline in output.result.baselines:
            noise[what] = noise.get(what, 0) + baseline.unexplained
            if baseline.unexplained:
                where.setdefault(what, []).append(output.output)
    if not noise:
        return r.warned("no noise baseline was measured in the latest run (rerun the batch / replay the stream)")
    detail = ", ".join(
        f"{what} {n:,} rows" + (f" ({', '.join(where[what])})" if what in where else "") for what, n in noise.items()
    )
    total = sum(noise.values())
    return r.passed(detail) if total <= limit else r.failed(detail)
