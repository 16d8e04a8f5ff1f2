"""The rollback check: going back to the batch job stays possible."""

from __future__ import annotations

import sqlalchemy as sa

from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.errors import CheckUnavailable, DualrunError, SourceUnavailable
from migrate.snapshot import consistent_snapshot
from migrate.sourcedb import driver_sql
from migrate.spec.model import BatchImportSpec


def _batch_still_runs(ctx: Context) -> tuple[str, int]:
    """Open the batch job's consistent snapshot (MariaDB or PostgreSQL: `migrate.snapshot`), read
    its position and plan every batch query dualrun runs (LIMIT 0); imported outputs have none.
    Returns the position and how many queries were planned."""
    from migrate.pgsource import batch_position

    queries = [out.batch.sql_text() for out in ctx.spec.outputs.values() if out.batch.import_ is None]
    try:
        with consistent_snapshot(ctx.spec, connect_timeout=5) as opened:
            position = batch_position(opened.pg) if opened.pg is not None else opened.position
            for sql in queries:
                opened.conn.exec_driver_sql(f"SELECT * FROM ({driver_sql(sql)}) AS q LIMIT 0")
    except SourceUnavailable as exc:
        raise CheckUnavailable(str(exc)) from None
    return str(position), len(queries)


def imported_from(where: BatchImportSpec) -> str:
    """Where an external job writes an output, for evidence (a URL without its password).

    >>> imported_from(BatchImportSpec(parquet="/data/orders.parquet"))
    'Parquet /data/orders.parquet'
    >>> imported_from(BatchImportSpec(url="postgresql+psycopg://etl@wh/db", table="orders"))
    'table orders at postgresql+psycopg://etl@wh/db'
    """
    if where.parquet is not None:
        return f"Parquet {where.parquet}"
    if where.csv is not None:
        return f"CSV {where.csv}"
    assert where.url is not None  # BatchImportSpec._one_place
    url = sa.engine.make_url(where.url).render_as_string(hide_password=True)
    return f"table {where.table} at {url}" if where.table is not None else f"a query at {url}"


def _last_run(ctx: Context) -> tuple[list[str], list[str]]:
    """(facts, problems) about the batch run to go back to. For outputs an external job writes
    (`batch.import`), dualrun runs no SQL: the last run must be bracketed by `batch mark`, and the
    evidence names what each output imports."""
    from migrate.marks import load_bracket

    run = ctx.batch_run
    if run is None:
        return [], [f"no batch run recorded in {ctx.spec.warehouse_path}"]
    imports = {name: out.batch.import_ for name, out in ctx.spec.outputs.items() if out.batch.import_ is not None}
    if not imports:
        return [f"last batch run {run.run_id}"], []
    facts = [f"{name} imported from {imported_from(where)}" for name, where in imports.items()]
    bracket = load_bracket(ctx.spec, run.run_id)
    if bracket is None:
        return facts, [
            f"the last batch run {run.run_id} was not bracketed by `batch mark`; run the external job with "
            "`dualrun run batch --external -- COMMAND`"
        ]
    return [f"last bracketed run {run.run_id} ({bracket.begin.position} .. {bracket.end.position})", *facts], []


def rollback_ready(ctx: Context) -> CheckResult:
    """Going back stays possible: the batch job can still read the source in a consistent snapshot
    with a position (MariaDB or PostgreSQL), its last run is recorded, and the stream's committed
    offsets exist. For outputs an external job writes (`batch.import`) dualrun plans no SQL: the
    last run must be bracketed, and the evidence names what each output imports.

    Example: `batch snapshot at 0-1-812 (3 batch queries prepared), last batch run 20240501T020000-ab12cd;
    group dualrun-stream committed on 2/2 partition(s)` passes; `batch snapshot at 0-1-900 (0 batch
    queries prepared); last bracketed run 20240501T020000-ab12cd (0-1-850 .. 0-1-870); orders_enriched
    imported from Parquet /data/orders.parquet; ...` passes too.
    """
    r = ctx.begin("rollback_ready", "batch snapshot+queries work, batch run recorded, stream offsets committed")
    problems, facts = [], []
    try:
        position, planned = _batch_still_runs(ctx)
        facts.append(f"batch snapshot at {position} ({planned} batch queries prepared)")
    except CheckUnavailable:
        raise
    except DualrunError as exc:
        problems.append(f"the batch job cannot run: {exc}")
    run_facts, run_problems = _last_run(ctx)
    facts += run_facts
    problems += run_problems
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
