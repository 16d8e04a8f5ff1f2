"""`dualrun run batch --from-log`: the nightly batch job run over the change log instead of the source.

Each captured table (`cdc.tables`) is rebuilt from its Debezium topic as of one source position
(`cdc.rebuild`), loaded into DuckDB with exact types (DECIMAL(p,s), timestamps in UTC), and each
output's batch SQL, written in the source's dialect, is transpiled to DuckDB with sqlglot and run
there. The result is a third side, "log", recorded in the warehouse like a batch run (run id
ending in `~log`, with its position): `dualrun reconcile --spec --run ID~log` compares it with
the stream, and it can be compared with the batch run read at the same position.

The position is the connector's committed source offset (the latest position every captured
topic holds completely: Connect commits an offset only once the records before it were
acknowledged), a recorded batch run's position (`--position RUN_ID`, or `batch` for the latest
batch run), or `FILE:POS`. A log that no longer reaches back to a table's first version
(retention removed its head) cannot rebuild it and fails rather than answering short.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError

from cdc.errors import CdcError
from cdc.position import Position
from cdc.rebuild import LogStore, RebuiltTable, TopicReader
from cdc.topics import TopicAdmin
from migrate.batch import BatchRun, load_run, write_run
from migrate.errors import DualrunError
from migrate.logtypes import arrow_batches
from migrate.spec import PipelineSpec
from migrate.spec.columns import arrow_type
from migrate.verify.compare import DATA_SNAPSHOT_MODES
from migrate.verify.run import capture_setting, connector_position, connector_settings, wait_for_log, work_dir

LOG_SUFFIX = "~log"
DIALECTS = {"mariadb": "mysql", "mysql": "mysql", "postgres": "postgres"}
_FILE_POS = re.compile(r"^(?P<file>[^:\s]+\.\d+):(?P<pos>\d+)$")


@dataclass(frozen=True)
class LogTable:
    """One captured table as rebuilt from its topic: rows as of the position and the topic's reach."""

    table: str
    topic: str
    rows: int
    events: int  # change events at or before the position
    earliest_offset: int
    first_op: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "topic": self.topic, "rows": self.rows, "events": self.events,
                "earliest_offset": self.earliest_offset, "first_op": self.first_op}  # fmt: skip


@dataclass(frozen=True)
class LogBatchRun:
    """One batch run over the change log: the run as recorded, where its position came from
    (`position_source`: "connector offset", "batch run ID" or "given"), the rebuilt tables and
    each output's SQL as run in DuckDB."""

    run: BatchRun
    position_source: str
    tables: tuple[LogTable, ...]
    statements: dict[str, str]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.run.to_dict(), "side": "log", "position_source": self.position_source,
            "tables": [t.to_dict() for t in self.tables], "statements": dict(self.statements),
            "notes": list(self.notes),
        }  # fmt: skip


