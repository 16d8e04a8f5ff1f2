"""The legacy nightly batch job: plain SQL in one consistent snapshot, with its source position.

MariaDB reports the binlog coordinates of a `START TRANSACTION WITH CONSISTENT
SNAPSHOT` in the `binlog_snapshot_file`/`binlog_snapshot_position` status
variables, without a global read lock; `BINLOG_GTID_POS()` turns them into the
GTID position. Every row the job reads is exactly the database at that position.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

from cdc.position import Position
from migrate.errors import DualrunError, SourceUnavailable
from migrate.pipeline import BATCH_SQL, SCHEMAS
from migrate.spec import PipelineSpec

CHUNK_ROWS = 50_000
RERUN = "~rerun"
RUNS_TABLE = "batch_runs"


@dataclass(frozen=True)
class BatchRun:
    """One run of the nightly job: where it read the source, and what it wrote."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    position: Position
    rows: dict[str, int] = field(default_factory=dict)
    defect: str | None = None

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "position": self.position.to_dict(),
            "rows": dict(self.rows),
        }


def source_url(spec: PipelineSpec) -> URL:
    return make_url(spec.source.url).set(password=spec.source.password())


def describe_source(spec: PipelineSpec) -> str:
    """host:port/db of the source, for messages (never the password)."""
    url = make_url(spec.source.url)
    return f"{url.username}@{url.host}:{url.port or 3306}/{url.database}"


def translate(exc: sa.exc.DBAPIError, spec: PipelineSpec) -> DualrunError:
    """A database error -> one line saying what, where and what to do."""
    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    detail = exc.orig.args[1] if exc.orig is not None and len(exc.orig.args) > 1 else str(exc.orig)
    where = describe_source(spec)
    if code == 1045:
        return DualrunError(f"source {where} refused the login: {detail}; check ${spec.source.password_env}")
    if code == 1146:
        return DualrunError(f"source {where}: {detail}; is the source schema created?")
    if code in (2003, 2005, 2013):
        return SourceUnavailable(f"source {where} is not reachable: {detail}; is the database running?")
    return DualrunError(f"source {where}: {detail}")


def snapshot_position(conn: Connection) -> Position:
    status = {str(k).lower(): str(v) for k, v in conn.exec_driver_sql("SHOW STATUS LIKE 'binlog_snapshot_%%'")}
    file, pos = status.get("binlog_snapshot_file"), status.get("binlog_snapshot_position")
    if not file or pos is None:
        raise DualrunError("the source has no binary log: enable log_bin (row format) so positions can be recorded")
    gtid = conn.exec_driver_sql("SELECT BINLOG_GTID_POS(%s, %s)", (file, int(pos))).scalar()
    return Position.binlog_snapshot(file, int(pos), gtid=str(gtid) if gtid else None)


def _chunks(conn: Connection, sql: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    result = conn.execution_options(stream_results=True, max_row_buffer=CHUNK_ROWS).exec_driver_sql(sql)
    names = schema.names
    while rows := result.fetchmany(CHUNK_ROWS):
        columns = list(zip(*rows, strict=True))
        yield pa.RecordBatch.from_arrays(
            [pa.array(col, type=schema.field(n).type) for n, col in zip(names, columns, strict=True)], schema=schema
        )


def read_snapshot(
    spec: PipelineSpec, outputs: dict[str, str] | None = None, *, rerun: bool = False
) -> tuple[Position, dict[str, pa.Table]]:
    """Run the job's queries inside one consistent snapshot; returns its position and outputs.

    With `rerun`, every query runs a second time in the same snapshot (outputs `NAME~rerun`):
    the same data, so any difference is the job's own noise (unordered LIMITs, float sums, NOW()).
    """
    engine = sa.create_engine(source_url(spec), isolation_level="REPEATABLE READ", pool_pre_ping=False)
    tables: dict[str, pa.Table] = {}
    queries = outputs or BATCH_SQL
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            position = snapshot_position(conn)
            for suffix in ("", RERUN) if rerun else ("",):
                for name, sql in queries.items():
                    schema = SCHEMAS[name]
                    tables[name + suffix] = pa.Table.from_batches(list(_chunks(conn, sql, schema)), schema=schema)
            conn.exec_driver_sql("COMMIT")
    except sa.exc.DBAPIError as exc:
        raise translate(exc, spec) from None
    finally:
        engine.dispose()
    return position, tables


def ensure_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, "
        "finished_at TIMESTAMPTZ, pos_file VARCHAR, pos_offset BIGINT, gtid VARCHAR, pos_order BIGINT, "
        "rows JSON, defect VARCHAR)"
    )


