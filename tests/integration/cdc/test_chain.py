"""The chain fence on real topics: a group's internal topics drained after the change-topic fence,
with offsets committed by hand and with the Kafka Streams OrderEnricher as a subprocess."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from cdc.chain import wait_internal_topics, wait_job_progress
from cdc.connect import ConnectClient
from cdc.position import Position
from cdc.topics import TopicAdmin, quiet_logger
from migrate.examples.order_enricher.runner import EnricherJob, EnricherSettings
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database, commit_offsets, connector_for, wait_status

pytestmark = pytest.mark.integration


def test_internal_topics_must_be_consumed_to_their_end_and_other_groups_topics_never_count(
    stack: StackConfig, unique: Callable[[str], str]
) -> None:
    group = f"app-{uuid.uuid4().hex[:8]}"
    change, repartition = unique("cdc.orders"), f"{group}-orders-repartition"
    changelog, variant = f"{group}-store-changelog", f"{group}-variant-orders-repartition"  # not consumed by group
    admin = TopicAdmin(stack.bootstrap_servers)
    for topic in (change, repartition, changelog, variant):
        admin.create(topic, partitions=1)
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers}, logger=quiet_logger())
    for topic, count in ((change, 2), (repartition, 5), (changelog, 4), (variant, 3)):
        for _ in range(count):
            producer.produce(topic, key=b"k", value=b"v")
    producer.flush(30)
    commit_offsets(stack, group, [(change, 0, 2), (repartition, 0, 2)])

    behind = wait_internal_topics(stack.bootstrap_servers, group, [change], timeout=1)
    assert not behind.reached and behind.internal_topics == (repartition,)
    assert behind.behind == ((repartition, 0, 2, 5),)
    assert "lag 3" in behind.describe() and repartition in behind.describe()

    commit_offsets(stack, group, [(repartition, 0, 5)])
    drained = wait_internal_topics(stack.bootstrap_servers, group, [change], timeout=5)
    assert drained.reached and drained.rounds == 0, drained.to_dict()


def _binlog_end(db: Database) -> Position:
    file, pos = db.run("SHOW MASTER STATUS")[0][:2]
    return Position.binlog(str(file), int(pos))


def _in_topic(stack: StackConfig, topic: str, needle: str, timeout: float = 60) -> None:
    consumer = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": f"t-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest"}, logger=quiet_logger())  # fmt: skip
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and needle.encode() in (msg.value() or b""):
                return
        raise AssertionError(f"{needle} never reached {topic}")
    finally:
        consumer.close()


def _latest(stack: StackConfig, topic: str) -> dict[int, dict[str, str] | None]:
    """Every key's last value on `topic` up to its current end, read_committed."""
    consumer = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": f"t-{uuid.uuid4().hex[:8]}",
                         "isolation.level": "read_committed", "enable.partition.eof": True},
                        logger=quiet_logger())  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, 0)])
    latest: dict[int, dict[str, str] | None] = {}
    try:
        while True:
            msg = consumer.poll(5)
            assert msg is not None, f"no end of {topic} within 5 s"
            if msg.error():
                return latest
            latest[json.loads(msg.key())] = None if msg.value() is None else json.loads(msg.value())
    finally:
        consumer.close()


def test_once_the_job_passed_a_position_its_outputs_hold_every_change_up_to_it(
    stack: StackConfig, db: Database, connect: ConnectClient, unique: Callable[[str], str]
) -> None:
    """Kafka Streams commits change-topic offsets before its repartition and foreign-key topics carry
    the change to the outputs: only the chain fence makes "passed P" mean "outputs complete at P"."""
    settings = connector_for(stack, unique("chain"), ("shop.customers", "shop.orders"))
    connect.put(settings.name, settings.to_config())
    wait_status(connect, settings.name, lambda s: s.running)
    customer, first = random.randrange(10**8, 2 * 10**8), random.randrange(10**9, 2 * 10**9)
    db.run("INSERT INTO customers (id, name, tier) VALUES (%s, 'Ada', 'GOLD')", args=(customer,))
    job = EnricherJob(stack.state_dir, EnricherSettings(
        stack.bootstrap_servers, application_id=unique("chain-app"), orders_topic=settings.table_topic("shop.orders"),
        customers_topic=settings.table_topic("shop.customers"), enriched_topic=unique("enriched"),
        alerts_topic=unique("alerts"), revenue_topic=unique("revenue"),
        commit_interval_ms=1500,  # each internal hop takes up to a commit interval: a wide window to miss
    ))  # fmt: skip
    orders = range(first, first + 40)
    for order in orders:
        db.run("INSERT INTO orders (order_id, customer_id, amount, status) VALUES (%s, %s, 10.00, 'NEW')",
               args=(order, customer))  # fmt: skip
    # The job needs its source topics: on a busy machine the connector's snapshot of the shared tables
    # can take longer than the job waits for them. The updates below still arrive while it runs.
    admin, deadline = TopicAdmin(stack.bootstrap_servers), time.monotonic() + 240
    while not admin.exists(settings.table_topic("shop.orders")) and time.monotonic() < deadline:
        time.sleep(0.5)
    _in_topic(stack, settings.table_topic("shop.orders"), f'"order_id":{first}', timeout=120)
    try:
        job.start()
        db.run("UPDATE customers SET name = 'Ada L.' WHERE id = %s", args=(customer,))
        db.run("UPDATE orders SET amount = amount + 1 WHERE order_id BETWEEN %s AND %s", args=(first, first + 39))
        target = _binlog_end(db)
        # Sentinels after P on both change topics: Debezium has passed P everywhere.
        db.run("UPDATE customers SET tier = 'SILVER' WHERE id = %s", args=(customer,))
        db.run("INSERT INTO orders (order_id, customer_id, amount, status) VALUES (%s, %s, 1.00, 'NEW')",
               args=(first + 100, customer))  # fmt: skip
        _in_topic(stack, settings.table_topic("shop.customers"), '"tier":"SILVER"')
        _in_topic(stack, settings.table_topic("shop.orders"), f'"order_id":{first + 100}')

        progress = wait_job_progress(
            stack.bootstrap_servers, job.settings.application_id,
            [settings.table_topic("shop.orders"), settings.table_topic("shop.customers")], target,
            source_passed=lambda: True, timeout=120,
        )  # fmt: skip
        assert progress.reached, progress.describe()
        latest = _latest(stack, job.settings.enriched_topic)
        for order in orders:
            row = latest.get(order)
            assert row is not None and row["amount"] == "11.00" and row["customer_name"] == "Ada L.", (order, row)
    finally:
        job.cleanup()
