"""Consumer-group progress: has a foreign streaming job consumed every change up to a position?

For a source position P (the batch snapshot's) and the job's consumer group G:

* the **fence** of a change-topic partition is 1 + the offset of the last change event at or
  before P (found by binary search over the events' Debezium `source` positions, which grow
  with the offset within a partition); a partition whose every event is at or before P is
  fenced at its end only once Debezium's committed source offset has passed P (`source_passed`),
  otherwise changes at or before P may still be on their way (fence unknown);
* G has passed P when its committed offsets, read with `require_stable` (KIP-851: pending
  transactional commits are not taken as done), are at or past the fence on every partition of
  the change topics G consumes. A topic G neither committed on nor is assigned is not one of its
  inputs (a table the job never reads) and is listed apart, never waited for.

The result carries the lag per partition (fence - committed) as evidence for "stream behind".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from cdc import client
from cdc.client import Kafka
from cdc.errors import CdcError, PositionError
from cdc.position import Position


@dataclass(frozen=True)
class PartitionProgress:
    """One change-topic partition: the fence for P, G's committed offset and the log end."""

    topic: str
    partition: int
    fence: int | None  # None: Debezium has not yet passed P and no event past P is here
    committed: int | None  # None: G never committed on this partition
    end: int

    @property
    def passed(self) -> bool:
        return self.fence is not None and self.fence <= (self.committed if self.committed is not None else 0)

    @property
    def lag(self) -> int | None:
        """Events at or before P that G has not committed yet; None while the fence is unknown."""
        if self.fence is None:
            return None
        return max(0, self.fence - (self.committed or 0))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "lag": self.lag}


@dataclass(frozen=True)
class GroupProgress:
    """Whether group `group` has consumed every change up to `target`, with the evidence."""

    group: str
    target: Position
    partitions: tuple[PartitionProgress, ...]
    not_consumed: tuple[str, ...]  # change topics G neither commits on nor is assigned
    problem: str | None = None  # why progress could not be read (unstable offsets, no commits, ...)

    @property
    def reached(self) -> bool:
        return self.problem is None and bool(self.partitions) and all(p.passed for p in self.partitions)

    @property
    def lag(self) -> int | None:
        lags = [p.lag for p in self.partitions]
        return None if any(lag is None for lag in lags) else sum(lag or 0 for lag in lags)

    def describe(self) -> str:
        if self.reached:
            return f"group {self.group!r} has committed every change up to {self.target}"
        if self.problem is not None:
            return f"stream behind the batch position {self.target}: {self.problem}"
        behind = [p for p in self.partitions if not p.passed]
        parts = ", ".join(
            f"{p.topic}[{p.partition}] " + ("waiting for Debezium to pass it" if p.lag is None else f"lag {p.lag}")
            for p in behind[:5]
        )
        more = f" and {len(behind) - 5} more" if len(behind) > 5 else ""
        total = f" by {self.lag:,} event(s)" if self.lag else ""  # unknown or 0 (no partitions): no count
        return f"stream behind the batch position {self.target}{total}: group {self.group!r} at {parts}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "target": self.target.to_dict(), "reached": self.reached, "lag": self.lag,
            "partitions": [p.to_dict() for p in self.partitions], "not_consumed": list(self.not_consumed),
            "problem": self.problem,
        }  # fmt: skip


def event_position(value: bytes | None) -> Position | None:
    """The position of a Debezium change event (JSON converter, schemas on or off); None for
    tombstones and anything without a `source` block.

    >>> event_position(b'{"payload": {"op": "c", "source": {"file": "bin.000002", "pos": 7}}}')
    Position(kind='binlog', major=2, minor=7, row=0, file='bin.000002', gtid=None)
    """
    if value is None:
        return None
    try:
        data = orjson.loads(value)
        payload = data.get("payload", data) if isinstance(data, dict) else None
        source = payload.get("source") if isinstance(payload, dict) else None
        return Position.from_source(source) if isinstance(source, dict) else None
    except (orjson.JSONDecodeError, PositionError, TypeError, ValueError):
        return None


class _Reader:
    """Reads single records at chosen offsets of a partition (fence search)."""

    def __init__(self, bootstrap_servers: Kafka, timeout: float) -> None:
        self.timeout = timeout
        self.assigned: tuple[str, int] | None = None
        self.consumer = client.consumer(
            bootstrap_servers,
            {
                "group.id": f"dualrun-fence-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False, "isolation.level": "read_committed", "enable.partition.eof": True,
                # Each probe seeks; a fetch parked at the log end would hold the next one this long.
                "fetch.wait.max.ms": 10,
            },
        )  # fmt: skip

    def first_positioned(self, topic: str, partition: int, start: int, stop: int) -> tuple[int, Position] | None:
        """The first record in [start, stop) that has a position, with its offset."""
        if self.assigned == (topic, partition):
            self.consumer.seek(TopicPartition(topic, partition, start))  # re-assigning would wait a poll out
        else:
            self.consumer.assign([TopicPartition(topic, partition, start)])
            self.assigned = (topic, partition)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)  # returns on the first record; consume() would wait out its timeout
            if msg is not None:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return None
                    raise CdcError(f"reading {topic}[{partition}]: {error.str()}")
                offset = msg.offset() or 0
                if offset < start or msg.partition() != partition or msg.topic() != topic:
                    continue  # fetched for an earlier probe
                if offset >= stop:
                    return None
                position = event_position(msg.value())
                if position is not None:
                    return offset, position
        raise CdcError(f"reading {topic}[{partition}] from offset {start} timed out after {self.timeout:.0f}s")

    def close(self) -> None:
        self.consumer.close()


