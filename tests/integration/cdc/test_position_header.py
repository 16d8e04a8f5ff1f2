"""The position-header SMT on a real Debezium connector: every change record carries Debezium's
`source` block as one JSON header, and deletes, tombstones, heartbeats and transaction markers pass."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import orjson
import pytest
from confluent_kafka import Consumer, Message

from cdc.connect import ConnectClient
from cdc.position import Position
from cdc.topics import quiet_logger
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database, connector_for, wait_status

pytestmark = pytest.mark.integration


def _read(
    stack: StackConfig, topics: list[str], until: Callable[[list[Message]], bool], timeout: float = 60
) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers, "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False, "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": 500,
        },
        logger=quiet_logger(),
    )  # fmt: skip
    consumer.subscribe(topics)
    seen: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(seen) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                seen.append(msg)
    finally:
        consumer.close()
    return seen


def test_every_change_record_carries_the_source_block_and_deletes_heartbeats_markers_pass(
    stack: StackConfig, db: Database, connect: ConnectClient, unique: Callable[[str], str],
) -> None:  # fmt: skip
    table = db.orders_table(unique("orders"))
    insert = f"INSERT INTO `{table}` (order_id, customer_id, amount, status) VALUES "
    db.run(insert + "(1, 7, 129.99, 'NEW'), (2, 8, 0.01, 'NEW')")
    settings = connector_for(stack, unique("poshdr"), (f"shop.{table}",))
    assert settings.position_header == "dbz.source"
    connect.put(settings.name, settings.to_config())
    wait_status(connect, settings.name, lambda s: s.running)
    topic = settings.table_topic(f"shop.{table}")
    assert len(_read(stack, [topic], lambda seen: len(seen) >= 2)) == 2  # snapshot done

    db.run(insert + "(3, 9, 10.00, 'NEW')")
    db.run(f"UPDATE `{table}` SET amount = 612.50, status = 'PAID' WHERE order_id = 1")
    db.run(f"DELETE FROM `{table}` WHERE order_id = 2")
    db.run(insert + "(4, 9, 1.00, 'NEW')")  # a change after the delete: the connector went on
    records = _read(stack, [topic], lambda seen: len(seen) >= 7)
    assert len(records) == 7, [m.value() for m in records]
    tombstones = [m for m in records if m.value() is None]
    changes = [m for m in records if m.value() is not None]
    assert len(tombstones) == 1 and orjson.loads(tombstones[0].key())["payload"] == {"order_id": 2}
    assert tombstones[0].topic() == topic  # back on its own topic after the detour
    positions = []
    for msg in changes:
        headers = dict(msg.headers() or [])
        source = orjson.loads(headers["dbz.source"])
        envelope = orjson.loads(msg.value())["payload"]
        assert source == envelope["source"]  # a copy of the source block, envelope untouched
        positions.append(Position.from_source(source))
    assert [orjson.loads(m.value())["payload"]["op"] for m in changes] == ["r", "r", "c", "u", "d", "c"]
    streamed = positions[2:]
    assert streamed == sorted(streamed) and len(set(streamed)) == len(streamed)

    # Heartbeats and transaction metadata keep flowing, without the header, and the task still runs.
    heartbeats = _read(stack, [settings.heartbeat_topic], lambda seen: len(seen) >= 2)
    assert len(heartbeats) >= 2 and all("dbz.source" not in dict(m.headers() or []) for m in heartbeats)
    markers = _read(stack, [f"{settings.topic_prefix}.transaction"], lambda seen: len(seen) >= 8)
    assert {orjson.loads(m.value())["payload"]["status"] for m in markers} == {"BEGIN", "END"}
    status = connect.status(settings.name)
    assert status.running and not status.failed, status
