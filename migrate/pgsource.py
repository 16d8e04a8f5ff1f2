"""PostgreSQL as the batch source: the outputs read in one REPEATABLE READ snapshot, the snapshot as
the batch position, and that position resolved against the stream.

The batch transaction is `REPEATABLE READ READ ONLY`; its first statement takes the snapshot and
returns it with `pg_current_snapshot()` and `pg_current_wal_insert_lsn()` (read after the
snapshot, so every visible transaction's commit record ends at or before it). A change is at or
before the batch iff its transaction is visible in the snapshot (`cdc.visibility`).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cdc.position import Position
from cdc.visibility import PgSnapshot, StreamCut, find_cut
from migrate.errors import DualrunError
from migrate.snapshot import error_detail
from migrate.snapshot import postgres_error as translate  # noqa: F401 - re-exported
from migrate.sourcedb import CHUNK_ROWS, check_columns, chunks, driver_sql
from migrate.spec import OutputSpec, PipelineSpec
from migrate.spec.columns import MAX_DECIMAL_PRECISION, arrow_type

# PostgreSQL type OIDs (pg_type.oid, stable across versions) -> Arrow, by family.
_INTEGERS = {21: pa.int16(), 23: pa.int32(), 20: pa.int64(), 26: pa.uint32()}  # int2, int4, int8, oid
_FLOATS = {700: pa.float32(), 701: pa.float64()}
_NUMERIC, _BOOL, _DATE, _TIME, _BYTEA = 1700, 16, 1082, 1083, 17
_TIMESTAMPS = {1114: None, 1184: "UTC"}  # timestamp, timestamptz (psycopg returns aware UTC-convertible values)
# SQLSTATE classes that mean the output's SQL is wrong, not the source: syntax or access rule
# violations (42), data exceptions (22), cardinality (21).
_QUERY_CLASSES = ("42", "22", "21")


def _column_type(column: Any, output: str) -> pa.DataType:
    """The Arrow type of one result-set column (a psycopg `Column`), exactly.

    NUMERIC keeps its declared precision and scale (capped at 38 digits); an unconstrained
    NUMERIC (an aggregate such as SUM) has none to keep, so it must be declared in `columns`.
    TIMESTAMP(0-3) maps to milliseconds, more to microseconds.
    """
    oid = column.type_code
    if oid == _NUMERIC:
        if column.precision is None or column.scale is None:
            raise DualrunError(
                f"outputs.{output}.batch: column {column.name} is NUMERIC without precision and scale "
                f"(an aggregate?); declare it in outputs.{output}.batch.columns, e.g. {column.name}: DECIMAL(18,2)"
            )
        return pa.decimal128(min(column.precision, MAX_DECIMAL_PRECISION), min(column.scale, MAX_DECIMAL_PRECISION))
    if oid in _INTEGERS:
        return _INTEGERS[oid]
    if oid in _FLOATS:
        return _FLOATS[oid]
    if oid == _BOOL:
        return pa.bool_()
    if oid == _DATE:
        return pa.date32()
    if oid in _TIMESTAMPS:
        fsp = column.precision if column.precision is not None else 6
        return pa.timestamp("ms" if fsp <= 3 else "us", tz=_TIMESTAMPS[oid])
    if oid == _TIME:
        return pa.time64("us")
    if oid == _BYTEA:
        return pa.binary()
    return pa.string()  # text, varchar, bpchar, json, uuid, enums: their text form


def result_schema(columns: list[Any], output: str, overrides: dict[str, str]) -> pa.Schema:
    check_columns([c.name for c in columns], output, overrides)
    return pa.schema(
        [(c.name, arrow_type(overrides[c.name]) if c.name in overrides else _column_type(c, output)) for c in columns]
    )


def read_output(conn: Connection, name: str, output: OutputSpec) -> pa.Table:
    """One output's query on PostgreSQL, typed from its result set (`result_schema`)."""
    try:
        # Per statement: Connection.execution_options would make the COMMIT a server-side cursor too.
        result = conn.exec_driver_sql(
            driver_sql(output.batch.sql_text()),
            execution_options={"stream_results": True, "max_row_buffer": CHUNK_ROWS},
        )
    except sa.exc.DBAPIError as exc:
        state = str(getattr(exc.orig, "sqlstate", "") or "")
        if not state.startswith(_QUERY_CLASSES):
            raise
        raise DualrunError(f"outputs.{name}.batch: the source rejected the query: {error_detail(exc)}") from None
    columns = result.cursor.description if result.cursor is not None else None
    if not columns:
        raise DualrunError(f"outputs.{name}.batch: the query returns no result set; it must be one SELECT")
    schema = result_schema(list(columns), name, output.batch.columns)
    return pa.Table.from_batches(list(chunks(result, schema, name)), schema=schema)


def batch_position(snapshot: PgSnapshot) -> Position:
    """The batch run's recorded position before it is resolved against the stream: the WAL
    bracket's upper end (every visible transaction committed at or before it)."""
    if snapshot.lsn_after is None:
        raise DualrunError("a PostgreSQL batch snapshot without its WAL position; rerun the batch")
    return Position.lsn(snapshot.lsn_after)


def committed_lsn(spec: PipelineSpec) -> int | None:
    """Debezium's committed source offset (`lsn_proc`, else `lsn`): WAL it has fully processed,
    moved along by heartbeats on a quiet database. None when unknown."""
    from cdc.errors import CdcError

    secret = spec.cdc.known_password()
    client = spec.cdc.connect_client(retries=1, secrets=(secret,) if secret else ())
    try:
        offsets = client.offsets(spec.cdc.connector)
    except CdcError:
        return None
    values = [
        int(offset[field])
        for entry in offsets
        if isinstance(offset := entry.get("offset"), dict)
        for field in ("lsn_proc", "lsn")
        if offset.get(field) is not None
    ]
    return max(values) if values else None


def resolve(spec: PipelineSpec, snapshot: PgSnapshot, started_ms: int) -> StreamCut:
    """Where the batch snapshot falls in the stream (see `cdc.visibility.stream_cut`)."""
    return find_cut(spec.kafka.client(), spec.cdc.topic_prefix, snapshot, started_ms, committed_lsn(spec))


def place(spec: PipelineSpec, snapshot: PgSnapshot, started_at: datetime, timeout: float) -> StreamCut:
    """The stream cut of a batch run's snapshot (`resolve`), polled until complete (Debezium has
    passed the snapshot's WAL position) or `timeout`. The run's changes at or before the batch
    are then those with order value <= `cut.bound` (`Position.lsn(cut.bound)`).

    A snapshot whose visible transactions are not a prefix of the commit order matches no state of
    the stream: DualrunError (rerun the batch), never a comparison.
    """
    deadline = time.monotonic() + timeout
    started_ms = int(started_at.timestamp() * 1000)
    while True:
        cut = resolve(spec, snapshot, started_ms)
        if cut.stray:
            txids = ", ".join(str(t) for t, _ in cut.stray[:5])
            before = cut.first_invisible[0] if cut.first_invisible else "?"
            raise DualrunError(
                f"the batch snapshot {snapshot} sees transaction(s) {txids}, which committed after transaction "
                f"{before} that it does not see; no state of the stream equals that snapshot; run the batch again"
            )
        if cut.complete or time.monotonic() >= deadline:
            return cut
        time.sleep(0.5)
