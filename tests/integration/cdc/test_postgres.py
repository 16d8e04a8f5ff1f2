"""Debezium's PostgreSQL connector (pgoutput) and PostgreSQL as a comparators source, on the real stack."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from psycopg.rows import TupleRow

from cdc.connect import ConnectClient
from cdc.connector import ConnectorSettings
from cdc.errors import ConnectError
from comparators.engine import reconcile
from migrate.cli import cli
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database, Events, changes, check_insert_update_delete

pytestmark = pytest.mark.integration

ROWS = [
    (1, 7, Decimal("129.99"), "NEW", datetime(2024, 5, 1, 2, 0, 0, 123000)),
    (2, 8, Decimal("0.01"), "PAID", datetime(2024, 5, 1, 2, 0, 1)),
    (3, 9, Decimal("9999999999.99"), "NEW", datetime(2024, 5, 2, 23, 59, 59, 999000)),
]


class PgDatabase:
    """SQL against the stack's PostgreSQL as dualrun, the tables' owner, autocommitted."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    def connect(self, password: str | None = None) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(
            host="127.0.0.1", port=self.config.ports.postgres, user=self.config.db_user,
            password=password or self.config.db_password, dbname=self.config.database, autocommit=True,
        )  # fmt: skip

    def run(self, *statements: sql.Composed | str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            rows: list[tuple[Any, ...]] = []
            for statement in statements:
                cur = conn.execute(statement if isinstance(statement, sql.Composed) else statement.encode(), args)
                rows = cur.fetchall() if cur.description else []
            return rows

    def orders_table(self, name: str) -> str:
        """shop.<name> shaped like shop.orders, with whole before-images, in its own publication."""
        table = sql.Identifier("shop", name)
        self.run(
            sql.SQL("CREATE TABLE {} (LIKE shop.orders INCLUDING ALL)").format(table),
            sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(table),
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(name), table),
        )
        return name


@pytest.fixture(scope="session")
def pg(postgres_stack: StackConfig) -> PgDatabase:
    """PostgreSQL is not part of the default stack: every test here reaches it through this fixture."""
    return PgDatabase(postgres_stack)


@pytest.fixture
def pg_connector(
    stack: StackConfig, pg: PgDatabase, connect: ConnectClient
) -> Iterator[Callable[..., ConnectorSettings]]:
    """Registers PostgreSQL connectors; afterwards deletes them and drops their replication slots.

    Deleting a connector leaves its slot behind, and an abandoned slot pins WAL forever.
    """
    made: list[ConnectorSettings] = []

    def register(name: str, table: str, **extra: Any) -> ConnectorSettings:
        settings = ConnectorSettings(
            name=name, kind="postgres", hostname="127.0.0.1", port=stack.ports.postgres,
            user=extra.pop("user", stack.debezium_user), password=extra.pop("password", stack.debezium_password),
            databases=("shop",), pg_database=stack.database, tables=(f"shop.{table}",),
            bootstrap_servers=stack.bootstrap_servers, topic_prefix=name, publication=table, **extra,
        )  # fmt: skip
        connect.put(settings.name, settings.to_config())
        made.append(settings)
        return settings

    yield register
    for settings in made:
        connect.delete(settings.name)
        drop_slot(pg, settings.pg_slot)


def drop_slot(pg: PgDatabase, slot: str, timeout: float = 60) -> None:
    """Drop the slot once the deleted connector's WAL sender has let go of it."""
    deadline = time.monotonic() + timeout
    while True:
        rows = pg.run("SELECT active FROM pg_replication_slots WHERE slot_name = %s", args=(slot,))
        if not rows:
            return  # never created (the connector failed before streaming)
        if not rows[0][0]:
            pg.run("SELECT pg_drop_replication_slot(%s)", args=(slot,))
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"replication slot {slot} still active {timeout:.0f}s after its connector went")
        time.sleep(0.25)


def insert(pg: PgDatabase, table: str, rows: list[tuple[Any, ...]]) -> None:
    statement = sql.SQL(
        "INSERT INTO {} (order_id, customer_id, amount, status, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s)"
    ).format(sql.Identifier("shop", table))
    with pg.connect() as conn, conn.cursor() as cur:
        cur.executemany(statement, [(*row, row[-1]) for row in rows])


def test_snapshot_then_insert_update_delete_with_exact_amounts_and_increasing_lsns(
    stack: StackConfig, pg: PgDatabase, pg_connector: Callable[..., ConnectorSettings],
    unique: Callable[[str], str], events: Callable[[list[str]], Events],
) -> None:  # fmt: skip
    table = pg.orders_table(unique("orders"))
    insert(pg, table, ROWS[:2])
    settings = pg_connector(unique("pgsnap"), table)
    stream = events([settings.table_topic(f"shop.{table}")])

    snapshot = changes(stream.take(2))
    assert [e.op for e in snapshot] == ["r", "r"]
    assert all(e.snapshot and e.before is None and e.position.kind == "lsn" for e in snapshot)
    assert {e.key["order_id"]: e.after["amount"] for e in snapshot if e.after} == {
        1: Decimal("129.99"),
        2: Decimal("0.01"),
    }
    first = snapshot[0].after
    assert first is not None and first["created_at"] == ROWS[0][4]  # TIMESTAMP(3), milliseconds kept

    insert(pg, table, ROWS[2:])
    pg.run(f"UPDATE shop.{table} SET amount = 612.50, status = 'PAID' WHERE order_id = 1")
    pg.run(f"DELETE FROM shop.{table} WHERE order_id = 2")
    ins, upd, dele = check_insert_update_delete(stream.take(4), snapshot[-1])
    assert dele.before is not None and dele.before["status"] == "PAID"
    assert all(e.transaction_id for e in (ins, upd, dele))
    assert len({e.transaction_id for e in (ins, upd, dele)}) == 3  # three autocommitted statements
    assert not any(e.snapshot for e in (ins, upd, dele))


