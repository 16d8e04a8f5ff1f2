"""What a changelog's positions show, with evidence: records without a position, and keys whose
positions go backwards in Kafka offset order (design-byo §2.3 H1), with the keys reordered around
a batch position P reported apart. Read from the tap's segments (`migrate.stream.tap`) or from
dualrun's own job's changelog files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import duckdb
import orjson
import pyarrow as pa

from comparators.sql import idents
from migrate.stream.rows import as_text
from migrate.stream.tap import SAMPLES, STATE, TapLog, segment_files


@dataclass(frozen=True)
class KeyEvidence:
    """One key's records that show a finding: Kafka partition, offsets and positions in offset order."""

    key: dict[str, Any]
    partition: int
    offsets: tuple[int, ...]
    positions: tuple[int | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": {k: as_text(v) if v is not None else None for k, v in self.key.items()},
            "partition": self.partition, "offsets": list(self.offsets),
            "positions": [None if p is None else str(p) for p in self.positions],
        }  # fmt: skip


@dataclass(frozen=True)
class TapReport:
    """What the tap's changelog of one output shows about its positions, with evidence.

    - `without_position`: records that carry no position header: they cannot be placed before
      or after the batch position, so the output cannot be compared as of it.
    - `reordered_keys`: keys whose positions go backwards in offset order somewhere (H1); equal
      positions (Debezium's snapshot events share one) are ties, ordered by offset, not reordering.
    - `reordered_around`: of those, the keys where a record after the first one past `position`
      has a position at or before it: their as-of version is unknown (in flight, re-checked on the
      next run). Decreases wholly before or after the position leave a key comparable.
    - `undecodable`: records that could not be read (no key, not JSON), never silently dropped.
    """

    output: str
    records: int
    without_position: int
    without_position_samples: tuple[KeyEvidence, ...]
    reordered_keys: int
    reordered_samples: tuple[KeyEvidence, ...]
    position: int | None
    reordered_around: int
    reordered_around_samples: tuple[KeyEvidence, ...]
    undecodable: int
    undecodable_samples: tuple[dict[str, Any], ...]

    @property
    def has_positions(self) -> bool:
        return self.without_position == 0

    @property
    def monotone(self) -> bool:
        return self.reordered_keys == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output, "records": self.records,
            "without_position": self.without_position,
            "without_position_samples": [e.to_dict() for e in self.without_position_samples],
            "reordered_keys": self.reordered_keys,
            "reordered_samples": [e.to_dict() for e in self.reordered_samples],
            "position": None if self.position is None else str(self.position),
            "reordered_around": self.reordered_around,
            "reordered_around_samples": [e.to_dict() for e in self.reordered_around_samples],
            "undecodable": self.undecodable, "undecodable_samples": list(self.undecodable_samples),
        }  # fmt: skip


def _open(con: duckdb.DuckDBPyConnection, files: Sequence[str], keys: Sequence[str]) -> None:
    """Views `log` (every record) and `versions` (positioned records with the previous position
    of the same key on the same Kafka partition, in offset order). A changelog without Kafka
    columns (dualrun's own job writes it directly) is one partition in `__processed_at` order."""
    TapLog(tuple(files)).register(con, "raw", keys)
    has = {str(row[0]) for row in con.execute("DESCRIBE raw").fetchall()}
    if {"__kafka_partition", "__kafka_offset"} <= has:
        con.execute("CREATE TEMP VIEW log AS SELECT * FROM raw")
    else:
        con.execute(
            'CREATE TEMP VIEW log AS SELECT *, 0 AS "__kafka_partition", '
            'row_number() OVER (ORDER BY "__processed_at") - 1 AS "__kafka_offset" FROM raw'
        )
    k = idents(keys)
    con.execute(
        f"""CREATE TEMP VIEW versions AS SELECT {k}, "__kafka_partition" AS p, "__kafka_offset" AS o,
            "__pos_order" AS pos, lag("__pos_order") OVER w AS prev FROM log WHERE "__pos_order" IS NOT NULL
            WINDOW w AS (PARTITION BY {k}, "__kafka_partition" ORDER BY "__kafka_offset")"""
    )


