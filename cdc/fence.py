"""The offset fence's Kafka steps after the group passed the CDC fence (design-byo §3, steps 3 to 5).

Once a consumer group G has committed past the fence f_P(tp) of every change-topic partition it
consumes (`cdc.progress`) and drained its internal topics (`cdc.chain`):

* **output fence** (`wait_output_fence`): record each output partition's high watermark E(op), then
  wait until its last stable offset reaches E: every transaction that committed input offsets past
  the fence appended its records before E, so they are now committed or aborted;
* the caller reads the outputs (`read_committed`, up to the last stable offset, which is >= E);
* **upper fence** (`upper_fence`), read *after* the outputs: G's stable committed offsets U(tp)
  (exactly-once: every output record read came from a transaction whose input offsets are now
  committed), or the change topics' end offsets for an at-least-once job (processed input may show
  before its offsets are committed);
* **window** (`read_changes`): the change events in [f_P(tp), U(tp)), decoded;
* **overshoot** (`overshoot`): change events with a position past P that sit *below* f_P. Debezium
  delivers at least once: after a connector restart it resends from its last committed source
  offset, so a partition's positions can fall back, and the fence search (which takes them as
  growing) may put f_P after a resent event at or before P while an earlier event past P lies
  below it. The group has consumed that event, so its effect shows on the output: it joins the
  window (in flight), never compared as if it were before P. `ScanMark`s make the scan incremental.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from cdc import client
from cdc.chain import stable_committed
from cdc.client import Kafka, PartitionReader
from cdc.envelope import ChangeEvent, decode
from cdc.errors import CdcError, EnvelopeError, KafkaUnreachable
from cdc.position import Position

Partition = tuple[str, int]


def _consumer(kafka: Kafka, isolation: str) -> Consumer:
    return client.reader(kafka, "fence", isolation)


@dataclass(frozen=True)
class OutputFence:
    """Per output partition: the high watermark E recorded after the group fence, and the last
    stable offset seen last; `reached` when every LSO >= E."""

    ends: Mapping[Partition, int]
    stable: Mapping[Partition, int]

    @property
    def reached(self) -> bool:
        return all(self.stable.get(tp, -1) >= end for tp, end in self.ends.items())

    def describe(self) -> str:
        if self.reached:
            return f"every output partition ({len(self.ends)}) is stable up to its recorded end"
        open_ = [f"{t}[{p}] stable {self.stable.get((t, p))} < {e}" for (t, p), e in sorted(self.ends.items())
                 if self.stable.get((t, p), -1) < e]  # fmt: skip
        return "output transactions still open: " + ", ".join(open_[:3])

    def to_dict(self) -> dict[str, Any]:
        return {
            "reached": self.reached,
            "partitions": [{"topic": t, "partition": p, "end": e, "stable": self.stable.get((t, p))}
                           for (t, p), e in sorted(self.ends.items())],
        }  # fmt: skip


def _partitions(consumer: Consumer, topics: Iterable[str], timeout: float) -> list[Partition]:
    found: list[Partition] = []
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise CdcError(f"topic {topic!r} does not exist; is the streaming job writing it?")
        found.extend((topic, p) for p in sorted(meta.partitions))
    return found


def wait_output_fence(
    bootstrap_servers: Kafka, topics: Iterable[str], *, timeout: float, poll: float = 0.2
) -> OutputFence:
    """Record the output topics' high watermarks now, then wait (at most `timeout` s) until their
    last stable offsets reach them. Raises CdcError when Kafka cannot be reached."""
    deadline = time.monotonic() + timeout
    raw, committed = _consumer(bootstrap_servers, "read_uncommitted"), _consumer(bootstrap_servers, "read_committed")
    try:
        partitions = _partitions(raw, topics, timeout)
        ends = {tp: int(raw.get_watermark_offsets(TopicPartition(*tp), timeout=timeout, cached=False)[1])
                for tp in partitions}  # fmt: skip
        while True:
            # A read_committed consumer's ListOffsets answers the last stable offset (KIP-98).
            stable = {tp: int(committed.get_watermark_offsets(TopicPartition(*tp), timeout=timeout, cached=False)[1])
                      for tp in partitions}  # fmt: skip
            fence = OutputFence(ends, stable)
            if fence.reached or time.monotonic() >= deadline:
                return fence
            time.sleep(poll)
    except KafkaException as exc:
        raise CdcError(f"could not read the output topics' offsets: {exc.args[0].str()}") from exc
    finally:
        raw.close()
        committed.close()


def upper_fence(
    bootstrap_servers: Kafka, group: str, partitions: Iterable[Partition], *, exactly_once: bool, timeout: float
) -> dict[Partition, int]:
    """U(tp) per change-topic partition: the group's stable committed offset (exactly-once) or the
    partition's end offset (at-least-once). Read it after the outputs. Raises CdcError."""
    wanted = list(partitions)
    try:
        if exactly_once:
            admin = client.admin(bootstrap_servers)
            committed = stable_committed(admin, group, time.monotonic() + timeout, 0.2) or {}
            return {tp: committed.get(tp, 0) for tp in wanted}
        consumer = _consumer(bootstrap_servers, "read_uncommitted")
        try:
            return {tp: int(consumer.get_watermark_offsets(TopicPartition(*tp), timeout=timeout, cached=False)[1])
                    for tp in wanted}  # fmt: skip
        finally:
            consumer.close()
    except KafkaException as exc:
        raise CdcError(f"could not read the upper fence of group {group!r}: {exc.args[0].str()}") from exc


