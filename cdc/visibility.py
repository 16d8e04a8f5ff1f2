"""PostgreSQL snapshots as batch positions: "at or before the batch" is MVCC visibility.

A batch job reading PostgreSQL in one REPEATABLE READ transaction sees exactly the transactions
visible in its snapshot, `pg_current_snapshot()` = `xmin:xmax:xip_list` (64-bit `xid8`). A change
is at or before the batch iff its transaction is visible there: xid < xmin, or xid < xmax and not
in xip. That is the rule PostgreSQL itself applies, so it is exact; an xid comparison or a commit
LSN alone is not: a transaction's commit record is written to WAL before it leaves the proc array,
so two transactions can become visible in the opposite order of their commit LSNs, and an old
transaction open across the snapshot commits after younger visible ones.

How Debezium's `source.txId` maps to the snapshot's xid8 (checked on the stack's PostgreSQL 15.18
with Debezium 3.5.0.Final pgoutput, `tests/integration/cdc/test_visibility.py` pins it):

* pgoutput's BEGIN message carries the 32-bit xid (protocol: "Int32 (TransactionId) Xid of the
  transaction"); Debezium's `txId` is that xid as an unsigned number, so it equals
  `pg_current_xact_id() % 2**32`, never the epoch. On a cluster at epoch 0 it equals the xid8.
* `widen` puts the epoch back: the xid8 with those low 32 bits nearest the snapshot's xmax. That
  is exact because PostgreSQL keeps every live xid within 2**31 of the next xid (wraparound
  protection), and every transaction dualrun asks about commits near the snapshot.
* Stream order is commit order: the transaction topic's END record id is `txId:commitLsn`, the
  commit LSN being the end of the commit record, and every change of the next transaction carries
  that LSN as the first element of `source.sequence` (`[lastCommitLsn, lsn]`), which is what
  `cdc.position.Position` orders PostgreSQL events by. On the probe, with transactions 737 and 738
  interleaved (738 committed first): END `738:26423488`, then 737's changes with sequence
  `["26423488", ...]` and END `737:26423536`, then 739's changes with `["26423536", ...]`.

The batch position is then resolved against the stream (`stream_cut`): the visible transactions
must be a prefix of the commit order (they nearly always are; if not, no state of the stream equals
the snapshot and dualrun says so), and the stream as of the batch is every change whose
`lastCommitLsn` is below the commit LSN of the prefix's last transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from cdc import client
from cdc.client import Kafka, PartitionReader
from cdc.errors import CdcError, PositionError
from cdc.position import format_lsn

XID32 = 1 << 32
_SNAPSHOT = re.compile(r"^\s*(\d+):(\d+):([\d,\s]*)$")


def widen(txid: int, reference: int) -> int:
    """The 64-bit xid8 whose low 32 bits are `txid`, nearest to the xid8 `reference`.

    >>> widen(737, 740), widen(4294967290, (1 << 32) + 5), widen(3, (1 << 32) - 2)
    (737, 4294967290, 4294967299)
    """
    if not 0 <= txid < XID32:
        raise PositionError(f"PostgreSQL txId {txid} is not a 32-bit transaction id")
    delta = (txid - reference) % XID32
    return reference + delta if delta < XID32 // 2 else reference + delta - XID32


@dataclass(frozen=True)
class PgSnapshot:
    """A PostgreSQL MVCC snapshot (`pg_current_snapshot()`), xids as 64-bit `xid8`.

    `lsn_before`/`lsn_after`: `pg_current_wal_insert_lsn()` read just before the snapshot was
    taken and just after (same session): every visible transaction's commit record ends at or
    before `lsn_after`, so once the stream has passed it, every visible transaction is in.

    >>> s = PgSnapshot.parse("100:105:101,103")
    >>> [s.visible(x) for x in (99, 100, 101, 102, 103, 104, 105)]
    [True, True, False, True, False, True, False]
    """

    xmin: int
    xmax: int
    xip: tuple[int, ...] = ()
    lsn_before: int | None = None
    lsn_after: int | None = None

    @classmethod
    def parse(cls, text: str, lsn_before: int | None = None, lsn_after: int | None = None) -> PgSnapshot:
        """`pg_current_snapshot()::text`, like `737:740:737,739`."""
        match = _SNAPSHOT.match(text)
        if match is None:
            raise PositionError(f"{text!r} is not a PostgreSQL snapshot like 737:740:737,739")
        xip = tuple(sorted(int(x) for x in match[3].replace(" ", "").split(",") if x))
        snapshot = cls(int(match[1]), int(match[2]), xip, lsn_before, lsn_after)
        if snapshot.xmin > snapshot.xmax or any(not snapshot.xmin <= x < snapshot.xmax for x in xip):
            raise PositionError(f"PostgreSQL snapshot {text!r} is inconsistent (need xmin <= xip < xmax)")
        return snapshot

    def visible(self, xid8: int) -> bool:
        """Committed `xid8` is visible in this snapshot (PostgreSQL's XidInMVCCSnapshot, negated)."""
        if xid8 < self.xmin:
            return True
        return xid8 < self.xmax and xid8 not in self.xip

    def visible_txid(self, txid: int) -> bool:
        """The same for Debezium's 32-bit `source.txId` (see `widen`)."""
        return self.visible(widen(txid, self.xmax))

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(str(x) for x in self.xip)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": str(self), "xmin": self.xmin, "xmax": self.xmax, "xip": list(self.xip),
            "lsn_before": None if self.lsn_before is None else format_lsn(self.lsn_before),
            "lsn_after": None if self.lsn_after is None else format_lsn(self.lsn_after),
        }  # fmt: skip


