"""`dualrun cdc verify`: read the captured tables in one consistent snapshot, rebuild each from its
change topic as of the snapshot's position, and reconcile the two.

The snapshot is the batch job's (`START TRANSACTION WITH CONSISTENT SNAPSHOT`, position from
`binlog_snapshot_*`), with the session in UTC so TIMESTAMP values compare with Debezium's
zoned ones. Before reading a topic, dualrun waits for the connector's committed source offset
to pass the position: Connect commits an offset only after the records before it were
acknowledged, so the topic then holds every change up to the position. A log that does not
get there in time leaves the verification unevaluated, never clean.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cdc.errors import CdcError, ConnectAccessDenied
from cdc.position import Position
from cdc.rebuild import LogStore, RebuiltTable, TopicReader
from cdc.topics import TopicAdmin
from migrate.batch import (
    DATE_TYPES,
    DATETIME_TYPES,
    DECIMAL_TYPES,
    LONGLONG_TYPE,
    TIME_TYPE,
    UNSIGNED_FLAG,
    result_fields,
)
from migrate.errors import DualrunError
from migrate.snapshot import consistent_snapshot
from migrate.spec import PipelineSpec
from migrate.verify.compare import Scope, SideBuilder, reconcile
from migrate.verify.model import SAMPLES, CdcVerification, Finding, TableVerification
from migrate.verify.pushdown import TableShape, primary_key, rebuilt_texts, table_shape, verify_ranges
from migrate.verify.values import float32_text, key_of_texts, key_text, text_of

# Connector settings that decide what the log holds and how values are encoded.
SETTINGS = (
    "topic.prefix", "snapshot.mode", "decimal.handling.mode", "time.precision.mode", "bigint.unsigned.handling.mode",
    "database.include.list", "database.exclude.list", "table.include.list", "table.exclude.list",
    "column.include.list", "column.exclude.list", "snapshot.include.collection.list",
)  # fmt: skip
_TEMPORALS = {*DATE_TYPES, *DATETIME_TYPES, TIME_TYPE}
_BIT_TYPE = 16  # pymysql FIELD_TYPE.BIT
PRINTED = "__printed__"  # prefix of the extra column holding a FLOAT as the database prints it


class DatabaseTable:
    """One table as the snapshot read it: comparison text per column (Arrow, in chunks), and each
    column's kind."""

    def __init__(self, name: str, key_columns: tuple[str, ...], columns: tuple[str, ...], kinds: dict[str, str]):
        self.name = name
        self.key_columns = key_columns
        self.columns = tuple(c for c in columns if not c.startswith(PRINTED))
        self.kinds = kinds
        self.side = SideBuilder(self.columns)
        self.positions = [self.columns.index(c) for c in key_columns]
        self.rows = 0
        self.texts = [text_of(kinds.get(c, "other"), "database") for c in self.columns]
        # FLOAT columns: the value as the database prints it (`_select_list`), per key.
        self.floats = tuple(c[len(PRINTED) :] for c in columns if c.startswith(PRINTED))
        self.printed: dict[str, dict[str, tuple[str | None, str | None]]] = {}

    def add(self, row: tuple[Any, ...], index: Mapping[str, int]) -> None:
        values = [text(row[index[c]]) for text, c in zip(self.texts, self.columns, strict=True)]
        # The key in the same comparison text as the log side's (`key_of_texts`), BIT/FLOAT keys included.
        key = key_of_texts(values, self.positions)
        self.side.add(key, values)
        self.rows += 1
        if self.floats:
            self.printed[key] = {
                c: (values[self.columns.index(c)], float32_text(_as_float(row[index[PRINTED + c]])))
                for c in self.floats
            }


def _as_float(text: Any) -> float | None:
    return None if text is None else float(text)


def _kind(field: Any) -> str:
    code = field.type_code
    if code in DECIMAL_TYPES:
        return "decimal"
    if code in _TEMPORALS:
        return "temporal"
    if code == LONGLONG_TYPE and field.flags & UNSIGNED_FLAG:
        return "bigint_unsigned"
    if code == _BIT_TYPE:
        return "bit"
    return "other"


def _select_list(conn: sa.Connection, database: str, table: str) -> tuple[str, frozenset[str]]:
    """The columns to read and which are FLOAT: those are read as DOUBLE, which widens the stored
    single exactly, where the text protocol would round it to 6 digits (`values.float32_text`)."""
    rows = conn.exec_driver_sql(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position",
        (database, table),
    ).fetchall()
    floats = frozenset(str(r[0]) for r in rows if str(r[1]).lower() == "float")
    if not floats:
        return "*", floats
    names = [str(r[0]).replace("`", "``") for r in rows]
    columns = [f"CAST(`{n}` AS DOUBLE) AS `{n}`" if n in floats else f"`{n}`" for n in names]
    # What a snapshot read gets (Debezium's snapshot SELECTs over the text protocol): the printed value.
    columns += [f"CAST(`{n}` AS CHAR) AS `{PRINTED}{n}`" for n in names if n in floats]
    return ", ".join(columns), floats