def read_changes(
    bootstrap_servers: Kafka, ranges: Mapping[Partition, tuple[int, int]], *, timeout: float
) -> list[tuple[Partition, int, ChangeEvent]]:
    """The change events at offsets [lo, hi) of each partition, decoded, with their partition and
    offset (tombstones skipped). Raises CdcError when a range cannot be read within `timeout` s
    (deleted by retention, or the broker not answering) or an event cannot be decoded."""
    pending = {tp: lohi for tp, lohi in ranges.items() if lohi[0] < lohi[1]}
    found: list[tuple[Partition, int, ChangeEvent]] = []
    if not pending:
        return found
    consumer = _consumer(bootstrap_servers, "read_committed")
    starts, stops = {tp: lo for tp, (lo, _) in pending.items()}, {tp: hi for tp, (_, hi) in pending.items()}
    # wait_for_stop: an at-least-once upper fence is the high watermark, which may run ahead of the LSO
    reader = PartitionReader(consumer, starts, stops=stops, wait_for_stop=True, timeout=timeout,
                             what="the window's change events")  # fmt: skip
    try:
        for msg in reader:
            tp = (msg.topic() or "", msg.partition() or 0)
            event = decode(tp[0], msg.key(), msg.value())
            if isinstance(event, ChangeEvent):
                found.append((tp, msg.offset() or 0, event))
    except EnvelopeError as exc:
        raise CdcError(f"a change event in the window could not be decoded: {exc}") from exc
    except KafkaException as exc:
        raise CdcError(f"reading the window's change events: {exc.args[0].str()}") from exc
    finally:
        consumer.close()
    return found


@dataclass(frozen=True)
class ScanMark:
    """A change-topic partition's offsets below `offset` were scanned; `highest` is the highest
    source position among them (None: no change event there)."""

    offset: int
    highest: Position | None

    def to_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "highest": None if self.highest is None else self.highest.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanMark:
        highest = data.get("highest")
        return cls(int(data["offset"]), None if highest is None else Position.from_dict(dict(highest)))


def scan_start(mark: ScanMark | None, low: int, fence: int, target: Position) -> int:
    """Where the overshoot scan of [low, fence) starts: past the mark when nothing below it is past
    `target` (and the mark is not past the fence), else at the partition's low offset."""
    if mark is None or mark.offset > fence or (mark.highest is not None and mark.highest > target):
        return low
    return max(low, mark.offset)