def transpile(sql: str, source_kind: str, output: str) -> str:
    """`sql` (one SELECT in the source's dialect) as DuckDB SQL.

    Raises DualrunError naming the construct sqlglot cannot carry over (one line).

    >>> transpile("SELECT IFNULL(a, 0) AS a, DATE(t) AS d FROM x", "mariadb", "o")
    'SELECT COALESCE(a, 0) AS a, CAST(t AS DATE) AS d FROM x'
    >>> transpile("SELECT a FROM x FOR UPDATE", "mariadb", "o")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.errors.DualrunError: outputs.o.batch cannot run on the change log: Locking reads using 'FOR UPDATE...
    """
    dialect = DIALECTS.get(source_kind, "mysql")
    where = f"outputs.{output}.batch cannot run on the change log"
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        raise DualrunError(f"{where}: sqlglot cannot parse it ({_first_line(exc)})") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise DualrunError(f"{where}: it must be exactly one SELECT ({len(statements)} statement(s))")
    try:
        return statements[0].sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE, comments=False)
    except UnsupportedError as exc:
        raise DualrunError(f"{where}: {_first_line(exc)}") from None
    except SqlglotError as exc:
        raise DualrunError(f"{where}: sqlglot cannot transpile it to DuckDB ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def resolve_position(spec: PipelineSpec, text: str | None, wait_seconds: float) -> tuple[Position, str]:
    """(position, where it came from) for `--position` TEXT: None/"latest" the connector's committed
    offset; "batch" the latest batch run's; a batch run id; or FILE:POS (a binlog coordinate)."""
    if text in (None, "latest"):
        secret = spec.cdc.known_password()
        client = spec.cdc.connect_client(retries=2, secrets=(secret,) if secret else ())
        deadline = time.monotonic() + wait_seconds
        while True:
            at = connector_position(client.offsets(spec.cdc.connector))
            if at is not None:
                return at, "connector offset"
            if time.monotonic() >= deadline:
                raise DualrunError(
                    f"connector {spec.cdc.connector} has committed no source offset past its snapshot within "
                    f"{wait_seconds:.0f}s; wait for its snapshot to finish, or give --position"
                )
            time.sleep(0.5)
    assert text is not None
    match = _FILE_POS.match(text)
    if match:
        return Position.binlog_snapshot(match["file"], int(match["pos"])), "given"
    run = load_run(spec.warehouse_path, "latest" if text == "batch" else text)
    if run.snapshot is not None:
        raise DualrunError(f"batch run {run.run_id} read a PostgreSQL snapshot; --from-log needs binlog positions")
    return run.position, f"batch run {run.run_id}"


def check_reach(table: str, rebuilt: RebuiltTable, compacted: bool) -> None:
    """DualrunError (what to do) when `rebuilt` cannot be the table as of its position: a head
    removed by retention, or a compacted topic whose keys changed after the position."""
    extent = rebuilt.extent
    if extent.truncated:
        raise DualrunError(
            f"{extent.topic} no longer reaches back (earliest offset {extent.earliest_offset:,}, first event at "
            f"{extent.first_position}): retention removed versions {table} needs; choose a newer --position"
        )
    if compacted and rebuilt.later:
        raise DualrunError(
            f"{extent.topic} is compacted and {rebuilt.later:,} key(s) changed after {rebuilt.position}: "
            "their versions as of the position may be gone; choose the latest position"
        )


def rebuild_tables(
    spec: PipelineSpec, position: Position, read_timeout: float
) -> tuple[dict[str, pa.Table], tuple[LogTable, ...], tuple[str, ...]]:
    """Every captured table as of `position`, as Arrow (exact types), with what each topic held."""
    settings = connector_settings(spec)
    mode = settings.get("decimal.handling.mode", "precise")
    if mode != "precise":  # doubles or text in the topics: the batch's DECIMAL arithmetic cannot be rebuilt exactly
        raise DualrunError(
            f"connector {spec.cdc.connector}: decimal.handling.mode={mode} puts DECIMAL columns in the topics as "
            f"{'doubles' if mode == 'double' else 'text'}; --from-log needs decimal.handling.mode=precise "
            "(re-register the connector with it)"
        )
    prefix = settings.get("topic.prefix", spec.cdc.topic_prefix)
    reader = TopicReader(spec.kafka.client(), timeout=read_timeout)
    admin = TopicAdmin(spec.kafka.client(), timeout=30)
    frames: dict[str, pa.Table] = {}
    tables: list[LogTable] = []
    notes: list[str] = []
    for name in spec.cdc.tables:
        topic = f"{prefix}.{name}"
        left_out = capture_setting(name, settings)
        if left_out is not None:
            raise DualrunError(f"cdc.tables: the connector does not capture {name} ({left_out}); {topic} lacks it")
        with LogStore(work_dir(spec)) as store:
            rebuilt = reader.rebuild(topic, position, store)  # keyed by the record key: the primary key
            frame = arrow_batches(
                name, ([image for image, _ in batch] for batch in rebuilt.images()), rebuilt.columns,
                rebuilt.column_schemas(),
            )  # fmt: skip
        if not rebuilt.extent.exists:
            # Debezium creates a topic with its first record: a table the connector snapshotted
            # (checked in `empty_table`) without a topic had no row then and no change since.
            frames[name] = empty_table(spec, name, topic, settings)
            notes.append(f"{topic} does not exist: {name} had no row and no change, taken as empty")
            tables.append(LogTable(name, topic, 0, 0, 0, None))
            continue
        compacted = admin.describe(topic).compacted
        check_reach(name, rebuilt, compacted)
        if rebuilt.extent.snapshot_reads == 0:
            notes.append(
                f"{topic} holds no snapshot read: rows that existed before capture began are missing unless "
                "`dualrun cdc verify` shows the log complete"
            )
        frames[name] = frame
        tables.append(LogTable(name, topic, rebuilt.rows, rebuilt.extent.events_at_or_before,
                               rebuilt.extent.earliest_offset, rebuilt.extent.first_op))  # fmt: skip
    return frames, tuple(tables), tuple(notes)


def empty_table(spec: PipelineSpec, table: str, topic: str, settings: dict[str, str]) -> pa.Table:
    """`table` without rows, its columns typed as the source declares them (information_schema,
    the DDL transpiled to DuckDB): what the batch SQL sees of a table that never had a row.

    A missing topic means "no row" only when the connector's snapshot read the table's rows
    (`snapshot.mode` in DATA_SNAPSHOT_MODES, the table in `snapshot.include.collection.list`) and
    the table has no row now; otherwise DualrunError: its rows were never captured."""
    from migrate.sourcedb import source_url

    mode = settings.get("snapshot.mode", "initial").lower()
    uncaptured = f"cdc.tables: {table} has no change topic {topic}"
    if mode not in DATA_SNAPSHOT_MODES:
        raise DualrunError(
            f"{uncaptured} and the connector's snapshot.mode={mode} reads no rows, so its rows may never have "
            f"been captured; --from-log needs snapshot.mode in {', '.join(DATA_SNAPSHOT_MODES)}"
        )
    left_out = capture_setting(table, {"table.include.list": settings.get("snapshot.include.collection.list", "")})
    if left_out is not None:
        raise DualrunError(
            f"{uncaptured}: snapshot.include.collection.list={settings['snapshot.include.collection.list']} leaves "
            "it out of the snapshot, so its rows were never captured; include it and re-snapshot"
        )
    database, name = table.split(".", 1)
    quoted = ".".join(f"`{part.replace('`', '``')}`" for part in (database, name))
    engine = sa.create_engine(source_url(spec), connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            columns = conn.exec_driver_sql(
                "SELECT column_name, data_type, column_type, numeric_precision, numeric_scale "
                "FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s ORDER BY ordinal_position",
                (database, name),
            ).fetchall()
            has_rows = bool(columns) and conn.exec_driver_sql(f"SELECT 1 FROM {quoted} LIMIT 1").first() is not None
    except sa.exc.SQLAlchemyError as exc:
        raise DualrunError(
            f"{table} has no change topic {topic}, and its columns could not be read: {str(exc).splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()
    if not columns:
        raise DualrunError(
            f"cdc.tables: {table} has no change topic {topic} and does not exist in the source; check cdc.tables"
        )
    if has_rows:
        raise DualrunError(
            f"{uncaptured} but has rows: they were never captured (or not yet streamed); check the connector's "
            "snapshot settings and that no transform or topic.naming.strategy renames its topic"
        )
    listed = ", ".join(f"`{str(c[0]).replace('`', '``')}` {_declared(*c[1:])}" for c in columns)
    ddl = sqlglot.transpile(f"CREATE TABLE t ({listed})", read="mysql", write="duckdb")[0]
    con = duckdb.connect()
    try:
        con.execute(ddl)
        return con.sql("SELECT * FROM t").to_arrow_table()
    finally:
        con.close()


_AS_TEXT = ("enum", "set", "json")  # no length or value list needed in DuckDB


def _declared(data_type: str, column_type: str, precision: int | None, scale: int | None) -> str:
    """A column's type in the MySQL dialect for sqlglot, without display widths DuckDB refuses.

    >>> _declared("decimal", "decimal(12,2)", 12, 2), _declared("bigint", "bigint(20) unsigned", 20, 0)
    ('DECIMAL(12,2)', 'BIGINT UNSIGNED')
    """
    kind = str(data_type).lower()
    if kind in ("decimal", "numeric"):
        return f"DECIMAL({precision},{scale})"
    if kind in _AS_TEXT:
        return "TEXT"
    if kind == "bit":
        return "BLOB"
    if kind == "year":
        return "INT"
    return kind.upper() + (" UNSIGNED" if "unsigned" in str(column_type).lower() else "")


def run_sql(frames: dict[str, pa.Table], statements: dict[str, str], default_schema: str) -> dict[str, pa.Table]:
    """Run each output's DuckDB SQL over the rebuilt tables (schema.table, and unqualified in
    `default_schema`); DualrunError naming the output when DuckDB rejects one."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, frame in frames.items():
            schema, table = name.split(".", 1)
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            con.register("incoming", frame)
            con.execute(f'CREATE TABLE "{schema}"."{table}" AS SELECT * FROM incoming')
            con.unregister("incoming")
        con.execute(f"SET schema = '{default_schema}'")
        results = {}
        for output, sql in statements.items():
            try:
                results[output] = con.sql(sql).to_arrow_table()
            except duckdb.Error as exc:
                raise DualrunError(
                    f"outputs.{output}.batch: DuckDB rejected the transpiled query over the rebuilt tables: "
                    f"{_first_line(exc)}"
                ) from None
        return results
    finally:
        con.close()


def exact_output(table: pa.Table, output: str, overrides: dict[str, str]) -> pa.Table:
    """The output with the spec's `columns` overrides (outputs.X.batch.columns) applied."""
    fields = []
    for f in table.schema:
        if f.name in overrides:
            fields.append(pa.field(f.name, arrow_type(overrides[f.name])))
        else:
            fields.append(f)
    return table.cast(pa.schema(fields))


def float_columns(table: pa.Table) -> list[str]:
    return [f.name for f in table.schema if pa.types.is_floating(f.type)]


def run_from_log(
    spec: PipelineSpec, position: str | None = None, *, wait_seconds: float = 60.0, read_timeout: float = 300.0,
    record: bool = True,
) -> tuple[LogBatchRun, dict[str, pa.Table]]:  # fmt: skip
    """Run every output's batch SQL over the tables rebuilt from the change log as of `position`
    (see `resolve_position`); record the outputs in the warehouse under `<run id>~log`."""
    if spec.source.kind == "postgres":
        raise DualrunError("run batch --from-log rebuilds tables by binlog position: MariaDB/MySQL sources only")
    statements = {name: transpile(out.batch.sql_text(), spec.source.kind, name) for name, out in spec.outputs.items()}
    started = datetime.now(UTC)
    try:
        at, source = resolve_position(spec, position, wait_seconds)
        if not wait_for_log(spec, at, wait_seconds):
            raise DualrunError(
                f"the change log has not reached {at} within {wait_seconds:.0f}s (connector {spec.cdc.connector}); "
                "is the connector running?"
            )
        frames, tables, notes = rebuild_tables(spec, at, read_timeout)
    except CdcError as exc:
        raise DualrunError(f"run batch --from-log: {exc}") from None
    outputs = run_sql(frames, statements, spec.source.database)
    floats = {c for f in frames.values() for c in float_columns(f)}
    for name, table in outputs.items():
        table = exact_output(table, name, dict(spec.outputs[name].batch.columns))
        inexact = [c for c in float_columns(table) if c not in floats]
        if inexact:
            raise DualrunError(
                f"outputs.{name}.batch: column {inexact[0]} comes out as a float in DuckDB (AVG or / over DECIMAL) "
                "although the source holds none: not exact; compute it with SUM/COUNT in the SQL"
            )
        outputs[name] = table
    run = BatchRun(
        run_id=started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6] + LOG_SUFFIX,
        started_at=started, finished_at=datetime.now(UTC), position=at,
        rows={name: t.num_rows for name, t in outputs.items()},
    )  # fmt: skip
    if record:
        write_run(spec.warehouse_path, run, outputs)
    return LogBatchRun(run, source, tables, statements, notes), outputs


def compare_with_batch(spec: PipelineSpec, log_run: LogBatchRun, outputs: dict[str, pa.Table]) -> dict[str, Any]:
    """When the position is a batch run's: each output of that run (left) reconciled with the same
    output computed from the log (right), exactly (no tolerances), as comparators Reconciliations;
    {} otherwise. A difference is the log (a change it lacks or decodes differently) or a dialect
    difference the transpiled SQL has (collation, NULL ordering, integer division)."""
    from comparators import FrameSource, Settings, reconcile
    from migrate.batch import run_output

    prefix = "batch run "
    if not log_run.position_source.startswith(prefix):
        return {}
    run_id = log_run.position_source.removeprefix(prefix)
    at = str(log_run.run.position)
    results = {}
    for name, out in spec.outputs.items():
        results[name] = reconcile(
            FrameSource(run_output(spec.warehouse_path, run_id, name), name=f"batch {name} {run_id}"),
            FrameSource(outputs[name], name=f"log {name} {log_run.run.run_id}"),
            list(out.keys), ignore=out.ignore, left_position=at, right_position=at,
            name=f"{spec.name}/{name} batch vs log", settings=Settings(allow_empty=True),
        )  # fmt: skip
    return results
