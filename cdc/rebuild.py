"""Rebuild a source table from its Debezium change topic as of one source position.

The table as of position P is the latest version of each primary key among the change events
at or before P, with deleted keys removed and snapshot reads (`op=r`) counted as versions.
"At or before" follows the source's commit order:

* a streamed change (c/u/d) is in when P's GTID position covers its GTID (MariaDB), else when
  its binlog (file, pos) lies before P's (a transaction that starts at P is after the snapshot);
* a snapshot read is in when the binlog position it is stamped with is at or before P's: the
  row is the table as of that position.

What the topic holds is reported too (`LogExtent`): its earliest offset (above 0 once
retention removed its head), the first event (a snapshot read when the connector snapshotted
this table) and any snapshot that came after streamed changes (the connector re-snapshotted,
as after a binlog gap with `snapshot.mode=when_needed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from cdc import client
from cdc.client import Kafka, PartitionReader
from cdc.envelope import ChangeEvent, Tombstone, decode
from cdc.errors import CdcError, PositionError
from cdc.position import Position, parse_gtid_set


@dataclass(frozen=True)
class LogExtent:
    """What a change topic holds: offsets (summed over partitions) and the shape of its history."""

    topic: str
    exists: bool
    earliest_offset: int = 0  # sum of the partitions' low watermarks: > 0 once retention removed records
    end_offset: int = 0
    first_op: str | None = None  # op of the first change event read (r: the table was snapshotted)
    first_position: Position | None = None
    snapshot_reads: int = 0
    resnapshot_at: Position | None = None  # a snapshot read after streamed changes: a re-snapshot
    events_at_or_before: int = 0
    events_after: int = 0

    @property
    def truncated(self) -> bool:
        """The head of the topic is gone (retention): versions before `first_position` are unknown."""
        return self.earliest_offset > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic, "exists": self.exists, "earliest_offset": self.earliest_offset,
            "end_offset": self.end_offset, "first_op": self.first_op,
            "first_position": self.first_position.to_dict() if self.first_position else None,
            "snapshot_reads": self.snapshot_reads,
            "resnapshot_at": self.resnapshot_at.to_dict() if self.resnapshot_at else None,
            "events_at_or_before": self.events_at_or_before, "events_after": self.events_after,
        }  # fmt: skip


@dataclass(frozen=True)
class RebuiltTable:
    """The table as of `position`: key -> row (column -> decoded value, or what `compact` made of
    it), and which keys the log touched."""

    position: Position
    rows: dict[tuple[Any, ...], Any]
    changed_keys: frozenset[tuple[Any, ...]]  # keys with an event at or before the position
    later_keys: frozenset[tuple[Any, ...]]  # keys with an event after it
    extent: LogExtent
    columns: tuple[str, ...] = field(default=())
    # Keys whose version as of the position is a snapshot read (op=r): the connector read it with
    # a SELECT, not from the binlog, so its values are what the database prints (FLOAT: 6 digits).
    snapshot_keys: frozenset[tuple[Any, ...]] = field(default=frozenset())


def covers(at: Position, event: ChangeEvent) -> bool:
    """True when the change `event` is part of the source as of `at` (see the module docstring).

    >>> snap = Position.binlog_snapshot("bin.000002", 500, gtid="0-1-7")
    >>> def ev(pos, gtid=None, op="c"):
    ...     return ChangeEvent("t", {}, op, None, {}, Position.binlog("bin.000002", pos, 0, gtid), 0, 0, op == "r", "t")
    >>> covers(snap, ev(400, "0-1-7")), covers(snap, ev(500, "0-1-8")), covers(snap, ev(500, op="r"))
    (True, False, True)
    """
    pos = event.position
    if pos.kind != "binlog" or at.kind != "binlog":
        raise PositionError("rebuilding as of a position needs binlog positions (MariaDB/MySQL)")
    if event.snapshot:
        return (pos.major, pos.minor) <= (at.major, at.minor)
    if pos.gtid and at.gtid:
        try:
            event_gtid = parse_gtid_set(pos.gtid)
            done = parse_gtid_set(at.gtid)
        except CdcError:
            pass  # a MySQL uuid:n GTID: order by file/pos
        else:
            return all(done.get(domain, -1) >= seq for domain, seq in event_gtid.items())
    return (pos.major, pos.minor) < (at.major, at.minor)


def fold(
    topic: str,
    events: Iterable[ChangeEvent | Tombstone],
    at: Position,
    key_of: Callable[[dict[str, Any]], tuple[Any, ...]] | None,
    *,
    earliest_offset: int = 0,
    end_offset: int = 0,
    compact: Callable[[dict[str, Any]], Any] | None = None,
) -> RebuiltTable:
    """The latest version per key at or before `at`, from events in topic order (per key).

    `key_of` reads the key from a row; None keys each version by its record key (the primary
    key as Debezium sends it, in the key schema's order), for callers that do not know the key.
    `compact` turns a row image into what is kept per key (default the image as a dict): a big
    table's versions then cost what the caller needs of them, not a dict of decoded values each."""
    rows: dict[tuple[Any, ...], Any] = {}
    changed: set[tuple[Any, ...]] = set()
    later: set[tuple[Any, ...]] = set()
    read: set[tuple[Any, ...]] = set()
    first: ChangeEvent | None = None
    snapshot_reads = before = after = 0
    streamed = False
    resnapshot: Position | None = None
    columns: tuple[str, ...] = ()
    for event in events:
        if isinstance(event, Tombstone):
            continue
        first = first or event
        image = event.after if event.op != "d" else event.before
        assert image is not None  # decode() refuses events without their row
        key = key_of(image) if key_of is not None else tuple(event.key.values())
        if not key:
            raise CdcError(f"{topic}: a change event without a record key; the table needs a primary key")
        if event.snapshot:
            snapshot_reads += 1
            if streamed and resnapshot is None:
                resnapshot = event.position
        else:
            streamed = True
        if not covers(at, event):
            later.add(key)
            after += 1
            continue
        before += 1
        changed.add(key)
        columns = event.columns or columns
        if event.snapshot and event.op != "d":
            read.add(key)
        else:
            read.discard(key)
        if event.op == "d":
            rows.pop(key, None)
        else:
            rows[key] = compact(image) if compact is not None else dict(image)
    extent = LogExtent(
        topic, True, earliest_offset, end_offset, first.op if first else None, first.position if first else None,
        snapshot_reads, resnapshot, before, after,
    )  # fmt: skip
    return RebuiltTable(at, rows, frozenset(changed), frozenset(later), extent, columns, frozenset(read))


class TopicReader:
    """Reads a whole topic from its earliest offset up to its end offsets at the time of the call."""

    def __init__(self, bootstrap_servers: Kafka, timeout: float = 120.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout = timeout

    def _consumer(self) -> Consumer:
        return client.reader(self.bootstrap_servers, "rebuild")

    def extent(self, consumer: Consumer, topic: str) -> tuple[list[tuple[int, int, int]], bool]:
        """[(partition, low, high)] of `topic` and whether it exists."""
        try:
            metadata = consumer.list_topics(topic, timeout=self.timeout)
        except KafkaException as exc:
            raise CdcError(f"Kafka at {self.bootstrap_servers} did not answer: {exc.args[0].str()}") from None
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            return [], False
        marks = []
        for partition in sorted(info.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=self.timeout)
            marks.append((partition, low, high))
        return marks, True

    def rebuild(
        self, topic: str, at: Position, key_of: Callable[[dict[str, Any]], tuple[Any, ...]] | None,
        compact: Callable[[dict[str, Any]], Any] | None = None,
    ) -> RebuiltTable:  # fmt: skip
        """The table of `topic` as of `at` (`key_of` and `compact` as in `fold`). Raises CdcError
        when the topic cannot be read in time."""
        consumer = self._consumer()
        try:
            marks, exists = self.extent(consumer, topic)
            if not exists:
                return RebuiltTable(at, {}, frozenset(), frozenset(), LogExtent(topic, False))
            firsts: dict[int, int] = {}
            events = self._read(consumer, topic, marks, firsts)  # folded as read, never held whole
            table = fold(topic, events, at, key_of, end_offset=sum(m[2] for m in marks), compact=compact)
            # The earliest offset actually read: retention may have moved it while reading.
            earliest = sum(max(low, firsts.get(p, low)) for p, low, _ in marks)
            return replace(table, extent=replace(table.extent, earliest_offset=earliest))
        finally:
            consumer.close()

    def _read(
        self, consumer: Consumer, topic: str, marks: list[tuple[int, int, int]], firsts: dict[int, int]
    ) -> Iterator[ChangeEvent | Tombstone]:
        """The records below each partition's end offset, from its low watermark; `firsts` gets the
        first offset read per partition."""
        todo = [(p, low, high) for p, low, high in marks if high > low]
        reader = PartitionReader(consumer, {(topic, p): low for p, low, _ in todo},
                                 stops={(topic, p): high for p, _, high in todo}, wait_for_stop=True,
                                 timeout=self.timeout, what=topic)  # fmt: skip
        for msg in reader:
            firsts.setdefault(msg.partition() or 0, msg.offset() or 0)
            yield decode(topic, msg.key(), msg.value())
