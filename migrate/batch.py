"""The legacy nightly batch job: each output's SQL from the spec, in one consistent snapshot of the
source, with its source position; the outputs go to the DuckDB warehouse under a run id.

MariaDB reports the binlog coordinates of a `START TRANSACTION WITH CONSISTENT
SNAPSHOT` in the `binlog_snapshot_file`/`binlog_snapshot_position` status
variables, without a global read lock; `BINLOG_GTID_POS()` turns them into the
GTID position. Every row the job reads is exactly the database at that position.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cdc.position import Position, parse_lsn
from cdc.visibility import PgSnapshot
from migrate.errors import DualrunError
from migrate.snapshot import binlog_position as snapshot_position  # noqa: F401 - re-exported
from migrate.snapshot import consistent_snapshot
from migrate.snapshot import mariadb_error as translate  # noqa: F401 - re-exported
from migrate.sourcedb import (
    CHUNK_ROWS,
    check_columns,
    chunks,
    describe_source,  # noqa: F401 - re-exported
    driver_sql,
    source_url,  # noqa: F401 - re-exported
)
from migrate.spec import OutputSpec, PipelineSpec
from migrate.spec.columns import MAX_DECIMAL_PRECISION, arrow_type

RERUN = "~rerun"
RUNS_TABLE = "batch_runs"
# Server errors about the query itself (syntax, unknown column/table/function, GROUP BY, ambiguity):
# the output's SQL is wrong, not the source.
QUERY_ERRORS = {1052, 1054, 1055, 1056, 1060, 1064, 1111, 1140, 1146, 1222, 1241, 1242, 1267, 1305, 1630}
_RUN_COLUMNS = "run_id, started_at, finished_at, pos_file, pos_offset, gtid, pos_order, rows, pg_snapshot"


@dataclass(frozen=True)
class BatchRun:
    """One run of the nightly job: where it read the source, and what it wrote."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    position: Position
    rows: dict[str, int] = field(default_factory=dict)
    # PostgreSQL: the batch transaction's snapshot; `position` is then its WAL bracket's upper end
    # until `migrate.pgsource.resolve` places the snapshot in the stream.
    snapshot: PgSnapshot | None = None

    @property
    def where(self) -> str:
        """Where it read the source, for people: the position, or the PostgreSQL snapshot (with the
        stream position it was placed at, once reconcile placed it)."""
        if self.snapshot is None:
            return str(self.position)
        return f"snapshot {self.snapshot} ({self.position})"

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
            **({"snapshot": self.snapshot.to_dict()} if self.snapshot is not None else {}),
        }


# MySQL protocol column types (pymysql.constants.FIELD_TYPE) -> Arrow, by family.
DECIMAL_TYPES = {0, 246}  # DECIMAL, NEWDECIMAL
LONGLONG_TYPE = 8
_INTEGERS = {1: 8, 2: 16, 9: 32, 3: 32, LONGLONG_TYPE: 64}  # TINY, SHORT, INT24, LONG, LONGLONG -> bits
_FLOATS = {4: pa.float32(), 5: pa.float64()}
DATE_TYPES = {10, 14}  # DATE, NEWDATE
DATETIME_TYPES = {7, 12}  # TIMESTAMP, DATETIME
TIME_TYPE = 11
_YEAR, _NULL, _BIT = 13, 6, 16
_BINARY_CHARSET = 63
UNSIGNED_FLAG = 32


def result_fields(result: sa.CursorResult[Any]) -> list[Any] | None:
    """pymysql's column definitions of a result set (type code, flags, length, scale); None when
    there is no result set. DB-API's `cursor.description` has no flags (UNSIGNED) and loses the
    server's length, so this reads pymysql's result, which it does not document as public."""
    fields = getattr(getattr(result.cursor, "_result", None), "fields", None)
    return list(fields) if fields else None