def _read_table(conn: sa.Connection, qualified: str) -> DatabaseTable:
    database, table = qualified.split(".", 1)
    keys = primary_key(conn, database, table)
    if not keys:
        raise DualrunError(
            f"cdc.tables: {qualified} has no primary key (or does not exist); cdc verify matches rows by primary key"
        )
    select, floats = _select_list(conn, database, table)
    result = conn.execution_options(stream_results=True, max_row_buffer=50_000).exec_driver_sql(
        f"SELECT {select} FROM `{database}`.`{table}`"
    )
    fields = result_fields(result) or []
    columns = tuple(f.name for f in fields)
    kinds = {f.name: "float32" if f.name in floats else _kind(f) for f in fields}
    read = DatabaseTable(qualified, keys, columns, kinds)
    index = {c: i for i, c in enumerate(columns)}
    while rows := result.fetchmany(50_000):
        for row in rows:
            read.add(tuple(row), index)
    return read


def plan_table(conn: sa.Connection, spec: PipelineSpec, qualified: str) -> DatabaseTable | TableShape:
    """Read `qualified` whole now, or return its shape when it is to be verified by key-range
    fingerprints (`cdc.verify`: above `fingerprint_above_rows` or listed, and fingerprintable)."""
    shape = table_shape(conn, qualified)
    if spec.cdc.verify.fingerprinted(qualified, shape.estimated_rows) and shape.unsupported() is None:
        return shape
    return _read_table(conn, qualified)


def _patterns(text: str | None) -> list[re.Pattern[str]]:
    return [re.compile(p.strip(), re.IGNORECASE) for p in (text or "").split(",") if p.strip()]


def capture_setting(table: str, settings: Mapping[str, str]) -> str | None:
    """The filter setting that leaves `table` (database.table) out of the connector's capture, or None.

    Debezium's include/exclude lists are comma-separated regular expressions matched against
    the whole name.

    >>> capture_setting("shop.orders", {"table.include.list": "shop.customers"})
    'table.include.list=shop.customers'
    >>> capture_setting("shop.orders", {"table.include.list": "shop.(orders|customers)"}) is None
    True
    """
    database = table.split(".", 1)[0]
    rules = (
        ("database.include.list", database, True), ("database.exclude.list", database, False),
        ("table.include.list", table, True), ("table.exclude.list", table, False),
    )  # fmt: skip
    for name, subject, include in rules:
        patterns = _patterns(settings.get(name))
        if not patterns:
            continue
        matched = any(p.fullmatch(subject) for p in patterns)
        if matched != include:
            return f"{name}={settings[name]}"
    return None


def connector_settings(spec: PipelineSpec) -> dict[str, str]:
    """The connector's settings that bear on the log, from Connect (CdcError when it does not answer)."""
    secret = spec.cdc.known_password()
    client = spec.cdc.connect_client(retries=2, secrets=(secret,) if secret else ())
    config = client.config(spec.cdc.connector)
    return {k: str(config[k]) for k in SETTINGS if config.get(k) not in (None, "")}


def connector_position(offsets: list[dict[str, Any]]) -> Position | None:
    """The position the connector's committed source offset names, outside a snapshot; None if none.

    The offset's (file, pos) is where the connector restarts: every transaction before it is in
    the topics. Its GTID set is left out on purpose: it may already name the transaction the
    connector is inside, whose rows are not all published yet.

    >>> str(connector_position([{"offset": {"file": "bin.000003", "pos": 812, "gtids": "0-1-9", "event": 2}}]))
    'bin.000003:812'

    >>> connector_position([{"offset": {"file": "bin.000003", "pos": 812, "snapshot": "true"}}]) is None
    True
    """
    best: Position | None = None
    for entry in offsets:
        offset = entry.get("offset") or {}
        if offset.get("file") is None or offset.get("pos") is None:
            continue
        if str(offset.get("snapshot", "false")).lower() not in ("false", "none", "last_in_data_collection"):
            continue
        at = Position.binlog_snapshot(str(offset["file"]), int(offset["pos"]))
        if best is None or (at.major, at.minor) > (best.major, best.minor):
            best = at
    return best


def log_reached(offsets: list[dict[str, Any]], position: Position) -> bool:
    """The connector's committed source offset is at or past `position` and not inside a snapshot.

    An offset taken mid-snapshot already names the binlog position the snapshot will end at,
    while the snapshot's rows are still being published: that log is not complete yet.

    >>> at = Position.binlog_snapshot("bin.000002", 500)
    >>> log_reached([{"offset": {"file": "bin.000002", "pos": 500}}], at)
    True
    >>> log_reached([{"offset": {"file": "bin.000002", "pos": 900, "snapshot": "INITIAL"}}], at)
    False
    """
    reached = connector_position(offsets)
    return reached is not None and (reached.major, reached.minor) >= (position.major, position.minor)