def _around_sql(keys: Sequence[str], position: int) -> str:
    """Keys with a version at or before `position` after the first version past it (H1)."""
    k = idents(keys)
    first_past = f"SELECT {k}, p, min(o) AS o_star FROM versions WHERE pos > {int(position)} GROUP BY ALL"
    return (
        f"SELECT DISTINCT {k} FROM versions JOIN ({first_past}) f USING ({k}, p) "
        f"WHERE o > f.o_star AND pos <= {int(position)}"
    )


def tap_report(root: Path, keys: Sequence[str], position: int | None = None, *, output: str | None = None) -> TapReport:
    """Findings over every segment of `root` (`position`: the batch position's order value)."""
    state = orjson.loads((root / STATE).read_bytes()) if (root / STATE).exists() else {}
    files = [str(p) for p in segment_files(root)]
    samples = tuple(state.get("undecodable_samples", []))
    return changelog_report(files, keys, position, output or root.name, int(state.get("undecodable", 0)), samples)


def changelog_report(
    files: Sequence[str],
    keys: Sequence[str],
    position: int | None,
    name: str,
    undecodable: int = 0,
    undecodable_samples: tuple[dict[str, Any], ...] = (),
) -> TapReport:
    """The same findings over any changelog files (the tap's, or dualrun's own job's)."""
    if not files:
        return TapReport(name, 0, 0, (), 0, (), position, 0, (), undecodable, undecodable_samples)
    k = idents(keys)
    with duckdb.connect() as con:
        _open(con, files, keys)
        records, without = _counts(con, 'SELECT count(*), count(*) FILTER (WHERE "__pos_order" IS NULL) FROM log')
        no_pos = _evidence(con, keys, 'SELECT * FROM log WHERE "__pos_order" IS NULL')
        reordered_sql = f"SELECT DISTINCT {k}, p FROM versions WHERE pos < prev"
        (reordered,) = _counts(con, f"SELECT count(*) FROM ({reordered_sql})")
        reordered_samples = _evidence(con, keys, reordered_sql)
        around, around_samples = 0, cast(tuple[KeyEvidence, ...], ())
        if position is not None:
            (around,) = _counts(con, f"SELECT count(*) FROM ({_around_sql(keys, position)})")
            around_samples = _evidence(con, keys, _around_sql(keys, position))
    return TapReport(
        name, records, without, no_pos, reordered, reordered_samples, position,
        around, around_samples, undecodable, undecodable_samples,
    )  # fmt: skip


def reordered_keys_around(root: Path, keys: Sequence[str], position: int) -> pa.Table:
    """The keys (key columns only) reordered around `position`: in flight for this comparison."""
    files = [str(p) for p in segment_files(root)]
    if not files:
        return pa.table({})
    with duckdb.connect() as con:
        _open(con, files, keys)
        return con.sql(_around_sql(keys, position)).to_arrow_table()


def _counts(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[int, ...]:
    row = con.execute(sql).fetchone()
    return tuple(int(v or 0) for v in row) if row else (0,)


def _evidence(con: duckdb.DuckDBPyConnection, keys: Sequence[str], keyset_sql: str) -> tuple[KeyEvidence, ...]:
    """Up to SAMPLES keys of `keyset_sql` with their records (partition, offsets, positions)."""
    k = idents(keys)
    rows = con.execute(
        f"""WITH s AS (SELECT DISTINCT {k} FROM ({keyset_sql}) ORDER BY ALL LIMIT {SAMPLES})
            SELECT {k}, "__kafka_partition", list("__kafka_offset" ORDER BY "__kafka_offset"),
                   list("__pos_order" ORDER BY "__kafka_offset")
            FROM log JOIN s USING ({k}) GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    n = len(keys)
    return tuple(
        KeyEvidence(dict(zip(keys, row[:n], strict=True)), int(row[n]), tuple(row[n + 1]), tuple(row[n + 2]))
        for row in rows
    )
