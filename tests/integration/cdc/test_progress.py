"""Consumer-group progress against a position, on real topics and real committed offsets."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import orjson
import pytest
from confluent_kafka import Producer

from cdc.position import Position
from cdc.progress import group_progress, wait_group_progress
from cdc.topics import TopicAdmin, quiet_logger
from migrate.stackconfig import StackConfig
from tests.integration.conftest import commit_offsets

pytestmark = pytest.mark.integration


def _event(pos: int | None) -> bytes | None:
    if pos is None:
        return None  # Debezium's tombstone after a delete
    source = {"connector": "mariadb", "file": "mysql-bin.000002", "pos": pos, "row": 0, "snapshot": "false"}
    return orjson.dumps({"schema": {}, "payload": {"op": "u", "source": source, "after": {"id": 1}}})


def test_group_progress_fences_each_partition_and_ignores_topics_the_group_never_reads(
    stack: StackConfig, unique: Callable[[str], str]
) -> None:
    orders, customers = unique("cdc.orders"), unique("cdc.customers")
    admin = TopicAdmin(stack.bootstrap_servers)
    admin.create(orders, partitions=2)
    admin.create(customers, partitions=1)
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers}, logger=quiet_logger())
    for partition, positions in ((0, [100, 110, None, 120, 130]), (1, [105, 140])):
        for pos in positions:
            producer.produce(orders, key=b"{}", value=_event(pos), partition=partition)
    producer.produce(customers, key=b"{}", value=_event(90), partition=0)
    producer.flush(30)
    target = Position.binlog("mysql-bin.000002", 125)
    group = f"job-{uuid.uuid4().hex[:8]}"

    nothing = group_progress(stack.bootstrap_servers, group, [orders, customers], target, source_passed=True)
    assert not nothing.reached and nothing.problem is not None and "no offsets" in nothing.problem

    commit_offsets(stack, group, [(orders, 0, 2), (orders, 1, 1)])
    behind = group_progress(stack.bootstrap_servers, group, [orders, customers], target, source_passed=True)
    assert not behind.reached and behind.not_consumed == (customers,)  # never read: never waited for
    fences = {(p.partition, p.fence, p.committed, p.lag) for p in behind.partitions}
    assert fences == {(0, 4, 2, 2), (1, 1, 1, 0)}  # the tombstone at 2 is skipped by the search
    assert behind.lag == 2 and "lag 2" in behind.describe() and "stream behind" in behind.describe()

    commit_offsets(stack, group, [(orders, 0, 4)])
    assert group_progress(stack.bootstrap_servers, group, [orders, customers], target, source_passed=True).reached

    # A topic whose every event is at or before P is fenced at its end only once Debezium passed P.
    commit_offsets(stack, group, [(customers, 0, 0)])
    waiting = group_progress(stack.bootstrap_servers, group, [orders, customers], target, source_passed=False)
    assert not waiting.reached and waiting.lag is None and "waiting for Debezium" in waiting.describe()
    passed = wait_group_progress(stack.bootstrap_servers, group, [orders, customers], target,
                                 source_passed=lambda: True, timeout=1)  # fmt: skip
    assert not passed.reached and passed.lag == 1
    commit_offsets(stack, group, [(customers, 0, 1)])
    done = wait_group_progress(stack.bootstrap_servers, group, [orders, customers], target,
                               source_passed=lambda: True, timeout=10)  # fmt: skip
    assert done.reached and done.lag == 0 and done.to_dict()["reached"] is True
