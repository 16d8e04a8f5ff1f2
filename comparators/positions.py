"""Source positions and their true order.

Positions arrive as text in three forms, and none of them sorts correctly as a
string (`mysql-bin.000010` < `mysql-bin.000009` once the counter widens, `9/0` >
`10/0`, `0-1-100` < `0-1-99`):

* MariaDB GTID `domain-server-seq` (`0-1-42`); a `gtid_binlog_pos` lists one GTID
  per replication domain, comma-separated (`0-1-42,1-2-7`). Sequence numbers are
  ordered within a domain only, so a GTID set is a vector, not a number.
* Binlog file and offset (`mysql-bin.000003:1234`, or the pair). Ordered by the
  file's sequence number, then the offset.
* PostgreSQL LSN `16/B374D848`: two hex halves of one 64-bit number.

`order` turns binlog and LSN positions into one integer that sorts truly; it is
what the streaming job writes as `__pos_order` (see `comparators.changelog`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cdc.position import format_lsn
from comparators.errors import PositionError

_GTID = re.compile(r"^\s*(\d+)-(\d+)-(\d+)\s*$")
_BINLOG = re.compile(r"^\s*(?P<file>[^:\s]*\.(?P<seq>\d+))\s*:\s*(?P<offset>\d+)\s*$")
_LSN = re.compile(r"^\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*$")
_ORDER = re.compile(r"^\s*\d+\s*$")

# A binlog offset is a byte offset in one file (max_binlog_size is at most 1 GiB, one huge
# transaction may overshoot it); 2**40 bytes per file leaves the sequence number 23 bits,
# so the order fits a signed BIGINT that Parquet, Arrow and every SQL sink can store.
BINLOG_FILE_STRIDE = 2**40
MAX_FILE_SEQ = 2**23 - 1


@dataclass(frozen=True)
class Gtid:
    """One MariaDB GTID.

    >>> Gtid.parse("0-1-42")
    Gtid(domain=0, server=1, seq=42)
    """

    domain: int
    server: int
    seq: int

    @classmethod
    def parse(cls, text: str) -> Gtid:
        m = _GTID.match(text)
        if not m:
            raise PositionError(f"not a MariaDB GTID: {text!r}; expected domain-server-seq such as 0-1-42")
        return cls(int(m[1]), int(m[2]), int(m[3]))

    def __str__(self) -> str:
        return f"{self.domain}-{self.server}-{self.seq}"


@dataclass(frozen=True)
class GtidSet:
    """A `gtid_binlog_pos`: the last GTID applied in each replication domain.

    >>> s = GtidSet.parse("0-1-42,1-2-7")
    >>> s.covers(Gtid.parse("0-1-41")), s.covers(Gtid.parse("1-2-8")), s.covers(Gtid.parse("2-1-1"))
    (True, False, False)
    """

    gtids: tuple[Gtid, ...]

    @classmethod
    def parse(cls, text: str) -> GtidSet:
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise PositionError("empty GTID position; expected e.g. 0-1-42 or 0-1-42,1-2-7")
        gtids = tuple(sorted((Gtid.parse(p) for p in parts), key=lambda g: g.domain))
        domains = [g.domain for g in gtids]
        if len(set(domains)) != len(domains):
            raise PositionError(f"GTID position {text!r} lists a domain twice")
        return cls(gtids)

    def seq_by_domain(self) -> dict[int, int]:
        return {g.domain: g.seq for g in self.gtids}

    def covers(self, gtid: Gtid) -> bool:
        """True when `gtid` was applied at or before this position."""
        seq = self.seq_by_domain().get(gtid.domain)
        return seq is not None and gtid.seq <= seq

    def __str__(self) -> str:
        return ",".join(str(g) for g in self.gtids)


@dataclass(frozen=True)
class BinlogPosition:
    """A binlog file and byte offset.

    >>> later, earlier = BinlogPosition("bin.000010", 4), BinlogPosition("bin.000009", 99999)
    >>> later.order > earlier.order
    True
    """

    file: str
    offset: int

    @classmethod
    def parse(cls, text: str) -> BinlogPosition:
        m = _BINLOG.match(text)
        if not m:
            raise PositionError(f"not a binlog position: {text!r}; expected FILE:OFFSET such as mysql-bin.000003:1234")
        return cls(m["file"], int(m["offset"]))

    @property
    def order(self) -> int:
        return binlog_order(self.file, self.offset)

    def __str__(self) -> str:
        return f"{self.file}:{self.offset}"


@dataclass(frozen=True)
class Lsn:
    """A PostgreSQL log sequence number.

    >>> Lsn.parse("16/B374D848").order == 0x16 * 2**32 + 0xB374D848
    True
    """

    value: int

    @classmethod
    def parse(cls, text: str) -> Lsn:
        m = _LSN.match(text)
        if not m:
            raise PositionError(f"not a PostgreSQL LSN: {text!r}; expected HI/LO hex such as 16/B374D848")
        return cls(int(m[1], 16) * 2**32 + int(m[2], 16))

    @property
    def order(self) -> int:
        return self.value

    def __str__(self) -> str:
        return format_lsn(self.value)


@dataclass(frozen=True)
class PosOrder:
    """An already computed `__pos_order` value.

    >>> PosOrder.parse("123").order
    123
    """

    value: int
    # How people know the position (a PostgreSQL cut: its LSN, `lsn 0/016B3748`); else the number.
    shown: str | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, text: str) -> PosOrder:
        if not _ORDER.match(text):
            raise PositionError(f"not a position order: {text!r}; expected a non-negative integer")
        return cls(int(text))

    @property
    def order(self) -> int:
        return self.value

    def __str__(self) -> str:
        return self.shown if self.shown is not None else str(self.value)


Position = GtidSet | BinlogPosition | Lsn | PosOrder


def binlog_order(file: str, offset: int) -> int:
    """The sortable integer of a binlog position: file sequence number, then offset.

    >>> binlog_order("mysql-bin.000003", 1234) == 3 * 2**40 + 1234
    True
    """
    m = re.search(r"\.(\d+)$", file)
    if m and (int(m[1]) > MAX_FILE_SEQ or offset >= BINLOG_FILE_STRIDE):
        raise PositionError(f"binlog position {file}:{offset} is beyond the orderable range")
    if not m or offset < 0:
        raise PositionError(
            f"binlog position {file}:{offset} has no file sequence number; "
            "expected a file such as mysql-bin.000003 and a non-negative offset"
        )
    return int(m[1]) * BINLOG_FILE_STRIDE + offset


def lsn_order(lsn: str) -> int:
    """The sortable integer of a PostgreSQL LSN (also accepts the plain decimal form)."""
    if _ORDER.match(lsn):
        return int(lsn)
    return Lsn.parse(lsn).value


def parse_position(text: str | int) -> Position:
    """Recognise a position's form.

    >>> [type(parse_position(t)).__name__ for t in ("0-1-42,1-1-3", "bin.000002:4", "0/16B3748", 7)]
    ['GtidSet', 'BinlogPosition', 'Lsn', 'PosOrder']
    """
    if isinstance(text, int):
        return PosOrder(text)
    if _ORDER.match(text):
        return PosOrder.parse(text)
    if _LSN.match(text):
        return Lsn.parse(text)
    if _BINLOG.match(text):
        return BinlogPosition.parse(text)
    if all(_GTID.match(p) for p in text.split(",") if p.strip()) and text.strip():
        return GtidSet.parse(text)
    raise PositionError(
        f"unrecognised source position {text!r}; expected a MariaDB GTID (0-1-42[,1-2-7]), "
        "a binlog FILE:OFFSET (mysql-bin.000003:1234), a PostgreSQL LSN (16/B374D848) "
        "or a __pos_order integer"
    )
