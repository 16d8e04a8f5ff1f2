"""The rollback check: going back to the batch job stays possible."""

from __future__ import annotations

import sqlalchemy as sa

from migrate.batch import driver_sql, snapshot_position, source_url, translate
from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.errors import CheckUnavailable, DualrunError, SourceUnavailable


def _batch_still_runs(ctx: Context) -> str:
    """Open the batch job's consistent snapshot, read its position and plan every batch query (LIMIT 0)."""
    engine = sa.create_engine(
        source_url(ctx.spec), isolation_level="REPEATABLE READ", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            position = snapshot_position(conn)
            for output in ctx.spec.outputs.values():
                conn.exec_driver_sql(f"SELECT * FROM ({driver_sql(output.batch.sql_text())}) AS q LIMIT 0")
            conn.exec_driver_sql("COMMIT")
    except sa.exc.DBAPIError as exc:
        error = translate(exc, ctx.spec)
        if isinstance(error, SourceUnavailable):
            raise CheckUnavailable(str(error)) from None
        raise error from None
    finally:
        engine.dispose()
    return str(position)


def rollback_ready(ctx: Context) -> CheckResult:
    """Going back stays possible: the batch job can still read the source in a consistent snapshot
    with a position, its last run is recorded, and the stream's committed offsets exist.

    Example: `batch snapshot at 0-1-812 (3 batch queries prepared), last batch run 20240501T020000-ab12cd;
    group dualrun-stream committed on 2/2 partition(s)` passes.
    """
    r = ctx.begin("rollback_ready", "batch snapshot+queries work, batch run recorded, stream offsets committed")
    problems, facts = [], []
    try:
        position = _batch_still_runs(ctx)
        facts.append(f"batch snapshot at {position} ({len(ctx.spec.outputs)} batch queries prepared)")
    except CheckUnavailable:
        raise
    except DualrunError as exc:
        problems.append(f"the batch job cannot run: {exc}")
    run = ctx.batch_run
    if run is None:
        problems.append(f"no batch run recorded in {ctx.spec.warehouse_path}")
    else:
        facts.append(f"last batch run {run.run_id}")
    group = ctx.spec.stream.group
    existing = [t for t in ctx.change_topics if ctx.topic_exists(t)]
    if not existing:
        problems.append("no change topic exists, so no stream offsets can be committed")
    else:
        lag = ctx.group_lag(group, existing)
        committed = [p for p in lag.partitions if p.committed is not None]
        if len(committed) < len(lag.partitions):
            missing = sorted({f"{p.topic}[{p.partition}]" for p in lag.partitions if p.committed is None})
            problems.append(f"group {group} has no committed offset on {', '.join(missing)}")
        else:
            facts.append(f"group {group} committed on {len(committed)}/{len(lag.partitions)} partition(s)")
    if problems:
        return r.failed("; ".join(problems + facts))
    return r.passed("; ".join(facts))