def advance(mark: ScanMark | None, start: int, fence: int, positions: Iterable[Position]) -> ScanMark:
    """The mark after scanning [start, fence) and finding `positions` there."""
    # A scan that continued from the mark keeps its prefix's highest (also past retention: conservative).
    highest = mark.highest if mark is not None and start >= mark.offset else None
    for position in positions:
        highest = position if highest is None or position > highest else highest
    return ScanMark(fence, highest)


def overshoot(
    bootstrap_servers: Kafka,
    fences: Mapping[Partition, int],
    target: Position,
    marks: dict[Partition, ScanMark],
    *,
    timeout: float,
) -> list[tuple[Partition, int, ChangeEvent]]:
    """The change events below each partition's fence f_P whose position is past `target` (P),
    with partition and offset. Reads [low, f_P) of each partition, or only [mark, f_P) when the
    mark's prefix holds nothing past P; updates `marks` in place (the caller keeps them between
    runs: a later P usually lets every prefix be skipped). Raises CdcError as `read_changes`."""
    ranges = scan_ranges(fences, low_offsets(bootstrap_servers, fences, timeout=timeout), target, marks)
    events = read_changes(bootstrap_servers, ranges, timeout=timeout)
    update_marks(marks, ranges, [(tp, event.position) for tp, _, event in events])
    return [(tp, offset, event) for tp, offset, event in events if event.position > target]


def low_offsets(bootstrap_servers: Kafka, partitions: Iterable[Partition], *, timeout: float) -> dict[Partition, int]:
    """The low watermark (first offset retention kept) of every partition. Raises CdcError."""
    consumer = _consumer(bootstrap_servers, "read_committed")
    try:
        return {tp: int(consumer.get_watermark_offsets(TopicPartition(*tp), timeout=timeout, cached=False)[0])
                for tp in partitions}  # fmt: skip
    except KafkaException as exc:
        raise CdcError(f"could not read the change topics' low offsets: {exc.args[0].str()}") from exc
    finally:
        consumer.close()


def scan_ranges(
    fences: Mapping[Partition, int],
    lows: Mapping[Partition, int],
    target: Position,
    marks: Mapping[Partition, ScanMark],
) -> dict[Partition, tuple[int, int]]:
    """Per partition, the offsets [start, f_P) the overshoot scan must read (`scan_start`)."""
    return {tp: (scan_start(marks.get(tp), lows.get(tp, 0), fence, target), fence) for tp, fence in fences.items()}


def update_marks(
    marks: dict[Partition, ScanMark],
    ranges: Mapping[Partition, tuple[int, int]],
    found: Iterable[tuple[Partition, Position]],
) -> None:
    """Advance `marks` past the scanned `ranges`, given the positions `found` there."""
    seen: dict[Partition, list[Position]] = {}
    for tp, position in found:
        seen.setdefault(tp, []).append(position)
    for tp, (start, stop) in ranges.items():
        if start < stop:
            marks[tp] = advance(marks.get(tp), start, stop, seen.get(tp, ()))


def partition_ends(bootstrap_servers: Kafka, topics: Iterable[str], *, timeout: float) -> dict[Partition, int]:
    """The high watermark of every partition of `topics` (CdcError when a topic does not exist)."""
    names = list(topics)
    consumer = _consumer(bootstrap_servers, "read_committed")
    try:
        return {
            tp: consumer.get_watermark_offsets(TopicPartition(*tp), timeout=timeout)[1]
            for tp in _partitions(consumer, names, timeout)
        }
    except KafkaException as exc:
        down = client.unreachable(bootstrap_servers, exc.args[0])
        if down:
            raise KafkaUnreachable(f"reading the end offsets of {', '.join(names)}: {down}") from exc
        raise CdcError(f"reading the end offsets of {', '.join(names)}: {exc.args[0].str()}") from exc
    finally:
        consumer.close()