@dataclass(frozen=True)
class StreamCut:
    """Where a snapshot falls in the stream's commit order.

    `bound`: the stream as of the snapshot is every change whose order value
    (`Position.order_value`, the `lastCommitLsn` of its transaction) is <= `bound`; 0 (Debezium's
    snapshot reads only) when no visible transaction was streamed. `complete`: the stream has
    passed `lsn_after`, so every visible transaction is known. `stray`: visible transactions
    committed after an invisible one (the visible set is not a prefix of the commit order), as
    (txId, commitLsn).
    """

    bound: int
    complete: bool
    last_visible: tuple[int, int] | None = None  # (txId, commitLsn)
    first_invisible: tuple[int, int] | None = None
    stray: tuple[tuple[int, int], ...] = ()

    @property
    def exact(self) -> bool:
        return self.complete and not self.stray

    def to_dict(self) -> dict[str, Any]:
        return {
            "bound": self.bound, "complete": self.complete, "exact": self.exact,
            "last_visible": list(self.last_visible) if self.last_visible else None,
            "first_invisible": list(self.first_invisible) if self.first_invisible else None,
            "stray": [list(s) for s in self.stray],
        }  # fmt: skip


def stream_cut(snapshot: PgSnapshot, commits: Iterable[tuple[int, int]], passed_lsn: int | None = None) -> StreamCut:
    """The cut of `snapshot` in `commits`, the stream's transactions in commit order as
    (txId, commitLsn) (the transaction topic's END records, from a point where every earlier
    transaction is visible).

    The cut ends at the last transaction before the first invisible one. `complete` once a
    commit at or past `snapshot.lsn_after` was seen, or `passed_lsn` (Debezium's committed
    offset) is at or past it. Visible transactions after the first invisible one are `stray`.

    >>> s = PgSnapshot.parse("10:13:11", lsn_after=500)
    >>> c = stream_cut(s, [(9, 100), (10, 200), (12, 300), (11, 400), (13, 600)])
    >>> c.bound, c.exact, c.last_visible, c.first_invisible
    (299, True, (12, 300), (11, 400))
    >>> stream_cut(s, [(9, 100), (11, 200), (12, 300), (13, 600)]).stray
    ((12, 300),)
    """
    if snapshot.lsn_after is None:
        raise PositionError("the PostgreSQL snapshot has no WAL bracket (lsn_after); rerun the batch")
    last: tuple[int, int] | None = None
    first_invisible: tuple[int, int] | None = None
    stray: list[tuple[int, int]] = []
    complete = passed_lsn is not None and passed_lsn >= snapshot.lsn_after
    for txid, lsn in commits:
        if lsn >= snapshot.lsn_after:
            complete = True
        if snapshot.visible_txid(txid):
            if first_invisible is None:
                last = (txid, lsn)
            else:
                # Visible means committed before the snapshot, so at or before lsn_after: no
                # LSN test, one exactly at lsn_after is stray too.
                stray.append((txid, lsn))
        elif first_invisible is None:
            first_invisible = (txid, lsn)
        if complete and lsn >= snapshot.lsn_after:
            break
    # Nothing visible streamed: only Debezium's snapshot reads (order 0) are at or before it.
    bound = last[1] - 1 if last is not None else 0
    return StreamCut(bound, complete, last, first_invisible, tuple(stray))


