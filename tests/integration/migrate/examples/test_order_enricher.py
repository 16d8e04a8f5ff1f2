"""The Kafka Streams OrderEnricher as a subprocess on the real stack: it consumes the connector's change
topics and writes its three outputs, each record carrying the Debezium position of the change behind it."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer

from cdc.connect import ConnectClient
from cdc.topics import quiet_logger
from migrate.examples.order_enricher.runner import EnricherJob, EnricherSettings
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database, connector_for, wait_status

pytestmark = pytest.mark.integration

POSITION_HEADER = "dbz.source"  # the connector's HeaderFrom SMT (cdc.connector), on by default


@dataclass(frozen=True)
class Output:
    topic: str
    key: Any
    value: dict[str, Any] | None
    source: dict[str, Any] | None  # the position header, decoded

    @property
    def pos(self) -> tuple[str, int]:
        assert self.source is not None
        return str(self.source["file"]), int(self.source["pos"])


class Outputs:
    """Every record of the job's output topics, read_committed, kept in arrival order."""

    def __init__(self, stack: StackConfig, topics: list[str]) -> None:
        self.records: list[Output] = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": stack.bootstrap_servers, "group.id": f"test-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest", "enable.auto.commit": False, "isolation.level": "read_committed",
                "topic.metadata.refresh.interval.ms": 500,
            },
            logger=quiet_logger(),
        )  # fmt: skip
        self.consumer.subscribe(topics)

    def until(self, found: Callable[[list[Output]], Output | None], timeout: float = 90) -> Output:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = found(self.records)
            if hit is not None:
                return hit
            msg = self.consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            headers = dict(msg.headers() or [])
            raw = headers.get(POSITION_HEADER)
            self.records.append(
                Output(
                    msg.topic(), json.loads(msg.key()), None if msg.value() is None else json.loads(msg.value()),
                    None if raw is None else json.loads(raw),
                )
            )  # fmt: skip
        raise AssertionError(f"no matching output within {timeout:.0f}s; read {len(self.records)} records")

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def outputs(stack: StackConfig) -> Iterator[Callable[[list[str]], Outputs]]:
    opened: list[Outputs] = []

    def open_(topics: list[str]) -> Outputs:
        opened.append(Outputs(stack, topics))
        return opened[-1]

    yield open_
    for reader in opened:
        reader.close()


def last(topic: str, key: Any, want: Callable[[Output], bool]) -> Callable[[list[Output]], Output | None]:
    """The latest record of `key` on `topic`, if it satisfies `want`."""

    def found(records: list[Output]) -> Output | None:
        mine = [r for r in records if r.topic == topic and r.key == key]
        return mine[-1] if mine and want(mine[-1]) else None

    return found


def test_the_enricher_writes_all_outputs_from_change_topics_with_the_triggering_position(
    stack: StackConfig, db: Database, connect: ConnectClient, unique: Callable[[str], str], outputs: Any
) -> None:
    name = unique("kse")
    settings = connector_for(stack, name, ("shop.customers", "shop.orders"))
    assert settings.position_header == POSITION_HEADER
    connect.put(settings.name, settings.to_config())
    wait_status(connect, settings.name, lambda s: s.running)
    customer, order = random.randrange(10**8, 2 * 10**8), random.randrange(10**9, 2 * 10**9)
    big = order + 1
    db.run("INSERT INTO customers (id, name, tier) VALUES (%s, 'Ada', 'GOLD')", args=(customer,))
    db.run(
        "INSERT INTO orders (order_id, customer_id, amount, status, created_at) VALUES "
        "(%s, %s, 200.00, 'NEW', '2026-11-30 23:59:59.999'), (%s, %s, 612.50, 'NEW', '2026-11-30 08:00:00.000')",
        args=(order, customer, big, customer),
    )
    topics = {kind: unique(kind) for kind in ("enriched", "alerts", "revenue")}
    job = EnricherJob(
        stack.state_dir,
        EnricherSettings(
            stack.bootstrap_servers, application_id=unique("enricher"),
            orders_topic=settings.table_topic("shop.orders"), customers_topic=settings.table_topic("shop.customers"),
            enriched_topic=topics["enriched"], alerts_topic=topics["alerts"], revenue_topic=topics["revenue"],
        ),
    )  # fmt: skip
    read = outputs(list(topics.values()))
    try:
        job.start()
        assert "state RUNNING" in job.log_file.read_text()
        first = read.until(last(topics["enriched"], order, lambda r: r.value is not None))
        assert first.value == {
            "order_id": order, "customer_id": customer, "customer_name": "Ada", "customer_tier": "GOLD",
            "amount": "200.00", "status": "NEW", "loyalty_tier": "SILVER", "order_day": "2026-11-30",
            "created_at": "2026-11-30T23:59:59.999", "updated_at": first.value["updated_at"],
        }  # fmt: skip
        alert = read.until(last(topics["alerts"], big, lambda r: r.value is not None))
        assert alert.value == {"order_id": big, "customer_id": customer, "amount": "612.50"}
        day = {"customer_id": customer, "order_day": "2026-11-30"}
        revenue = read.until(last(topics["revenue"], day, lambda r: (r.value or {}).get("order_count") == 2))
        assert revenue.value is not None and revenue.value["revenue"] == "812.50"

        # A customer change re-emits that customer's orders, at the customer change's (later) position.
        db.run("UPDATE customers SET name = 'Ada L.', tier = 'SILVER' WHERE id = %s", args=(customer,))
        silver = last(topics["enriched"], order, lambda r: (r.value or {}).get("customer_tier") == "SILVER")
        renamed = read.until(silver)
        assert renamed.value is not None and renamed.value["customer_name"] == "Ada L."
        assert renamed.pos > first.pos
        assert renamed.source is not None and renamed.source["table"] == "customers"

        # A delete is a tombstone on every output it touched, at the delete's position.
        db.run("DELETE FROM orders WHERE order_id = %s", args=(big,))
        gone = read.until(last(topics["enriched"], big, lambda r: r.value is None))
        assert gone.source is not None and gone.source["table"] == "orders" and gone.pos > renamed.pos
        assert read.until(last(topics["alerts"], big, lambda r: r.value is None)).pos == gone.pos
        smaller = read.until(last(topics["revenue"], day, lambda r: (r.value or {}).get("order_count") == 1))
        assert smaller.value is not None and smaller.value["revenue"] == "200.00" and smaller.pos == gone.pos

        # Kafka Streams forwarded the position header to every record of every output, snapshot ones included.
        assert read.records and all(r.source is not None for r in read.records)
    finally:
        job.cleanup()
    assert not job.running()
