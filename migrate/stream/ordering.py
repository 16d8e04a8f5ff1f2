"""Release change events in the order the source committed them, across input topics.

Debezium writes each table to its own topic, and a consumer can receive a later
customer change before an earlier order change. Debezium's transaction metadata
topic (`<prefix>.transaction`, one partition, in commit order) says for each
transaction how many events each table got. A transaction's events are released
only once its END marker and all of its events have arrived, transactions in END
order; so the job sees changes exactly as the database committed them, as the
batch job's snapshot does.

Records outside transactions (snapshot reads, Debezium's tombstones, poison
records) are released as soon as they reach the head of their partition, and so
are events of a transaction already released or older than the next END (Debezium
re-sends part of a transaction after a restart; the transform skips what it has
applied). A transaction that stays incomplete for `stall_after` seconds once the
inputs are drained, with a later transaction after it (its events lost to a poison
record, say), or for `quiet_after` seconds with nothing after it, is released with
what arrived, and counted.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from cdc.envelope import ChangeEvent, Tombstone, split_schema


class Item(NamedTuple):
    """A consumed record waiting for its turn (a named tuple: one is built per record)."""

    topic: str
    partition: int
    offset: int
    arrived: float
    event: ChangeEvent | Tombstone | None = None
    error: str | None = None
    message: Any = None  # the Kafka message, kept for the dead-letter copy
    marker: dict[str, Any] | None = None  # a BEGIN/END record of the transaction topic

    @property
    def txn(self) -> str | None:
        event = self.event
        if type(event) is ChangeEvent and not event.snapshot:
            return transaction_key(event.transaction_id)
        return None


def transaction_key(txn: str | None) -> str | None:
    """The id that names one transaction on its events and its END marker.

    Debezium's PostgreSQL connector writes `txId:lsn` with the LSN of each record (the BEGIN's,
    each change's, the commit's), so only the txId is shared (an xid is unique among the
    transactions in flight); MariaDB GTIDs and MySQL `uuid:n` stay as they are.

    >>> transaction_key("737:26422576"), transaction_key("0-1-42"), transaction_key(None)
    ('737', '0-1-42', None)
    """
    if txn is None:
        return None
    head, sep, tail = txn.partition(":")
    return head if sep and head.isdigit() and tail.isdigit() else txn


def parse_marker(value: bytes | None) -> dict[str, Any] | None:
    """A transaction-topic record -> {'status', 'id', 'counts': {collection: n}}; None if unreadable."""
    if value is None:
        return None
    split = split_schema(value)  # the schema is most of the record: parse only the payload
    try:
        doc = orjson.loads(split[1]) if split is not None else None
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or "status" not in doc:
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    payload = doc.get("payload", doc) if isinstance(doc, dict) else None
    if not isinstance(payload, dict) or payload.get("status") not in ("BEGIN", "END"):
        return None
    counts = {str(c["data_collection"]): int(c["event_count"]) for c in payload.get("data_collections") or []}
    return {"status": payload["status"], "id": transaction_key(str(payload["id"])), "counts": counts}


def _gtid(txn: str) -> tuple[int, int] | None:
    """MariaDB transaction ids are GTIDs `domain-server-seq`: ordered by seq within a domain."""
    parts = txn.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[2])


def precedes(txn: str, other: str) -> bool:
    a, b = _gtid(txn), _gtid(other)
    return a is not None and b is not None and a[0] == b[0] and a[1] < b[1]


@dataclass
class TransactionOrder:
    """Buffers per partition and releases in commit order."""

    marker_topic: str
    collections: dict[str, str]  # input topic -> Debezium data collection ("db.table")
    stall_after: float = 5.0
    quiet_after: float = 60.0  # an incomplete transaction with nothing after it: lost after this long
    # True when every table partition has been read to its end: only then can an incomplete
    # transaction be declared stalled (during a backlog its events are merely not fetched yet).
    drained: Callable[[], bool] = lambda: True
    buffers: dict[tuple[str, int], deque[Item]] = field(default_factory=dict)
    stalled: int = 0
    # Recently released transactions, oldest first (an OrderedDict: dropping the oldest is O(1),
    # where a plain dict's first key is found by walking past every earlier deletion).
    done: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        for tp in partitions:
            self.buffers.setdefault(tp, deque())

    def revoke(self, partitions: Iterable[tuple[str, int]]) -> None:
        for tp in partitions:
            self.buffers.pop(tp, None)

    def clear(self) -> None:
        for buf in self.buffers.values():
            buf.clear()

    def add(self, item: Item) -> None:
        self.buffers.setdefault((item.topic, item.partition), deque()).append(item)

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def release(self, now: float, force: bool = False) -> list[Item]:
        out: list[Item] = []
        while True:
            progressed = self._free_heads(out)
            progressed |= self._next_transaction(out, now, force)
            if not progressed:
                return out

    def _tables(self) -> list[deque[Item]]:
        return [buf for (topic, _), buf in self.buffers.items() if topic != self.marker_topic]

    def _markers(self) -> deque[Item] | None:
        for (topic, _), buf in self.buffers.items():
            if topic == self.marker_topic:
                return buf
        return None

    def _free_heads(self, out: list[Item]) -> bool:
        """Records outside any transaction leave at once; BEGIN markers need no waiting."""
        progressed = False
        markers = self._markers()
        while markers and (
            markers[0].marker is None or markers[0].marker["status"] == "BEGIN" or markers[0].marker["id"] in self.done
        ):
            out.append(markers.popleft())
            progressed = True
        next_end = markers[0].marker["id"] if markers and markers[0].marker else None
        done = self.done
        for buf in self._tables():
            while buf:
                txn = buf[0].txn
                if txn is not None and txn not in done and (next_end is None or not precedes(txn, next_end)):
                    break
                out.append(buf.popleft())
                progressed = True
        return progressed

    def _next_transaction(self, out: list[Item], now: float, force: bool) -> bool:
        markers = self._markers()
        if not markers:
            return self._orphans(out, now, force)
        end = markers[0]
        assert end.marker is not None
        txn, wanted = end.marker["id"], end.marker["counts"]
        mine = {c for c in self.collections.values()}
        ready: list[tuple[tuple[int, int, int], Item]] = []
        have: dict[str, int] = {}
        for buf in self._tables():
            key: tuple[int, int, int] | None = None
            for item in buf:
                if item.txn != txn:
                    if key is not None and type(item.event) is Tombstone:
                        # A delete's tombstone, right behind it: part of the transaction (a
                        # transaction may go on after a delete), uncounted, kept after its delete.
                        ready.append((key, item))
                        continue
                    break
                key = item.event.position.sort_key if isinstance(item.event, ChangeEvent) else (0, 0, 0)
                ready.append((key, item))
                collection = self.collections.get(item.topic, "")
                have[collection] = have.get(collection, 0) + 1
        complete = all(have.get(c, 0) >= n for c, n in wanted.items() if c in mine)
        if not complete and not force and not self._lost(markers, now - end.arrived):
            return False
        if not complete:
            self.stalled += 1
        for _, item in ready:
            self.buffers[(item.topic, item.partition)].popleft()
        # Within a transaction, the source's own order: binlog position (PostgreSQL: LSN), then row.
        ready.sort(key=lambda pair: pair[0])  # stable: a tombstone stays after its delete
        out.extend(item for _, item in ready)
        out.append(markers.popleft())
        self.done[txn] = None
        if len(self.done) > 10_000:
            self.done.popitem(last=False)
        return True

    def _lost(self, markers: deque[Item], waited: float) -> bool:
        """Are the missing events of the transaction at the head of `markers` lost, not merely late?

        Lost once the inputs are drained and either a later transaction's marker came after its END
        (Debezium moved on without them) or `quiet_after` passed. A quiet source is not a loss: while
        Kafka Connect restarts nothing arrives, and it sends the rest of the transaction again.
        """
        if waited < self.stall_after or not self.drained():
            return False
        return len(markers) > 1 or waited >= self.quiet_after

    def _orphans(self, out: list[Item], now: float, force: bool) -> bool:
        """Transaction events whose END never came (lost, or the marker topic is missing)."""
        progressed = False
        for buf in self._tables():
            while buf and (force or now - buf[0].arrived >= self.stall_after and self.drained()):
                out.append(buf.popleft())
                self.stalled += 1
                progressed = True
        return progressed
