"""Source positions: where in the database's history a change (or a snapshot) sits.

Positions order by the source's own commit order, never by text:
`mysql-bin.000010` comes after `mysql-bin.000009`, LSN `1/0` after `0/FFFFFFFF`.

MariaDB/MySQL order by (binlog file sequence, byte offset, row in event). A
batch snapshot taken at SHOW MASTER STATUS offset P covers every change whose
event starts before P; a Debezium snapshot ('r') row is stamped with P itself.
GTIDs travel with the position as evidence; file/offset decide the order, since
a snapshot row has no GTID. PostgreSQL orders by (commit LSN, change LSN).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import orjson

from cdc.errors import PositionError

# The changelog's integer order is (file sequence << 40) + offset: it fits a signed BIGINT,
# and comparators.positions.binlog_order computes the same (a test keeps them equal).
OFFSET_BITS = 40
MAX_FILE_SEQ = (1 << 23) - 1
ROW_MAX = (1 << 31) - 1
MAX_LSN = (1 << 64) - 1  # a change LSN after every other: a cut's target sorts after its last transaction
_BINLOG_FILE = re.compile(r"^(?P<base>.+)\.(?P<seq>\d+)$")
_LSN = re.compile(r"^(?P<hi>[0-9A-Fa-f]{1,8})/(?P<lo>[0-9A-Fa-f]{1,8})$")
_GTID = re.compile(r"^(?P<domain>\d+)-(?P<server>\d+)-(?P<seq>\d+)$")


@lru_cache(maxsize=1024)  # every event names one of a handful of files
def binlog_sequence(file: str) -> int:
    """`mysql-bin.000042` -> 42."""
    match = _BINLOG_FILE.match(file)
    if match is None:
        raise PositionError(f"binlog file name {file!r} does not end in .<number>")
    return int(match["seq"])


def binlog_order_value(file: str, pos: int) -> int:
    """`Position.binlog(file, pos).order_value` without building the Position (readers of many
    records that need only the order).

    >>> binlog_order_value("mysql-bin.000003", 1234) == Position.binlog("mysql-bin.000003", 1234).order_value
    True
    """
    seq = binlog_sequence(file)
    if pos < 0 or pos >= 1 << OFFSET_BITS or seq > MAX_FILE_SEQ:
        raise PositionError(f"binlog position {file}:{pos} is beyond the orderable range")
    return (seq << OFFSET_BITS) | pos


def parse_lsn(text: str | int) -> int:
    """PostgreSQL LSN `16/B374D848` (or an integer) -> its 64-bit value."""
    if isinstance(text, int):
        return text
    match = _LSN.match(text.strip())
    if match is None:
        raise PositionError(f"{text!r} is not a PostgreSQL LSN like 16/B374D848")
    return (int(match["hi"], 16) << 32) | int(match["lo"], 16)


def format_lsn(value: int) -> str:
    """The one form every LSN is shown in: PostgreSQL's own `%X/%08X` (as `pg_current_wal_lsn()`
    prints it since PostgreSQL 18; older servers leave out the low half's leading zeros, which
    `parse_lsn` reads alike).

    >>> format_lsn(parse_lsn("0/16B3748")), format_lsn(parse_lsn("16/B374D848")), format_lsn(0)
    ('0/016B3748', '16/B374D848', '0/00000000')
    """
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:08X}"


def parse_gtid_set(text: str) -> dict[int, int]:
    """MariaDB `@@gtid_binlog_pos` like `0-1-42,1-2-7` -> {domain: highest seq}."""
    result: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _GTID.match(part)
        if match is None:
            raise PositionError(f"{part!r} is not a MariaDB GTID like 0-1-42")
        result[int(match["domain"])] = max(result.get(int(match["domain"]), 0), int(match["seq"]))
    return result


@dataclass(frozen=True)
class Position:
    """A comparable source position. `kind` is 'binlog' (MariaDB/MySQL) or 'lsn' (PostgreSQL)."""

    kind: str
    major: int  # binlog file sequence, or commit LSN
    minor: int  # byte offset in the binlog file, or change LSN
    row: int = 0
    file: str | None = None
    gtid: str | None = None
    # One BIGINT that orders events across transactions; changelogs store it as __pos_order.
    # Rows of one event share it (their order is the changelog's processing order). Computed
    # once: the streaming job reads it several times per event.
    order_value: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order_value", _order_value(self.kind, self.major, self.minor))

    @classmethod
    def binlog(cls, file: str, pos: int, row: int = 0, gtid: str | None = None) -> Position:
        seq = binlog_sequence(file)
        if pos < 0 or pos >= 1 << OFFSET_BITS or seq > MAX_FILE_SEQ:
            raise PositionError(f"binlog position {file}:{pos} is beyond the orderable range")
        return cls._make("binlog", seq, int(pos), min(int(row), ROW_MAX), file, gtid)

    @classmethod
    def _make(cls, kind: str, major: int, minor: int, row: int, file: str | None, gtid: str | None) -> Position:
        """Validated values straight into the instance: one per change event, so the frozen
        dataclass's field-by-field __init__ (and __post_init__) is skipped."""
        self = object.__new__(cls)
        order = _order_value(kind, major, minor)
        self.__dict__.update(kind=kind, major=major, minor=minor, row=row, file=file, gtid=gtid, order_value=order)
        return self

    @classmethod
    def binlog_snapshot(cls, file: str, pos: int, gtid: str | None = None) -> Position:
        """A consistent snapshot at SHOW MASTER STATUS (file, pos): covers every row at pos."""
        return cls.binlog(file, pos, ROW_MAX, gtid)

    @classmethod
    def lsn(cls, commit_lsn: str | int, lsn: str | int | None = None) -> Position:
        commit = parse_lsn(commit_lsn)
        return cls("lsn", commit, parse_lsn(lsn) if lsn is not None else commit)

    @classmethod
    def lsn_cut(cls, bound: int) -> Position:
        """The target of a PostgreSQL stream cut (`cdc.visibility.StreamCut.bound`) for whole-position
        comparisons: after every change whose previous commit LSN is `bound` (the last visible
        transaction's), before every change of a later transaction; its order value is `bound`."""
        return cls.lsn(bound, MAX_LSN)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Position:
        """The inverse of `to_dict` (the job's status and progress keep positions that way)."""
        if data.get("kind") == "lsn":
            return cls.lsn(data["commit_lsn"], data["lsn"])
        return cls.binlog(data["file"], int(data["pos"]), int(data.get("row") or 0), data.get("gtid"))

    @classmethod
    def from_source(cls, source: dict[str, Any]) -> Position:
        """The position of a Debezium `source` block (MariaDB, MySQL or PostgreSQL)."""
        file, pos = source.get("file"), source.get("pos")
        if file is not None and pos is not None:
            return cls.binlog(str(file), int(pos), int(source.get("row") or 0), source.get("gtid"))
        if source.get("lsn") is not None:
            return cls.lsn(*_pg_sequence(source))
        raise PositionError(f"source block has neither file/pos nor lsn: keys {sorted(source)}")

    @cached_property  # hot in the streaming job; a frozen instance can still cache in __dict__
    def sort_key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.row)

    def _check(self, other: object) -> Position:
        if not isinstance(other, Position):
            return NotImplemented
        if other.kind != self.kind:
            raise PositionError(f"cannot order a {self.kind} position against a {other.kind} position")
        return other

    def __lt__(self, other: object) -> bool:
        return self.sort_key < self._check(other).sort_key

    def __le__(self, other: object) -> bool:
        return self.sort_key <= self._check(other).sort_key

    def __gt__(self, other: object) -> bool:
        return self.sort_key > self._check(other).sort_key

    def __ge__(self, other: object) -> bool:
        return self.sort_key >= self._check(other).sort_key

    def __str__(self) -> str:
        if self.kind == "lsn":
            return f"lsn {format_lsn(self.major)}" + (
                f" ({format_lsn(self.minor)})" if self.minor != self.major else ""
            )
        gtid = f" gtid {self.gtid}" if self.gtid else ""
        return f"{self.file}:{self.minor}" + (f"#{self.row}" if self.row not in (0, ROW_MAX) else "") + gtid

    def to_dict(self) -> dict[str, Any]:
        base: dict[str, Any] = {"kind": self.kind, "order": str(self.order_value)}
        if self.kind == "lsn":
            return {**base, "commit_lsn": format_lsn(self.major), "lsn": format_lsn(self.minor)}
        return {**base, "file": self.file, "pos": self.minor, "row": self.row, "gtid": self.gtid}


def _order_value(kind: str, major: int, minor: int) -> int:
    return major if kind == "lsn" else (major << OFFSET_BITS) | minor


def _pg_sequence(source: dict[str, Any]) -> tuple[int, int]:
    """(previous commit LSN, change LSN) of a PostgreSQL event: its order in the stream.

    pgoutput sends whole transactions in commit order, but the changes of interleaved
    transactions have LSNs that go backwards; Debezium's `sequence` pairs each change with the
    commit LSN of the last transaction before it, which only grows. Null counts as 0 for snapshot
    reads and 1 for the first transaction a fresh connector streams: the snapshot is the state
    before every streamed transaction (checked on Debezium 3.5: both carry `[null, lsn]`, and the
    example transform skips a change not past what it applied to the row).
    """
    lsn = int(source["lsn"])
    raw = source.get("sequence")
    if raw:
        try:
            last_commit, _ = orjson.loads(raw) if isinstance(raw, str) else raw
            if last_commit is None:
                return (0 if str(source.get("snapshot", "false")).lower() not in ("false", "") else 1), lsn
            return int(last_commit), lsn
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise PositionError(f"PostgreSQL source sequence {raw!r} is not [lastCommitLsn, lsn]") from exc
    return lsn, lsn