def test_debezium_role_only_reads_and_replicates(stack: StackConfig, pg: PgDatabase) -> None:
    rows = pg.run(
        "SELECT rolsuper, rolreplication, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s",
        args=(stack.debezium_user,),
    )
    assert rows == [(False, True, False, False)]
    owned = pg.run("SELECT count(*) FROM pg_tables WHERE tableowner = %s", args=(stack.debezium_user,))
    assert owned == [(0,)]
    published = pg.run(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 1",
        args=(stack.postgres_publication,),
    )
    assert published == [("shop.customers",), ("shop.orders",)]


def test_a_connector_with_a_wrong_password_is_refused_with_a_readable_reason(
    stack: StackConfig, pg: PgDatabase, pg_connector: Callable[..., ConnectorSettings], unique: Callable[[str], str],
) -> None:  # fmt: skip
    # Debezium's PostgreSQL connector logs in while Connect validates the config, so the
    # registration itself fails (the MariaDB connector only fails once its task starts).
    table = pg.orders_table(unique("orders"))
    with pytest.raises(ConnectError, match="password authentication failed") as refused:
        pg_connector(unique("pgbadpw"), table, password="not-the-password")
    assert "not-the-password" not in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1


def test_sqlalchemy_source_reads_postgres_and_reconciles_clean_against_mariadb(
    stack: StackConfig, pg: PgDatabase, db: Database, unique: Callable[[str], str],
) -> None:  # fmt: skip
    name = unique("orders")
    pg.orders_table(name)
    insert(pg, name, ROWS)
    db.orders_table(name)
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO `{name}` (order_id, customer_id, amount, status, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [(*row, row[-1]) for row in ROWS],
        )

    result = reconcile(
        f"{stack.mariadb_url()}?table={name}", f"{stack.postgres_url()}?table={name}&schema=shop", ["order_id"]
    )
    assert result.verdict == "clean", result.to_dict()
    assert (result.left.rows, result.right.rows, result.matched_rows) == (3, 3, 3)

    # The same, then one cent apart on the PostgreSQL side: found, with its column.
    pg.run(f"UPDATE shop.{name} SET amount = amount + 0.01 WHERE order_id = 1")
    drifted = reconcile(
        f"{stack.mariadb_url()}?table={name}", f"{stack.postgres_url()}?table={name}&schema=shop", ["order_id"]
    )
    assert drifted.verdict == "differences" and drifted.mismatched_rows == 1


def test_a_wrong_postgres_password_is_one_line_and_exit_2(
    stack: StackConfig, pg: PgDatabase, unique: Callable[[str], str]
) -> None:
    name = pg.orders_table(unique("orders"))
    wrong = stack.postgres_url().replace(f":{stack.db_password}@", ":wrong-pw@")
    assert wrong != stack.postgres_url()
    result = CliRunner().invoke(
        cli, ["reconcile", f"{wrong}?table={name}&schema=shop", f"{stack.postgres_url()}?table={name}&schema=shop",
              "--key", "order_id"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read postgresql+psycopg://dualrun:***@"), lines
    assert 'password authentication failed for user "dualrun"' in lines[0]
    assert "wrong-pw" not in result.output


def test_positions_follow_commit_order_across_interleaved_transactions(
    stack: StackConfig, pg: PgDatabase, pg_connector: Callable[..., ConnectorSettings],
    unique: Callable[[str], str], events: Callable[[list[str]], Events],
) -> None:  # fmt: skip
    table = pg.orders_table(unique("orders"))
    settings = pg_connector(unique("pgorder"), table)
    stream = events([settings.table_topic(f"shop.{table}")])
    stream.quiet(3)  # the (empty) snapshot is done and the slot streams
    first, second = pg.connect(), pg.connect()
    with first, second:
        first.autocommit = second.autocommit = False
        first.execute(f"INSERT INTO shop.{table} (order_id, customer_id, amount, status) VALUES (1, 1, 1, 'A')")
        second.execute(f"INSERT INTO shop.{table} (order_id, customer_id, amount, status) VALUES (2, 1, 2, 'B')")
        second.commit()  # commits first although it wrote later
        first.execute(f"INSERT INTO shop.{table} (order_id, customer_id, amount, status) VALUES (3, 1, 3, 'C')")
        first.commit()
    delivered = changes(stream.take(3))
    assert [e.key["order_id"] for e in delivered] == [2, 1, 3]  # commit order, as Debezium delivers it
    positions = [e.position for e in delivered]
    assert positions == sorted(positions)
