"""Checks on the reconciliation history: a streak of clean runs per output, and a quiet noise baseline."""

from __future__ import annotations

from comparators import history
from comparators.errors import ComparatorError
from comparators.report.runs import load_run as load_history_run
from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.errors import CheckUnavailable


def parity(ctx: Context) -> CheckResult:
    """The latest reconciliation of every output is clean and each has a streak of clean runs.

    Example: `orders_enriched streak 3, order_alerts streak 3, daily_revenue streak 4` passes
    at 3; `daily_revenue latest run has differences (streak 0)` fails.
    """
    need = ctx.spec.checklist.min_parity_streak
    r = ctx.begin("parity", f"latest run clean and >= {need} consecutive clean runs per output")
    path = ctx.spec.history_path
    if not path.exists():
        return r.failed(f"no run history at {path}; reconcile with `dualrun reconcile --spec` first")
    parts, bad = [], 0
    try:
        for name in ctx.output_names:
            output = name.rpartition("/")[2]
            latest = history.runs(path, name, limit=1)
            if not latest:
                parts.append(f"{output} never reconciled")
                bad += 1
                continue
            streak = history.parity_streak(path, name)
            if latest[0].verdict != "clean":
                parts.append(f"{output} latest run has {latest[0].unexplained:,} unexplained differences (streak 0)")
            elif streak < need:
                parts.append(f"{output} streak {streak} < {need}")
            else:
                parts.append(f"{output} streak {streak}")
                continue
            bad += 1
    except ComparatorError as exc:
        raise CheckUnavailable(str(exc)) from exc
    return r.failed("; ".join(parts)) if bad else r.passed(", ".join(parts))


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
