"""PartitionReader against the real broker: EOF per partition, stop offsets, open transactions, errors."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from cdc import client
from cdc.client import PartitionReader
from cdc.errors import PartitionReadError, ReadDeadline
from cdc.topics import TopicAdmin
from migrate.stackconfig import StackConfig

pytestmark = pytest.mark.integration


def _fill(stack: StackConfig, topic: str, per_partition: int, partitions: int) -> None:
    TopicAdmin(stack.bootstrap_servers).create(topic, partitions=partitions)
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers})
    for p in range(partitions):
        for i in range(per_partition):
            producer.produce(topic, key=f"{p}-{i}", value=str(i), partition=p)
    assert producer.flush(10) == 0


def _transaction(stack: StackConfig, topic: str, values: list[str], *, commit: bool) -> Producer:
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "transactional.id": topic + "-tx"})
    producer.init_transactions(10)
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, value=value, partition=0)
    producer.flush(10)
    if commit:
        producer.commit_transaction(10)
    return producer


def _settled_end(consumer: Consumer, topic: str) -> int:
    """Partition 0's last stable offset once the coordinator wrote the commit marker (asynchronously)."""
    deadline = time.monotonic() + 10
    while True:
        high = int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1])
        if high == 4 or time.monotonic() > deadline:
            return high
        time.sleep(0.1)


def test_every_partition_is_read_to_its_eof(stack: StackConfig, unique: Callable[[str], str]) -> None:
    topic = unique("reader")
    _fill(stack, topic, per_partition=4, partitions=3)
    consumer = client.reader(stack.bootstrap_servers, "test")
    try:
        read = [(m.partition(), m.offset()) for m in PartitionReader(
            consumer, {(topic, p): OFFSET_BEGINNING for p in range(3)}, timeout=30)]  # fmt: skip
    finally:
        consumer.close()
    assert sorted(read) == [(p, o) for p in range(3) for o in range(4)]


def test_stop_offsets_bound_each_partition_and_finish_closes_one(
    stack: StackConfig, unique: Callable[[str], str]
) -> None:
    topic = unique("reader")
    _fill(stack, topic, per_partition=6, partitions=2)
    consumer = client.reader(stack.bootstrap_servers, "test")
    try:
        reader = PartitionReader(consumer, {(topic, 0): 1, (topic, 1): 0}, stops={(topic, 0): 4}, timeout=30)
        read = []
        for msg in reader:
            read.append((msg.partition(), msg.offset()))
            if msg.partition() == 1:
                reader.finish((topic, 1))  # the first record of partition 1 is all this caller wants
    finally:
        consumer.close()
    assert sorted(read) == [(0, 1), (0, 2), (0, 3), (1, 0)]


def test_a_range_that_ends_in_a_commit_marker_ends_without_waiting(
    stack: StackConfig, unique: Callable[[str], str]
) -> None:
    topic = unique("reader_tx")
    TopicAdmin(stack.bootstrap_servers).create(topic)
    _transaction(stack, topic, ["a", "b", "c"], commit=True)  # offsets 0..2, the marker at 3
    consumer = client.reader(stack.bootstrap_servers, "test")
    try:
        high = _settled_end(consumer, topic)
        assert high == 4
        reader = PartitionReader(consumer, {(topic, 0): 0}, stops={(topic, 0): high}, wait_for_stop=True, timeout=10)
        assert [m.value() for m in reader] == [b"a", b"b", b"c"]
    finally:
        consumer.close()


def test_an_open_transaction_ends_the_read_at_eof_or_holds_it_to_the_deadline(
    stack: StackConfig, unique: Callable[[str], str]
) -> None:
    topic = unique("reader_open")
    _fill(stack, topic, per_partition=2, partitions=1)
    open_tx = _transaction(stack, topic, ["x", "y"], commit=False)  # offsets 2, 3: not stable yet
    stops = {(topic, 0): 4}  # the high watermark a read_uncommitted client sees
    consumer = client.reader(stack.bootstrap_servers, "test")
    try:
        seen = [m.offset() for m in PartitionReader(consumer, {(topic, 0): 0}, stops=stops, timeout=10)]
        assert seen == [0, 1]  # a read_committed reader stops at the last stable offset
    finally:
        consumer.close()
    consumer = client.reader(stack.bootstrap_servers, "test")
    try:
        with pytest.raises(ReadDeadline, match=rf"timed out after 2s at {topic}\[0\] from 0 to 4") as caught:
            list(PartitionReader(consumer, {(topic, 0): 0}, stops=stops, wait_for_stop=True, timeout=2))
        assert caught.value.pending == [(topic, 0)]
    finally:
        consumer.close()
        open_tx.abort_transaction(10)


def test_a_consumer_error_other_than_eof_is_a_typed_error(stack: StackConfig, unique: Callable[[str], str]) -> None:
    topic = unique("reader")
    _fill(stack, topic, per_partition=1, partitions=1)
    consumer = client.consumer(stack.bootstrap_servers, {"group.id": unique("g"), "enable.partition.eof": True,
                                                         "auto.offset.reset": "error"})  # fmt: skip
    try:
        with pytest.raises(PartitionReadError, match=rf"reading {topic}\[0\]: .*[Oo]ffset"):
            list(PartitionReader(consumer, {(topic, 0): 100}, timeout=15))  # past the end: out of range
    finally:
        consumer.close()
