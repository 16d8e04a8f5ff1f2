"""A changelog read as of a source position.

Changelog contract (what the streaming job writes, one table per output)
-----------------------------------------------------------------------
Append-only; one row per change of one output key:

    <key columns>         the output's key, same names and types as the batch output
    <value columns>       the output's values after the change
    __op          VARCHAR 'c' create, 'u' update, 'd' delete, 'r' snapshot read
    __pos_file    VARCHAR binlog file of the change (MariaDB/MySQL), e.g. mysql-bin.000003
    __pos_offset  BIGINT  binlog offset of the change
    __gtid        VARCHAR MariaDB GTID `domain-server-seq` of the change, NULL if none
    __lsn         VARCHAR PostgreSQL LSN `HI/LO` (hex) or its decimal value, NULL if none
    __source_ts_ms BIGINT source commit time (Debezium `source.ts_ms`)
    __processed_at TIMESTAMP when the streaming job wrote the row
    __pos_order   BIGINT  optional, recommended: `comparators.positions.binlog_order(file,
                  offset)` for MariaDB/MySQL, `comparators.positions.lsn_order(lsn)` for
                  PostgreSQL. When present it orders versions and filters binlog/LSN/
                  integer positions; it must agree with the columns above.

Every other column whose name starts with `__` is metadata and is dropped from
the as-of view. The view holds, per key, the version with the greatest position
at or before P (ties broken by `__processed_at`), and drops keys whose latest op
is 'd'. "At or before P" is decided in P's own order:

* GTID set `0-1-42,1-2-7`: the row's `__gtid` is in a listed domain with a
  sequence number <= that domain's; other domains are after P. Within a key,
  versions are ordered by `__pos_order`, else binlog file/offset, else GTID seq.
* binlog `file:offset`: (file sequence number, offset) <= P's, numerically.
* LSN `HI/LO`: the 64-bit value <= P's.
* integer: `__pos_order` <= P.

Snapshot rows (`__op` = 'r') whose position columns are NULL count as before
every position: Debezium's initial snapshot precedes the changes it streams.
Idempotent redelivery (same key, same position) is harmless: one version wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from comparators.errors import PositionError, SourceError
from comparators.positions import (
    BINLOG_FILE_STRIDE,
    BinlogPosition,
    GtidSet,
    Lsn,
    Position,
    PosOrder,
    parse_position,
)
from comparators.source import Source
from comparators.sql import describe, ident, idents

META_PREFIX = "__"
# The contract's metadata columns, in the order above.
CHANGELOG_META = (
    "__op", "__pos_file", "__pos_offset", "__gtid", "__lsn", "__source_ts_ms", "__processed_at", "__pos_order",
)  # fmt: skip

# SQL over the contract's columns; the column names are fixed, so no user text enters here.
_FILE_SEQ = """TRY_CAST(regexp_extract("__pos_file", '\\.([0-9]+)$', 1) AS HUGEINT)"""
_BINLOG = f"""({_FILE_SEQ} * {BINLOG_FILE_STRIDE} + "__pos_offset")"""
_LSN = (
    """(CASE WHEN contains("__lsn", '/') THEN"""
    """ TRY_CAST('0x' || split_part("__lsn", '/', 1) AS UBIGINT)::HUGEINT * 4294967296"""
    """ + TRY_CAST('0x' || split_part("__lsn", '/', 2) AS UBIGINT)"""
    """ ELSE TRY_CAST("__lsn" AS HUGEINT) END)"""
)
_GTID_DOMAIN = """TRY_CAST(split_part("__gtid", '-', 1) AS UBIGINT)"""
_GTID_SEQ = """TRY_CAST(split_part("__gtid", '-', 3) AS UBIGINT)"""
_SNAPSHOT = """"__op" = 'r'"""


@dataclass(frozen=True)
class ChangelogSource:
    """The latest version per key at or before `position`, deletes removed.

    `position` None means the latest version overall (no alignment possible).
    """

    log: Source
    position: Position | str | int | None

    @property
    def label(self) -> str:
        at = f" as of {self.parsed}" if self.parsed is not None else " (latest)"
        return f"changelog {self.log.label}{at}"

    @property
    def parsed(self) -> Position | None:
        if self.position is None or isinstance(self.position, GtidSet | BinlogPosition | Lsn | PosOrder):
            return self.position
        return parse_position(self.position)

    def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[str]) -> None:
        log = f"{name}__log"
        self.log.register(con, log, keys)
        columns = [c for c, _ in describe(con, log)]
        has = set(columns)
        missing = [k for k in keys if k not in has]
        if "__op" not in has or missing:
            what = "an __op column" if "__op" not in has else f"key column(s) {missing}"
            raise SourceError(
                f"changelog {self.log.label} lacks {what}; see the changelog contract in comparators.changelog"
            )
        where, order = self._filter_and_order(has)
        values = [c for c in columns if not c.startswith(META_PREFIX)]
        # QUALIFY filters after the window, so a delete hides the key rather than
        # exposing the version before it.
        con.execute(
            f"CREATE TEMP VIEW {ident(name)} AS SELECT {idents(values)} FROM ("
            f"SELECT * FROM {ident(log)} WHERE {where} "
            f"QUALIFY row_number() OVER (PARTITION BY {idents(keys)} ORDER BY {order}) = 1"
            f""") WHERE "__op" <> 'd'"""
        )

    def _filter_and_order(self, has: set[str]) -> tuple[str, str]:
        pos = self.parsed
        tiebreak = '"__processed_at" DESC NULLS LAST' if "__processed_at" in has else ""
        keys: list[str] = []
        if "__pos_order" in has:
            keys.append('"__pos_order" DESC NULLS LAST')
        if {"__pos_file", "__pos_offset"} <= has:
            keys.append(f"{_BINLOG} DESC NULLS LAST")
        if "__lsn" in has:
            keys.append(f"{_LSN} DESC NULLS LAST")
        if "__gtid" in has:
            keys.append(f"{_GTID_SEQ} DESC NULLS LAST")
        if not keys:
            raise SourceError(
                "changelog has no position column (__pos_order, __pos_file/__pos_offset, "
                "__lsn or __gtid); see the changelog contract in comparators.changelog"
            )
        order = ", ".join(keys + ([tiebreak] if tiebreak else []))
        if pos is None:
            return "TRUE", order
        if isinstance(pos, GtidSet):
            self._need(has, "__gtid", pos)
            cases = " ".join(f"WHEN {int(d)} THEN {_GTID_SEQ} <= {int(s)}" for d, s in pos.seq_by_domain().items())
            at = f"(CASE {_GTID_DOMAIN} {cases} ELSE FALSE END)"
            return self._with_snapshot(at, '"__gtid"'), order
        bound = int(pos.order)
        if "__pos_order" in has:
            return self._with_snapshot(f'"__pos_order" <= {bound}', '"__pos_order"'), order
        if isinstance(pos, BinlogPosition):
            self._need(has, "__pos_file", pos)
            return self._with_snapshot(f"{_BINLOG} <= {bound}", '"__pos_file"'), order
        if isinstance(pos, Lsn):
            self._need(has, "__lsn", pos)
            return self._with_snapshot(f"{_LSN} <= {bound}", '"__lsn"'), order
        raise PositionError(f"position {pos} is a plain __pos_order value but the changelog has no __pos_order")

    @staticmethod
    def _with_snapshot(at: str, column: str) -> str:
        return f"(COALESCE({at}, FALSE) OR ({column} IS NULL AND {_SNAPSHOT}))"

    @staticmethod
    def _need(has: set[str], column: str, pos: Position) -> None:
        if column not in has:
            raise PositionError(
                f"position {pos} needs the changelog column {column}, which is missing; "
                "see the changelog contract in comparators.changelog"
            )
