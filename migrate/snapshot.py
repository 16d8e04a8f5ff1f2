"""One consistent read snapshot of the source, opened the same way for every reader.

The batch job (`migrate.batch`) and `dualrun cdc verify` (`migrate.verify.run`) read inside it:
everything read on the yielded connection sees the source as of one position.

* MariaDB/MySQL: `START TRANSACTION WITH CONSISTENT SNAPSHOT` at REPEATABLE READ; the position
  is the binlog position that snapshot corresponds to (`binlog_snapshot_file/position`, and the
  GTID position there).
* PostgreSQL: `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`; the transaction's first statement
  takes its snapshot (`pg_current_snapshot()`), bracketed by the WAL insert position before and
  after it (`cdc.visibility.PgSnapshot`).

Database errors become one-line DualrunErrors (`mariadb_error`, `postgres_error`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from cdc.position import Position, parse_lsn
from cdc.visibility import PgSnapshot
from migrate.errors import DualrunError, SourceUnavailable
from migrate.sourcedb import check_tables, describe_source, source_url
from migrate.spec import PipelineSpec


@dataclass(frozen=True)
class Snapshot:
    """An open snapshot: read on `conn`. `position` is MariaDB's binlog position (None on
    PostgreSQL, where `pg` is the snapshot with its WAL bracket)."""

    conn: sa.Connection
    position: Position | None = None
    pg: PgSnapshot | None = None


def binlog_position(conn: sa.Connection) -> Position:
    """The binlog position of the connection's consistent snapshot (MariaDB/MySQL)."""
    status = {str(k).lower(): str(v) for k, v in conn.exec_driver_sql("SHOW STATUS LIKE 'binlog_snapshot_%%'")}
    file, pos = status.get("binlog_snapshot_file"), status.get("binlog_snapshot_position")
    if not file or pos is None:
        raise DualrunError("the source has no binary log: enable log_bin (row format) so positions can be recorded")
    gtid = conn.exec_driver_sql("SELECT BINLOG_GTID_POS(%s, %s)", (file, int(pos))).scalar()
    return Position.binlog_snapshot(file, int(pos), gtid=str(gtid) if gtid else None)


@contextmanager
def consistent_snapshot(
    spec: PipelineSpec, *, utc: bool = False, connect_timeout: int | None = None
) -> Iterator[Snapshot]:
    """Open one consistent read snapshot of the spec's source; committed (read-only) on exit.

    `utc`: the session's time zone is UTC (MariaDB), so TIMESTAMP values read as UTC.
    `connect_timeout`: seconds to wait for the connection (both drivers take it), for a check that
    must answer quickly; the driver's default otherwise.
    Raises DualrunError (SourceUnavailable when the database cannot be reached).
    """
    postgres = spec.source.kind == "postgres"
    connect_args = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
    # PostgreSQL: AUTOCOMMIT so the WAL position before the snapshot is read outside it.
    engine = sa.create_engine(
        source_url(spec),
        isolation_level="AUTOCOMMIT" if postgres else "REPEATABLE READ",
        pool_pre_ping=False,
        connect_args=connect_args,
    )
    try:
        with engine.connect() as conn:
            check_tables(conn, spec)  # a table the spec names but the source lacks: one line, first
            snapshot = _open_postgres(conn) if postgres else _open_mariadb(conn, utc)
            yield snapshot
            conn.exec_driver_sql("COMMIT")
    except sa.exc.DBAPIError as exc:
        raise _translate(exc, spec) from None
    finally:
        engine.dispose()


def _open_mariadb(conn: sa.Connection, utc: bool) -> Snapshot:
    if utc:
        conn.exec_driver_sql("SET time_zone = '+00:00'")
    conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    return Snapshot(conn, position=binlog_position(conn))


def _open_postgres(conn: sa.Connection) -> Snapshot:
    before = str(conn.exec_driver_sql("SELECT pg_current_wal_insert_lsn()::text").scalar())
    conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    # The transaction's first statement takes its snapshot; the LSN is read after it.
    text, after = conn.exec_driver_sql("SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn()::text").one()
    return Snapshot(conn, pg=PgSnapshot.parse(str(text), parse_lsn(before), parse_lsn(str(after))))


def _translate(exc: sa.exc.DBAPIError, spec: PipelineSpec) -> DualrunError:
    return postgres_error(exc, spec) if spec.source.kind == "postgres" else mariadb_error(exc, spec)


def mariadb_error(exc: sa.exc.DBAPIError, spec: PipelineSpec) -> DualrunError:
    """A MariaDB/MySQL error -> one line saying what, where and what to do."""
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


def error_detail(exc: sa.exc.DBAPIError) -> str:
    """The first line of a driver error's message."""
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)


def postgres_error(exc: sa.exc.DBAPIError, spec: PipelineSpec) -> DualrunError:
    """A PostgreSQL error -> one line saying what, where and what to do."""
    state = str(getattr(exc.orig, "sqlstate", "") or "")
    where, detail = describe_source(spec), error_detail(exc)
    if state == "28P01" or "password authentication failed" in detail:
        return DualrunError(f"source {where} refused the login: {detail}; check ${spec.source.password_env}")
    if state == "42P01":
        return DualrunError(f"source {where}: {detail}; is the source schema created (and on the search_path)?")
    if isinstance(exc, sa.exc.OperationalError) and not state:
        return SourceUnavailable(f"source {where} is not reachable: {detail}; is the database running?")
    return DualrunError(f"source {where}: {detail}")