def _column_type(field: Any) -> pa.DataType:
    """The Arrow type of one result-set column, from the server's column definition.

    DECIMAL keeps its precision and scale (the server's length counts the sign, unless unsigned,
    and the decimal point), capped at 38 digits: a value that does not fit fails the run loudly
    rather than losing digits. Integers keep their width; DATETIME(0-3) maps to milliseconds.
    """
    code, length, scale = field.type_code, field.length, field.scale
    unsigned = bool(field.flags & UNSIGNED_FLAG)
    if code in DECIMAL_TYPES:
        digits = length - (1 if scale > 0 else 0) - (0 if unsigned else 1)
        return pa.decimal128(max(1, min(MAX_DECIMAL_PRECISION, digits)), min(scale, MAX_DECIMAL_PRECISION))
    if code in _INTEGERS:
        bits = _INTEGERS[code]
        return getattr(pa, f"uint{bits}" if unsigned else f"int{bits}")()
    if code in _FLOATS:
        return _FLOATS[code]
    if code in DATE_TYPES:
        return pa.date32()
    if code in DATETIME_TYPES:
        return pa.timestamp("ms" if scale <= 3 else "us")
    if code == TIME_TYPE:
        return pa.duration("us")
    if code == _YEAR:
        return pa.int16()
    if code == _NULL:
        return pa.null()
    if code == _BIT or field.charsetnr == _BINARY_CHARSET:
        return pa.binary()
    return pa.string()  # VARCHAR, CHAR, TEXT, ENUM, SET, JSON


def result_schema(fields: list[Any], output: str, overrides: dict[str, str]) -> pa.Schema:
    """The output's schema: the result set's column types, with the spec's `columns` overrides."""
    check_columns([f.name for f in fields], output, overrides)
    return pa.schema(
        [(f.name, arrow_type(overrides[f.name]) if f.name in overrides else _column_type(f)) for f in fields]
    )


def _read_output(conn: Connection, name: str, output: OutputSpec) -> pa.Table:
    sql = driver_sql(output.batch.sql_text())
    try:
        result = conn.execution_options(stream_results=True, max_row_buffer=CHUNK_ROWS).exec_driver_sql(sql)
    except sa.exc.DBAPIError as exc:
        code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
        if code not in QUERY_ERRORS:
            raise
        detail = exc.orig.args[1] if exc.orig is not None and len(exc.orig.args) > 1 else str(exc.orig)
        raise DualrunError(f"outputs.{name}.batch: the source rejected the query: {detail}") from None
    fields = result_fields(result)
    if not fields:
        raise DualrunError(f"outputs.{name}.batch: the query returns no result set; it must be one SELECT")
    schema = result_schema(fields, name, output.batch.columns)
    return pa.Table.from_batches(list(chunks(result, schema, name)), schema=schema)


def read_snapshot(
    spec: PipelineSpec, outputs: Mapping[str, OutputSpec] | None = None, *, rerun: bool = False
) -> tuple[Position, dict[str, pa.Table], PgSnapshot | None]:
    """Run each output's query inside one consistent snapshot; returns its position, outputs and,
    on PostgreSQL, the snapshot itself (`migrate.pgsource`).

    The queries run as written, in the source's dialect; column types come from the result set
    (see `result_schema`). With `rerun`, every query runs a second time in the same snapshot
    (outputs `NAME~rerun`): the same data, so any difference is the job's own noise (unordered
    LIMITs, float sums, NOW()).
    """
    from migrate import pgsource

    queries = spec.outputs if outputs is None else outputs
    # Each source kind types its result sets its own way; the snapshot and the loop are shared.
    read = pgsource.read_output if spec.source.kind == "postgres" else _read_output
    tables: dict[str, pa.Table] = {}
    with consistent_snapshot(spec) as opened:
        for suffix in ("", RERUN) if rerun else ("",):
            for name, output in queries.items():
                tables[name + suffix] = read(opened.conn, name, output)
    if opened.pg is not None:  # PostgreSQL: the snapshot, placed in the stream later
        return pgsource.batch_position(opened.pg), tables, opened.pg
    assert opened.position is not None  # MariaDB
    return opened.position, tables, None


def ensure_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, "
        "finished_at TIMESTAMPTZ, pos_file VARCHAR, pos_offset BIGINT, gtid VARCHAR, pos_order BIGINT, rows JSON, "
        "pg_snapshot JSON)"
    )
    # Warehouses written before PostgreSQL sources lack the column.
    con.execute(f"ALTER TABLE {RUNS_TABLE} ADD COLUMN IF NOT EXISTS pg_snapshot JSON")