def run_batch(spec: PipelineSpec) -> BatchRun:
    """The nightly job: read in one snapshot, append the outputs to the warehouse under a run id."""
    started = datetime.now(UTC)
    position, tables = read_snapshot(spec, rerun=spec.batch.rerun_for_noise)
    run = BatchRun(
        run_id=started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6],
        started_at=started,
        finished_at=datetime.now(UTC),
        position=position,
        rows={name: t.num_rows for name, t in tables.items() if not name.endswith(RERUN)},
    )
    reruns = {name.removesuffix(RERUN): t for name, t in tables.items() if name.endswith(RERUN)}
    write_run(spec.warehouse_path, run, {n: t for n, t in tables.items() if not n.endswith(RERUN)})
    if reruns:
        write_run(spec.warehouse_path, run, reruns, run_id=run.run_id + RERUN)
    return run


def write_run(warehouse: Path, run: BatchRun, tables: dict[str, pa.Table], *, run_id: str | None = None) -> None:
    """Append the outputs under `run_id` (default the run's); only the run itself is listed in batch_runs."""
    import json

    output_id = run_id or run.run_id
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse)) as con:
        ensure_warehouse(con)
        con.execute("BEGIN")
        for name, table in tables.items():
            con.register("incoming", table)
            con.execute(f"CREATE TABLE IF NOT EXISTS \"{name}\" AS SELECT *, '' AS __batch_run FROM incoming LIMIT 0")
            con.execute(f'INSERT INTO "{name}" SELECT *, ? FROM incoming', [output_id])
            con.unregister("incoming")
        if run_id is not None:
            con.execute("COMMIT")
            return
        p = run.position
        con.execute(
            f"INSERT INTO {RUNS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run.run_id, run.started_at, run.finished_at, p.file, p.minor, p.gtid, p.order_value,
             json.dumps(run.rows), run.defect],
        )  # fmt: skip
        con.execute("COMMIT")


def load_run(warehouse: Path, run_id: str = "latest") -> BatchRun:
    """A recorded run by id, or the latest one."""
    import json

    if not warehouse.exists():
        raise DualrunError(f"no batch run recorded yet in {warehouse}; run `dualrun run batch` first")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        query = f"SELECT * FROM {RUNS_TABLE} " + (
            "ORDER BY started_at DESC LIMIT 1" if run_id == "latest" else "WHERE run_id = ?"
        )
        row = con.execute(query, [] if run_id == "latest" else [run_id]).fetchone()
    if row is None:
        raise DualrunError(f"batch run {run_id!r} not found in {warehouse}; see `dualrun run batch`")
    run_id_, started, finished, file, offset, gtid, _, rows, defect = row
    return BatchRun(run_id_, started, finished, Position.binlog_snapshot(file, offset, gtid), json.loads(rows), defect)


def has_output(warehouse: Path, run_id: str, output: str) -> bool:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        query = f'SELECT count(*) > 0 FROM (SELECT 1 FROM "{output}" WHERE __batch_run = ? LIMIT 1)'
        row = con.execute(query, [run_id]).fetchone()
    return bool(row and row[0])


def run_output(warehouse: Path, run_id: str, output: str) -> pa.Table:
    """One output of one run, as Arrow (without the run column)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        query = f'SELECT * EXCLUDE (__batch_run) FROM "{output}" WHERE __batch_run = ?'
        return con.sql(query, params=[run_id]).to_arrow_table()
