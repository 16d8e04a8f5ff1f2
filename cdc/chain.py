"""The chain fence: a streaming job's internal topics drained, after it passed the change-topic fence.

A Kafka Streams job with repartition or foreign-key-join topics (`<application.id>-...-repartition`,
`-subscription-registration-topic`, `-subscription-response-topic`) commits its change-topic offsets in
the transaction that writes the *derived* records to those topics, not the outputs: the outputs of a
change appear one or more commit cycles later, when the same group has consumed the internal topics in
turn. So once the group has passed the change-topic fence (`cdc.progress`), its outputs are complete
up to the batch position only after the group has also consumed, level by level, what its internal
topics held at that moment.

Each round reads the group's committed offsets C (require_stable), then the internal topics' end
offsets H. C >= H everywhere means everything ever written there was consumed before H was read, and
what that consumption derived was committed with it: the chain is drained. Otherwise the round waits
until the committed offsets reach H, and repeats; after one round per internal topic (the longest
possible chain) every record derived from the fenced changes has reached the outputs.

Internal topics are the topics the group commits on or has assigned to its live members, other than
the change topics: Kafka Streams' repartition and foreign-key topics (its state-store changelogs are
only restored, never assigned). Not by name: another application.id may share the prefix (a
`<group>-variant` job's topics are `<group>-variant-...-repartition`). End offsets include
transaction markers; Kafka Streams commits its consumer position past them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from cdc import client
from cdc.client import Kafka
from cdc.errors import CdcError
from cdc.position import Position
from cdc.progress import GroupProgress, assigned_topics, committed_offsets, wait_group_progress

Partition = tuple[str, int]


@dataclass(frozen=True)
class ChainProgress:
    """Whether group `group` has drained its internal topics; `behind` lists (topic, partition,
    committed, needed) where it has not."""

    group: str
    internal_topics: tuple[str, ...]
    rounds: int
    behind: tuple[tuple[str, int, int, int], ...] = ()

    @property
    def reached(self) -> bool:
        return not self.behind

    def describe(self) -> str:
        if self.reached:
            return f"group {self.group!r} consumed its internal topics ({len(self.internal_topics)}) after the fence"
        lag = sum(needed - committed for _, _, committed, needed in self.behind)
        where = ", ".join(f"{t}[{p}] lag {n - c}" for t, p, c, n in self.behind[:3])
        more = f" and {len(self.behind) - 3} more" if len(self.behind) > 3 else ""
        return f"group {self.group!r} has not consumed its internal topics yet (lag {lag}): {where}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "internal_topics": list(self.internal_topics), "rounds": self.rounds,
            "reached": self.reached,
            "behind": [{"topic": t, "partition": p, "committed": c, "needed": n} for t, p, c, n in self.behind],
        }  # fmt: skip


def internal_topics(consumed: set[str], change_topics: Sequence[str]) -> list[str]:
    """The topics a group feeds itself: those it commits on or is assigned, but the change topics.

    >>> internal_topics({"db.shop.orders", "app-orders-repartition", "app-x-subscription-response-topic"},
    ...     ["db.shop.orders"])
    ['app-orders-repartition', 'app-x-subscription-response-topic']
    """
    return sorted(consumed - set(change_topics))


def wait_internal_topics(
    bootstrap_servers: Kafka, group: str, change_topics: Sequence[str], *, timeout: float, poll: float = 0.2
) -> ChainProgress:
    """Wait (bounded by `timeout` seconds) until `group` has drained its internal topics; see the module.

    Raises CdcError when Kafka cannot be reached.
    """
    deadline = time.monotonic() + timeout
    admin = client.admin(bootstrap_servers)
    consumer = client.consumer(bootstrap_servers, {"group.id": f"dualrun-chain-{uuid.uuid4().hex[:8]}"})
    try:
        committed = stable_committed(admin, group, deadline, poll)
        if committed is None:
            return ChainProgress(group, (), 0, ())
        metadata = admin.list_topics(timeout=10).topics
        consumed = {t for t, _ in committed} | assigned_topics(admin, group, 10)
        topics = [t for t in internal_topics(consumed, change_topics) if t in metadata]
        partitions = [(t, p) for t in topics for p in sorted(metadata[t].partitions)]
        for rounds in range(len(topics) + 1):
            ends = {tp: _end(consumer, tp) for tp in partitions}
            behind = _behind(committed, ends)
            if not behind or rounds == len(topics):
                return ChainProgress(group, tuple(topics), rounds)
            while behind:
                if time.monotonic() >= deadline:
                    return ChainProgress(group, tuple(topics), rounds, behind)
                time.sleep(poll)
                committed = stable_committed(admin, group, deadline, poll) or {}
                behind = _behind(committed, ends)
        return ChainProgress(group, tuple(topics), len(topics))
    except KafkaException as exc:
        raise CdcError(f"could not read the internal topics of group {group!r}: {exc.args[0].str()}") from exc
    finally:
        consumer.close()


def _end(consumer: Consumer, tp: Partition) -> int:
    return int(consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10, cached=False)[1])


def _behind(committed: dict[Partition, int], ends: dict[Partition, int]) -> tuple[tuple[str, int, int, int], ...]:
    return tuple(
        (t, p, committed.get((t, p), 0), end) for (t, p), end in sorted(ends.items()) if committed.get((t, p), 0) < end
    )


def stable_committed(admin: AdminClient, group: str, deadline: float, poll: float) -> dict[Partition, int] | None:
    """The group's stable committed offsets, retried while a transaction is committing them."""
    while True:
        try:
            return committed_offsets(admin, group, 10) or None
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNSTABLE_OFFSET_COMMIT or time.monotonic() >= deadline:
                raise
        time.sleep(poll)


def wait_job_progress(
    bootstrap_servers: Kafka,
    group: str,
    topics: Sequence[str],
    target: Position,
    *,
    source_passed: Callable[[], bool],
    timeout: float,
    poll: float = 0.5,
) -> GroupProgress:
    """`cdc.progress.wait_group_progress`, then the chain fence within the same `timeout`: reached only
    when the group passed `target` on the change topics and drained its internal topics after that."""
    started = time.monotonic()
    progress = wait_group_progress(
        bootstrap_servers, group, topics, target, source_passed=source_passed, timeout=timeout, poll=poll
    )
    if not progress.reached:
        return progress
    left = max(0.0, timeout - (time.monotonic() - started))
    chain = wait_internal_topics(bootstrap_servers, group, topics, timeout=left, poll=min(poll, 0.2))
    return progress if chain.reached else replace(progress, problem=chain.describe())