def wait_for_log(spec: PipelineSpec, position: Position, timeout: float) -> bool:
    """Poll until the connector's committed offset passed `position` (see `log_reached`), up to `timeout` s.

    Raises ConnectAccessDenied at once when Connect refuses the credentials."""
    secret = spec.cdc.known_password()
    client = spec.cdc.connect_client(retries=1, secrets=(secret,) if secret else ())
    deadline = time.monotonic() + timeout
    while True:
        try:
            if log_reached(client.offsets(spec.cdc.connector), position):
                return True
        except ConnectAccessDenied:
            raise  # no wait makes it answer
        except CdcError:
            pass  # unknown yet, or Connect busy: asked again until the deadline
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def verify_table(
    read: DatabaseTable, topic: str, rebuilt: RebuiltTable, settings: Mapping[str, str], compacted: bool
) -> TableVerification:
    """One table: the snapshot's rows against the rebuilt ones, with the log's reach applied."""
    extent = rebuilt.extent
    keys = read.key_columns
    log = SideBuilder(read.columns)
    positions = [read.columns.index(c) for c in keys]
    floats = [(read.columns.index(c), c) for c in read.floats]
    approximate = 0  # rows whose FLOAT the log holds only to 6 significant digits
    for logged, snapshot in rebuilt_texts(rebuilt, read.columns, read.kinds, settings):
        texts = list(logged)
        key = key_of_texts(texts, positions)
        if floats and snapshot:
            # A snapshot read carries what the database prints for a FLOAT (6 significant digits),
            # not the stored single: such a value is taken as the database's when it equals the
            # printed value of the same row now. A change past the 6th digit would pass unseen, so
            # those rows count as unverified, never as verified.
            stored = read.printed.get(key, {})
            rounded = False
            for i, column in floats:
                if column in stored and texts[i] == stored[column][1] and texts[i] != stored[column][0]:
                    texts[i] = stored[column][0]
                    rounded = True
            approximate += rounded
        log.add(key, texts)
    # Retention removed the head of the topic: rows nobody changed since are not in the log, and
    # that is no gap. Only keys with a change in what is left can be verified.
    only = frozenset(key_text(k) for k in rebuilt.keys("changed")) if extent.truncated else None
    # A compacted topic keeps a key's latest record only: a key changed after the position lost
    # the version the position needs.
    skip = frozenset(key_text(k) for k in rebuilt.keys("later")) if compacted else frozenset()
    result = reconcile(
        read.name, topic, read.side.table(), log.table(), extent, kinds=read.kinds, settings=settings,
        scope=Scope(only, skip), log_columns=rebuilt.columns or None, names=read.columns,
    )  # fmt: skip
    notes = []
    if extent.truncated:
        notes.append(
            f"the topic no longer reaches back (earliest offset {extent.earliest_offset:,}, first event at "
            f"{extent.first_position}): verified only the {rebuilt.changed:,} keys changed since"
        )
    if skip:
        notes.append(f"compacted topic: {len(skip):,} keys changed after the position are not verifiable")
    if approximate:
        notes.append(
            f"{approximate:,} rows hold a FLOAT the connector's snapshot sent to 6 significant digits: "
            "equal to that precision, not verified"
        )
        unverified = min(result.database_rows, result.unverified_rows + approximate)
        result = replace(result, unverified_rows=unverified)
    if notes:
        result = replace(result, note="; ".join(notes))
    return result