def transaction_topic(topic_prefix: str) -> str:
    """Debezium's transaction metadata topic (`provide.transaction.metadata`)."""
    return f"{topic_prefix}.transaction"


def commit_of(value: bytes | None) -> tuple[int, int] | None:
    """(txId, commitLsn) of a PostgreSQL transaction topic END record; None for anything else.

    >>> commit_of(b'{"status": "END", "id": "738:26423488", "event_count": 1}')
    (738, 26423488)
    >>> commit_of(b'{"payload": {"status": "BEGIN", "id": "739:26423536"}}') is None
    True
    """
    if value is None:
        return None
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    payload = data.get("payload", data) if isinstance(data, dict) else None
    if not isinstance(payload, dict) or payload.get("status") != "END":
        return None
    txid, sep, lsn = str(payload.get("id", "")).partition(":")
    if not sep or not txid.isdigit() or not lsn.isdigit():
        raise PositionError(f"transaction END id {payload.get('id')!r} is not txId:lsn (a PostgreSQL connector?)")
    return int(txid), int(lsn)


def read_commits(
    bootstrap_servers: Kafka, topic: str, since_ms: int | None, timeout: float = 30
) -> list[tuple[int, int]]:
    """Every END record of `topic` (single partition, as Debezium creates it) from the first
    record at or after `since_ms` (None: the beginning) to the end offset read at the start."""
    consumer = client.reader(bootstrap_servers, "cut")
    try:
        return list(_commits(consumer, topic, since_ms, timeout))
    finally:
        consumer.close()


def _commits(consumer: Consumer, topic: str, since_ms: int | None, timeout: float) -> Iterator[tuple[int, int]]:
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
    except Exception as exc:  # KafkaException: unknown topic, broker down
        raise CdcError(f"cannot read {topic}: {exc}") from None
    start = OFFSET_BEGINNING
    if since_ms is not None:
        found = consumer.offsets_for_times([TopicPartition(topic, 0, since_ms)], timeout=timeout)[0].offset
        start = found if found >= 0 else high
    if high <= low or (start != OFFSET_BEGINNING and start >= high):
        return
    reader = PartitionReader(consumer, {(topic, 0): start}, stops={(topic, 0): high}, timeout=timeout, what=topic)
    for msg in reader:
        commit = commit_of(msg.value())
        if commit is not None:
            yield commit


# Kafka timestamps of transaction records are Connect's clock; transactions committed this long
# before the batch started are read again so that clock skew cannot hide the start of the cut.
LOOKBACK_MS = 300_000


def find_cut(
    bootstrap_servers: Kafka, topic_prefix: str, snapshot: PgSnapshot, started_ms: int, passed_lsn: int | None
) -> StreamCut:
    """`stream_cut` over the connector's transaction topic, read from `LOOKBACK_MS` before the
    batch started; from the beginning when nothing was committed since then or the first
    transaction read there is not visible."""
    topic = transaction_topic(topic_prefix)
    commits = lookback_commits(
        snapshot, started_ms - LOOKBACK_MS, lambda since_ms: read_commits(bootstrap_servers, topic, since_ms)
    )
    return stream_cut(snapshot, commits, passed_lsn)


def lookback_commits(
    snapshot: PgSnapshot, since_ms: int, read: Callable[[int | None], list[tuple[int, int]]]
) -> list[tuple[int, int]]:
    """`read(since_ms)`, or `read(None)` (the whole topic) unless that starts with a visible
    transaction: an empty window (a quiet source) says nothing about where the cut is, and an
    invisible first transaction means visible ones may precede the window."""
    commits = read(since_ms)
    if not commits or not snapshot.visible_txid(commits[0][0]):
        commits = read(None)
    return commits
