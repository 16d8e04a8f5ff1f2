"""Topic admin and consumer-group lag on the real broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer

from cdc.errors import TopicError
from cdc.topics import TopicAdmin
from migrate.stackconfig import StackConfig

pytestmark = pytest.mark.integration


def test_create_compacted_and_retention_topics(stack: StackConfig, unique: Callable[[str], str]) -> None:
    admin = TopicAdmin(stack.bootstrap_servers)
    state, audit = unique("state"), unique("audit")
    assert admin.create(state, compact=True, partitions=3) is True
    assert admin.create(state, compact=True) is False  # already there: left alone
    assert admin.create(audit, retention_ms=86_400_000) is True
    info = admin.describe(state)
    assert (info.compacted, info.partitions, info.replication_factor) == (True, 3, 1)
    audit_info = admin.describe(audit)
    assert not audit_info.compacted and audit_info.retention_ms == 86_400_000
    assert audit_info.to_dict()["retention_ms"] == 86_400_000


def test_describe_missing_topic_is_a_clear_error(stack: StackConfig, unique: Callable[[str], str]) -> None:
    with pytest.raises(TopicError, match="does not exist"):
        TopicAdmin(stack.bootstrap_servers).describe(unique("missing"))


def test_group_lag_counts_uncommitted_records(stack: StackConfig, unique: Callable[[str], str]) -> None:
    admin = TopicAdmin(stack.bootstrap_servers)
    topic, group = unique("lag"), unique("group")
    admin.create(topic)
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers})
    for i in range(5):
        producer.produce(topic, key=str(i), value=str(i))
    assert producer.flush(10) == 0
    assert admin.group_lag(group, [topic]).total == 5  # never committed: everything is lag

    consumer = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    taken = []
    while len(taken) < 2:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            taken.append(msg)
    consumer.commit(taken[-1], asynchronous=False)
    consumer.close()
    lag = admin.group_lag(group, [topic])
    assert lag.total == 3
    assert lag.partitions[0].committed == 2 and lag.partitions[0].end == 5
