"""Append-only changelog sinks: one Parquet segment per output per committed transaction.

Segments follow the changelog contract of `comparators.sources` (key columns,
value columns, `__op`, `__pos_*`, `__gtid`, `__source_ts_ms`, `__processed_at`,
`__pos_order`). A segment is written to a temporary name and renamed, so a
reader never sees half a file; it is written before the Kafka transaction
commits, so the changelog is never behind the committed offsets. Rows of a
transaction that then aborts are replayed identically (same key and position),
and the as-of view keeps one version per key and position.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from migrate.pipeline import KEYS, SCHEMAS
from migrate.stream.transform import OutputChange

META = pa.schema(
    [
        ("__op", pa.string()),
        ("__pos_file", pa.string()),
        ("__pos_offset", pa.int64()),
        ("__gtid", pa.string()),
        ("__lsn", pa.string()),
        ("__source_ts_ms", pa.int64()),
        ("__processed_at", pa.timestamp("us")),
        ("__pos_order", pa.int64()),
    ]
)
COMPACT_ABOVE = 64  # per-transaction segments per output before they are merged into one
MERGE_FANIN = 16  # merged files of one level before they are merged into the next


def changelog_schema(output: str) -> pa.Schema:
    return pa.schema(list(SCHEMAS[output]) + list(META))


def output_glob(root: Path, output: str) -> str:
    return str(root / output / "*.parquet")


class ChangelogWriter:
    """Buffers output changes and writes them as Parquet segments on flush."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pending: defaultdict[str, list[OutputChange]] = defaultdict(list)
        for output in SCHEMAS:
            (root / output).mkdir(parents=True, exist_ok=True)

    def add(self, changes: list[OutputChange]) -> None:
        for change in changes:
            self.pending[change.output].append(change)

    def __len__(self) -> int:
        return sum(len(v) for v in self.pending.values())

    def flush(self) -> int:
        """Write every pending output as one segment; returns rows written."""
        written = 0
        now = datetime.now(UTC).replace(tzinfo=None)
        for output, changes in self.pending.items():
            if not changes:
                continue
            table = _to_arrow(output, changes, now)
            stamp = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
            final = self.root / output / f"seg-{stamp}.parquet"
            tmp = final.with_suffix(".tmp")
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, final)
            written += table.num_rows
        self.pending.clear()
        return written

    def compact(self, output: str) -> bool:
        """Merge segments level by level, so each row is rewritten only a few times.

        Level 0 are the per-transaction segments; COMPACT_ABOVE of them become one level-1
        file (suffix `-m`), MERGE_FANIN level-1 files one level-2 file (`-mm`), and so on.
        """
        merged = False
        level = 0
        while True:
            suffix = "-" + "m" * level if level else ""
            files = sorted(p for p in (self.root / output).glob("seg-*.parquet") if _level(p) == level)
            limit = COMPACT_ABOVE if level == 0 else MERGE_FANIN
            if len(files) <= limit:
                return merged
            # Keep the newest level-0 segment out: it may be read while being renamed.
            batch = files[:-1] if level == 0 else files
            self._merge(
                batch, batch[0].with_name(batch[0].stem.removesuffix(suffix) + "-" + "m" * (level + 1) + ".parquet")
            )
            merged = True
            level += 1

    @staticmethod
    def _merge(files: list[Path], target: Path) -> None:
        tmp = target.with_suffix(".tmp")
        with duckdb.connect() as con:
            con.execute("SET threads = 1")  # compaction must not starve the job's own work
            con.execute("COPY (SELECT * FROM read_parquet(?)) TO '" + str(tmp).replace("'", "''")
                        + "' (FORMAT parquet, COMPRESSION zstd)", [[str(p) for p in files]])  # fmt: skip
        # A reader may briefly see the merged file beside the old ones: duplicates of the same
        # key and position, which the as-of view collapses; never a gap.
        os.replace(tmp, target)
        for path in files:
            if path != target:
                path.unlink(missing_ok=True)


def _level(path: Path) -> int:
    stem = path.stem
    tail = stem.rsplit("-", 1)[-1]
    return len(tail) if tail and set(tail) == {"m"} else 0


def _to_arrow(output: str, changes: list[OutputChange], processed_at: datetime) -> pa.Table:
    schema = changelog_schema(output)
    keys = KEYS[output]
    values = [n for n in SCHEMAS[output].names if n not in keys]
    columns: dict[str, list[object]] = {name: [] for name in schema.names}
    for index, change in enumerate(changes):
        for name, part in zip(keys, change.key, strict=True):
            columns[name].append(part)
        row = change.values or {}
        for name in values:
            columns[name].append(row.get(name))
        p = change.position
        columns["__op"].append("d" if change.values is None else "u")
        columns["__pos_file"].append(p.file)
        columns["__pos_offset"].append(p.minor if p.kind == "binlog" else None)
        columns["__gtid"].append(p.gtid)
        columns["__lsn"].append(None)
        columns["__source_ts_ms"].append(change.source_ts_ms)
        # One microsecond apart: ties on (key, position) resolve in processing order.
        columns["__processed_at"].append(processed_at + timedelta(microseconds=index))
        columns["__pos_order"].append(change.pos_order)
    return pa.table({n: pa.array(columns[n], type=schema.field(n).type) for n in schema.names}, schema=schema)
