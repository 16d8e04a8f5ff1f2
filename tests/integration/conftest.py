"""The real local stack for integration tests: started once per session, never mocked.

Tests isolate themselves with unique table, topic, connector and group names
rather than tearing anything down.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest
from confluent_kafka import Consumer, TopicPartition

from cdc.connect import ConnectClient, ConnectorStatus
from cdc.connector import ConnectorSettings
from cdc.envelope import ChangeEvent, Tombstone, decode
from cdc.topics import quiet_logger
from migrate.stack import Stack
from migrate.stackconfig import StackConfig

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def stack() -> StackConfig:
    state = Path(os.environ.get("DUALRUN_HOME") or ROOT / ".dualrun")
    config = StackConfig.from_env(state)
    Stack(config).up()
    return config


@pytest.fixture(scope="session")
def postgres_stack(stack: StackConfig) -> StackConfig:
    """The stack with PostgreSQL too (`dualrun stack up --with postgres`): tests that need it ask for it."""
    from migrate.stack import DEFAULT

    Stack(stack, (*DEFAULT, "postgres")).up()
    return stack


@pytest.fixture(autouse=True)
def _remove_new_connectors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Names are unique, so nothing needs tearing down for correctness; but every connector left
    running reads the whole binlog, and dozens of them would starve the shared Connect worker."""
    if "stack" not in request.fixturenames:
        yield
        return
    config: StackConfig = request.getfixturevalue("stack")
    client = ConnectClient(config.connect_url)
    before = set(client.connectors())
    yield
    for name in set(client.connectors()) - before:
        client.delete(name)


def commit_offsets(config: StackConfig, group: str, offsets: list[tuple[str, int, int]]) -> None:
    """Commit (topic, partition, offset) triples for `group`, as a consumer of it would."""
    consumer = Consumer({"bootstrap.servers": config.bootstrap_servers, "group.id": group,
                         "enable.auto.commit": False}, logger=quiet_logger())  # fmt: skip
    try:
        consumer.commit(offsets=[TopicPartition(t, p, o) for t, p, o in offsets], asynchronous=False)
    finally:
        consumer.close()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """unique('orders') -> 'orders_3f9a1c2b': a fresh name per call."""
    return lambda prefix: f"{prefix}_{uuid.uuid4().hex[:8]}"


class Database:
    """SQL against the stack's MariaDB as the dualrun user, autocommitted."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    def connect(self) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(
            host="127.0.0.1", port=self.config.ports.mariadb, user=self.config.db_user,
            password=self.config.db_password, database=self.config.database, autocommit=True,
        )  # fmt: skip

    def run(self, *statements: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn, conn.cursor() as cur:
            rows: list[tuple[Any, ...]] = []
            for statement in statements:
                cur.execute(statement, args)
                rows = list(cur.fetchall())
            return rows

    def orders_table(self, name: str) -> str:
        self.run(f"CREATE TABLE `{name}` LIKE orders")
        return name


@pytest.fixture(scope="session")
def db(stack: StackConfig) -> Database:
    return Database(stack)


@pytest.fixture(scope="session")
def connect(stack: StackConfig) -> ConnectClient:
    return ConnectClient(stack.connect_url, secrets=(stack.debezium_password,))


def connector_for(stack: StackConfig, name: str, tables: tuple[str, ...], **extra: Any) -> ConnectorSettings:
    return ConnectorSettings(
        name=name, kind="mariadb", hostname="127.0.0.1", port=stack.ports.mariadb,
        user=extra.pop("user", stack.debezium_user), password=extra.pop("password", stack.debezium_password),
        databases=(stack.database,), tables=tables, bootstrap_servers=stack.bootstrap_servers,
        topic_prefix=name, server_id=200000 + int(uuid.uuid4().int % 100000), **extra,
    )  # fmt: skip


def wait_status(
    client: ConnectClient, name: str, want: Callable[[ConnectorStatus], bool], timeout: float = 60
) -> ConnectorStatus:
    deadline = time.monotonic() + timeout
    last: ConnectorStatus | None = None
    while time.monotonic() < deadline:
        try:
            last = client.status(name)
        except Exception:  # noqa: BLE001 - 404 until the status topic has it
            last = None
        if last is not None and want(last):
            return last
        time.sleep(0.25)
    raise AssertionError(f"connector {name} never reached the wanted state; last: {last}")


class Events:
    """Reads decoded change events from topics, from the beginning, read_committed."""

    def __init__(self, config: StackConfig, topics: list[str]) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": config.bootstrap_servers,
                "group.id": f"test-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "session.timeout.ms": 6000,
                "topic.metadata.refresh.interval.ms": 500,
            },
            logger=quiet_logger(),
        )
        self.consumer.subscribe(topics)

    def take(self, count: int, timeout: float = 60) -> list[ChangeEvent | Tombstone]:
        events: list[ChangeEvent | Tombstone] = []
        deadline = time.monotonic() + timeout
        while len(events) < count and time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            events.append(decode(msg.topic(), msg.key(), msg.value()))
        assert len(events) == count, f"expected {count} events, got {len(events)}: {events}"
        return events

    def quiet(self, seconds: float = 3) -> list[bytes]:
        """Anything more that arrives within `seconds` (should usually be nothing)."""
        extra = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.25)
            if msg is not None and not msg.error():
                extra.append(msg.value())
        return extra

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def events(stack: StackConfig) -> Iterator[Callable[[list[str]], Events]]:
    opened: list[Events] = []

    def open_(topics: list[str]) -> Events:
        opened.append(Events(stack, topics))
        return opened[-1]

    yield open_
    for e in opened:
        e.close()


def pretty(value: Any) -> str:
    return json.dumps(value, default=str)


def changes(events: list[ChangeEvent | Tombstone]) -> list[ChangeEvent]:
    """The change events, Debezium's tombstones left out."""
    return [e for e in events if isinstance(e, ChangeEvent)]


def check_insert_update_delete(
    streamed: list[ChangeEvent | Tombstone], last_snapshot: ChangeEvent
) -> tuple[ChangeEvent, ChangeEvent, ChangeEvent]:
    """The shared scenario of both sources after a snapshot of orders 1 (129.99, NEW) and 2 (0.01):
    insert order 3 at 9999999999.99, update order 1 to 612.50 PAID, delete order 2. Checks the
    events, their exact amounts, the tombstone and strictly increasing positions; returns them."""
    ins, upd, dele = changes(streamed)
    assert isinstance(streamed[3], Tombstone) and streamed[3].key == {"order_id": 2}
    assert (ins.op, ins.before, ins.key) == ("c", None, {"order_id": 3})
    assert ins.after is not None and ins.after["amount"] == Decimal("9999999999.99")
    # A full row image (MariaDB) / REPLICA IDENTITY FULL (PostgreSQL): updates and deletes carry the old row.
    assert upd.op == "u" and upd.before is not None and upd.after is not None
    assert (upd.before["amount"], upd.before["status"]) == (Decimal("129.99"), "NEW")
    assert (upd.after["amount"], upd.after["status"]) == (Decimal("612.50"), "PAID")
    assert dele.op == "d" and dele.after is None and dele.before is not None
    assert dele.before["amount"] == Decimal("0.01")
    positions = [e.position for e in (last_snapshot, ins, upd, dele)]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    return ins, upd, dele