def partition_fence(
    reader: _Reader, topic: str, partition: int, low: int, end: int, target: Position, source_passed: bool
) -> int | None:
    """1 + the offset of the last event at or before `target` in [low, end) (binary search)."""
    lo, hi = low, end
    # Invariant: positioned records below lo are <= target; positioned records at or above hi are > target.
    while lo < hi:
        mid = (lo + hi) // 2
        found = reader.first_positioned(topic, partition, mid, hi)
        if found is None:
            hi = mid
        elif found[1] > target:
            hi = found[0]
        else:
            lo = found[0] + 1
    if lo >= end and not source_passed:
        return None  # every event here is at or before P, and more at or before P may still come
    return lo


def committed_offsets(admin: AdminClient, group: str, timeout: float) -> dict[tuple[str, int], int]:
    """G's committed offsets (require_stable: a pending transactional commit raises, KIP-851)."""
    request = [ConsumerGroupTopicPartitions(group)]
    result = admin.list_consumer_group_offsets(request, require_stable=True, request_timeout=timeout)[group]
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in result.result(timeout=timeout).topic_partitions or []
        if tp.offset >= 0 and tp.error is None
    }


def assigned_topics(admin: AdminClient, group: str, timeout: float) -> set[str]:
    """Topics assigned to G's live members (classic consumer groups; empty when none)."""
    try:
        description = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout=timeout)
    except KafkaException:
        return set()
    return {tp.topic for member in description.members for tp in member.assignment.topic_partitions}


def group_progress(
    bootstrap_servers: Kafka,
    group: str,
    topics: Sequence[str],
    target: Position,
    *,
    source_passed: bool,
    timeout: float = 15.0,
    fences: dict[tuple[str, int], int] | None = None,
) -> GroupProgress:
    """Has `group` committed past `target` on every partition of the change `topics` it consumes?

    `fences` caches known fences between calls (a fence, once known, never moves). Raises
    CdcError when Kafka cannot be reached.
    """
    admin = client.admin(bootstrap_servers)
    try:
        committed = committed_offsets(admin, group, timeout)
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT:
            return GroupProgress(group, target, (), (), "a transaction of the job is committing its offsets")
        raise CdcError(f"could not read the offsets of group {group!r}: {error.str()}") from exc
    consumed = {t for t, _ in committed} | assigned_topics(admin, group, timeout)
    mine = [t for t in topics if t in consumed]
    others = tuple(t for t in topics if t not in consumed)
    if not mine:
        problem = f"group {group!r} has committed no offsets on the change topics {', '.join(topics)} yet"
        return GroupProgress(group, target, (), others, problem)
    cache = fences if fences is not None else {}
    reader = _Reader(bootstrap_servers, timeout)
    partitions: list[PartitionProgress] = []
    try:
        metadata = admin.list_topics(timeout=timeout).topics
        for topic in mine:
            for p in sorted(metadata[topic].partitions):
                tp = TopicPartition(topic, p)
                low, end = reader.consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
                fence = cache.get((topic, p))
                if fence is None:
                    fence = partition_fence(reader, topic, p, low, end, target, source_passed)
                    if fence is not None:  # known fences are final: an event past P, or Debezium passed P
                        cache[(topic, p)] = fence
                partitions.append(PartitionProgress(topic, p, fence, committed.get((topic, p)), end))
    except KafkaException as exc:
        raise CdcError(f"could not read the change topics {', '.join(mine)}: {exc.args[0].str()}") from exc
    finally:
        reader.close()
    return GroupProgress(group, target, tuple(partitions), others)


def wait_group_progress(
    bootstrap_servers: Kafka,
    group: str,
    topics: Sequence[str],
    target: Position,
    *,
    source_passed: Callable[[], bool],
    timeout: float,
    poll: float = 0.5,
) -> GroupProgress:
    """Poll `group_progress` until the group has passed `target` or `timeout` seconds went by."""
    deadline = time.monotonic() + timeout
    fences: dict[tuple[str, int], int] = {}
    while True:
        progress = group_progress(
            bootstrap_servers, group, topics, target, source_passed=source_passed(), fences=fences
        )
        if progress.reached or time.monotonic() >= deadline:
            return progress
        time.sleep(poll)