def verify(spec: PipelineSpec, *, wait_seconds: float = 60.0, read_timeout: float = 300.0) -> CdcVerification:
    """Verify every table of `cdc.tables` at a fresh consistent snapshot of the source."""
    started, clock = datetime.now(UTC), time.monotonic()

    def done(tables: tuple[TableVerification, ...], settings: dict[str, str], unevaluated: str | None = None,
             position: Position | None = None) -> CdcVerification:  # fmt: skip
        at = position or Position.binlog("unknown.000000", 0)
        return CdcVerification(spec.name, spec.cdc.connector, at, started.isoformat(), time.monotonic() - clock,
                               tables, settings, unevaluated, spec.checklist.min_coverage)  # fmt: skip

    if spec.source.kind == "postgres":  # the rebuild orders changes by binlog position
        raise DualrunError(
            f"cdc verify: {spec.name} reads a PostgreSQL source; verifying the change log works on "
            "MariaDB/MySQL sources only for now"
        )
    try:
        settings = connector_settings(spec)
    except CdcError as exc:
        return done((), {}, f"Kafka Connect: {exc}")
    # One snapshot for everything read from the database, fingerprints of big tables included:
    # it stays open while the log is read, so every range is compared at the same position.
    with consistent_snapshot(spec, utc=True) as snapshot:
        assert snapshot.position is not None  # MariaDB
        position = snapshot.position
        plans = {}
        for table in spec.cdc.tables:
            plans[table] = plan_table(snapshot.conn, spec, table)
        gap = None
        try:
            reached = wait_for_log(spec, position, wait_seconds)
        except ConnectAccessDenied as exc:
            return done((), settings, f"Kafka Connect: {exc}", position)
        if not reached:
            gap, why = _stopped_short(spec)
            if gap is None:
                return done((), settings, f"connector {spec.cdc.connector}'s committed offset did not reach the "
                            f"snapshot position {position} within {wait_seconds:g}s: the log is behind{why}",
                            position)  # fmt: skip
        reader = TopicReader(spec.kafka.client(), timeout=read_timeout)
        admin = TopicAdmin(spec.kafka.client(), timeout=30)
        prefix = settings.get("topic.prefix", spec.cdc.topic_prefix)
        results = []
        try:
            for name, plan in plans.items():
                with LogStore(work_dir(spec)) as store:  # one table's log at a time on disk
                    result = _verify_one(snapshot.conn, spec, name, plan, f"{prefix}.{name}", reader, admin,
                                         settings, position, store)  # fmt: skip
                results.append(as_gap(result, gap) if gap is not None else result)
        except CdcError as exc:
            return done(tuple(results), settings, f"Kafka: {exc}", position)
    return done(tuple(results), settings, None, position)


def _verify_one(
    conn: sa.Connection, spec: PipelineSpec, name: str, plan: DatabaseTable | TableShape, topic: str,
    reader: TopicReader, admin: TopicAdmin, settings: Mapping[str, str], position: Position, store: LogStore,
) -> TableVerification:  # fmt: skip
    """One table: whole (`verify_table`) or by fingerprints (`pushdown.verify_ranges`) when planned
    so and the log allows it (reaches back to its start, not compacted, every column in it)."""
    left_out = capture_setting(name, settings)
    if left_out is not None:
        rows = plan.rows if isinstance(plan, DatabaseTable) else _count(conn, name)
        finding = Finding("not_captured", rows, f"the connector does not capture {name}: none of its "
                          f"{rows:,} rows can reach the log", left_out)  # fmt: skip
        return TableVerification(name, topic, rows, 0, 0, (finding,))
    rebuilt = reader.rebuild(topic, position, store)
    compacted = rebuilt.extent.exists and admin.describe(topic).compacted
    if isinstance(plan, TableShape):
        whole_log = not rebuilt.extent.truncated and not compacted
        if whole_log and all(c in rebuilt.columns for c in plan.names):
            return verify_ranges(conn, plan, topic, rebuilt, settings, spec.cdc.verify.rows_per_range)
        plan = _read_table(conn, name)  # same snapshot: the whole-table path explains it
    return verify_table(plan, topic, rebuilt, settings, compacted)


def work_dir(spec: PipelineSpec) -> Path:
    """Where the change log is folded (DuckDB's file and spill): under the state directory."""
    return spec.path("tmp")


def _count(conn: sa.Connection, qualified: str) -> int:
    database, table = qualified.split(".", 1)
    return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{database}`.`{table}`").scalar() or 0)


# A connector that stopped on these can never deliver what it missed: the log is final.
_PURGED = ("purged", "no longer available", "error code: 1236")


def _stopped_short(spec: PipelineSpec) -> tuple[str | None, str]:
    """(the failure, if the connector failed because the binlog it needs was purged; else None,
    and a clause for the unevaluated message)."""
    secret = spec.cdc.known_password()
    try:
        status = spec.cdc.connect_client(retries=1, secrets=(secret,) if secret else ()).status(spec.cdc.connector)
    except CdcError as exc:
        return None, f" ({exc})"
    reason = status.reason or ""
    if status.failed and any(marker in reason.lower() for marker in _PURGED):
        return reason, ""
    if status.failed:
        return None, f" (connector FAILED: {reason})"
    return None, f" (connector {status.state})"


def as_gap(result: TableVerification, failure: str) -> TableVerification:
    """Every difference of a table whose connector stopped on a purged binlog is that gap's."""
    if not result.findings:
        return result
    merged = Finding(
        "binlog_gap", sum(f.rows for f in result.findings),
        "the connector stopped because the binlog after its offset was purged, so the changes since are not in "
        f"the log ({', '.join(f'{f.rows:,} {f.cause}' for f in result.findings)}): {failure}",
        columns=tuple(dict.fromkeys(c for f in result.findings for c in f.columns)),
        samples=tuple(s for f in result.findings for s in f.samples)[:SAMPLES],
    )  # fmt: skip
    return replace(result, findings=(merged,))