def run_batch(spec: PipelineSpec) -> BatchRun:
    """The nightly job: read in one snapshot, append the outputs to the warehouse under a run id."""
    started = datetime.now(UTC)
    position, tables, snapshot = read_snapshot(spec, rerun=spec.batch.rerun_for_noise)
    run = BatchRun(
        run_id=started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6],
        started_at=started,
        finished_at=datetime.now(UTC),
        position=position,
        rows={name: t.num_rows for name, t in tables.items() if not name.endswith(RERUN)},
        snapshot=snapshot,
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
            try:
                con.execute(f'INSERT INTO "{name}" BY NAME SELECT *, ? AS __batch_run FROM incoming', [output_id])
            except duckdb.Error as exc:
                raise DualrunError(
                    f"warehouse {warehouse}: output {name} no longer has the columns of earlier runs ({exc}); "
                    "drop its table or point batch.warehouse at a new file"
                ) from None
            con.unregister("incoming")
        if run_id is not None:
            con.execute("COMMIT")
            return
        p = run.position
        con.execute(
            f"INSERT INTO {RUNS_TABLE} ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run.run_id,
                run.started_at,
                run.finished_at,
                p.file,
                p.minor,
                p.gtid,
                p.order_value,
                json.dumps(run.rows),
                json.dumps(run.snapshot.to_dict()) if run.snapshot is not None else None,
            ],  # fmt: skip
        )
        con.execute("COMMIT")


def load_run(warehouse: Path, run_id: str = "latest") -> BatchRun:
    """A recorded run by id, or the latest one."""
    import json

    if not warehouse.exists():
        raise DualrunError(f"no batch run recorded yet in {warehouse}; run `dualrun run batch` first")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        has_pg = con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND column_name = 'pg_snapshot'",
            [RUNS_TABLE],
        ).fetchone()
        columns = _RUN_COLUMNS if has_pg and has_pg[0] else _RUN_COLUMNS.replace("pg_snapshot", "NULL")
        query = f"SELECT {columns} FROM {RUNS_TABLE} " + (
            # Runs over the change log (`migrate.logbatch`, ids ending ~log) are a side of their own.
            "WHERE run_id NOT LIKE '%~log' ORDER BY started_at DESC LIMIT 1"
            if run_id == "latest"
            else "WHERE run_id = ?"
        )
        row = con.execute(query, [] if run_id == "latest" else [run_id]).fetchone()
    if row is None:
        raise DualrunError(f"batch run {run_id!r} not found in {warehouse}; see `dualrun run batch`")
    run_id_, started, finished, file, offset, gtid, _, rows, pg = row
    if pg is not None:
        data = json.loads(pg)
        snapshot = PgSnapshot.parse(data["snapshot"], *(_lsn(data.get(k)) for k in ("lsn_before", "lsn_after")))
        return BatchRun(run_id_, started, finished, Position.lsn(int(offset)), json.loads(rows), snapshot)
    return BatchRun(run_id_, started, finished, Position.binlog_snapshot(file, offset, gtid), json.loads(rows))


def _lsn(stored: str | int | None) -> int | None:
    """An LSN of a stored snapshot: text (`format_lsn`) or, written before, its integer."""
    return None if stored is None else parse_lsn(stored)


def _has_table(con: duckdb.DuckDBPyConnection, output: str) -> bool:
    rows = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [output]).fetchall()
    return bool(rows[0][0])


def has_output(warehouse: Path, run_id: str, output: str) -> bool:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        if not _has_table(con, output):
            return False
        query = f'SELECT count(*) > 0 FROM (SELECT 1 FROM "{output}" WHERE __batch_run = ? LIMIT 1)'
        row = con.execute(query, [run_id]).fetchone()
    return bool(row and row[0])


def run_output(warehouse: Path, run_id: str, output: str) -> pa.Table:
    """One output of one run, as Arrow (without the run column); DualrunError when never written."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        if not _has_table(con, output):
            raise DualrunError(
                f"warehouse {warehouse} has no output {output!r}: the batch job never wrote it; "
                "run `dualrun run batch` with this spec first"
            )
        query = f'SELECT * EXCLUDE (__batch_run) FROM "{output}" WHERE __batch_run = ?'
        return con.sql(query, params=[run_id]).to_arrow_table()
