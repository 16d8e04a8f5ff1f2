"""Append-only changelog sinks: one Parquet segment per output per committed transaction.

Segments follow the changelog contract of `comparators.sources` (key columns,
value columns, `__op`, `__pos_*`, `__gtid`, `__source_ts_ms`, `__processed_at`,
`__pos_order`). A segment is written to a temporary name and renamed, so a
reader never sees half a file; it is written before the Kafka transaction
commits, so the changelog is never behind the committed offsets. Rows of a
transaction that then aborts are replayed identically (same key and position),
and the as-of view keeps one version per key and position; a job that starts
again removes them first (`claim`), so at rest the changelog holds committed
work only.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from migrate.errors import ChangelogError
from migrate.pipeline.records import OutputChange

META = pa.schema(  # in the order of migrate.pipeline.records.META_COLUMNS, then __processed_at
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
EPOCH = datetime(1970, 1, 1)
MARKER = ".dualrun-group"  # which group fills this changelog, and up to which position
COMPACT_ABOVE = 64  # per-transaction segments per output before they are merged into one
MERGE_FANIN = 16  # merged files of one level before they are merged into the next


def changelog_schema(schema: pa.Schema) -> pa.Schema:
    """An output's changelog: its columns (keys first), then the changelog's own."""
    return pa.schema(list(schema) + list(META))


def output_glob(root: Path, output: str) -> str:
    return str(root / output / "*.parquet")


class ChangelogWriter:
    """Buffers output changes and writes them as Parquet segments on flush.

    `schemas` maps each output to its columns (keys first), as the pipeline declares them.
    """

    def __init__(self, root: Path, schemas: Mapping[str, pa.Schema]) -> None:
        self.root = root
        self.pending: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)  # rows per output
        self.group_id: str | None = None  # set by claim()
        self.schemas = {output: changelog_schema(schema) for output, schema in schemas.items()}
        # Column types of a row as the transform builds it (the changelog schema without __processed_at).
        self.row_types = {
            output: [f.type for f in schema if f.name != "__processed_at"] for output, schema in self.schemas.items()
        }
        for output in schemas:
            (root / output).mkdir(parents=True, exist_ok=True)

    def claim(self, group_id: str, resumed: tuple[str, int] | None) -> None:
        """Tie this changelog to the consumer group that fills it.

        A job that resumes from committed offsets (`resumed`: where, and its order value) with
        a changelog that did not see them would write only what comes after, and reconciliation
        would report everything before as missing: a false defect. That happens when the
        changelog folder was deleted, or when another state directory runs the same group (and
        so took part of the input). Refuse, and say what to do instead.
        """
        seen = self._marker()
        if seen is None and any(self.root.glob("*/*.parquet")):
            seen = -1 if resumed is None else resumed[1]  # written before the marker existed: adopt it
        if resumed is not None and (seen is None or resumed[1] > seen):
            what = "is empty" if seen is None else "stops before that"
            raise ChangelogError(
                f"consumer group {group_id!r} already committed up to {resumed[0]}, but its changelog {self.root} "
                f"{what} (deleted, or another state dir runs the same group): restore the folder, or set a new "
                f"stream.group and state_topic to rebuild from the start"
            )
        self.group_id = group_id
        if seen is not None and (resumed is None or seen > resumed[1]):
            # Flushed before a commit that never happened (a kill, a fenced producer) or before the
            # group's offsets went away: the job produces those rows again, so drop them now and
            # the changelog holds committed work only.
            self.truncate_after(-1 if resumed is None else resumed[1])
        self._mark(-1 if seen is None or resumed is None else min(seen, resumed[1]))

    def truncate_after(self, order: int) -> int:
        """Remove every row whose `__pos_order` is above `order` (rows without a position stay);
        returns rows removed. Files are rewritten to a temporary name and renamed."""
        removed = 0
        with duckdb.connect() as con:
            for path in sorted(self.root.glob("*/*.parquet")):
                name = str(path)
                above = con.execute("SELECT count(*) FROM read_parquet(?) WHERE __pos_order > ?", [name, order])
                count = int(above.fetchone()[0])  # type: ignore[index]
                if not count:
                    continue
                tmp = path.with_suffix(".tmp")
                con.execute("COPY (SELECT * FROM read_parquet(?) WHERE __pos_order IS NULL OR __pos_order <= ?) TO '"
                            + str(tmp).replace("'", "''") + "' (FORMAT parquet, COMPRESSION zstd)",
                            [name, order])  # fmt: skip
                os.replace(tmp, path)
                removed += count
        return removed

    def _marker(self) -> int | None:
        try:
            return int(orjson.loads((self.root / MARKER).read_bytes())["order"])
        except (FileNotFoundError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def _mark(self, order: int) -> None:
        tmp = self.root / (MARKER + ".tmp")
        tmp.write_bytes(orjson.dumps({"group": self.group_id, "order": order}))
        os.replace(tmp, self.root / MARKER)

    def add(self, changes: Sequence[OutputChange]) -> None:
        pending = self.pending
        for output, row in changes:
            pending[output].append(row)

    def __len__(self) -> int:
        return sum(len(v) for v in self.pending.values())

    def flush(self, upto: int | None = None) -> int:
        """Write every pending output as one segment; returns rows written.

        `upto` is the order value of the last change the job is about to commit: recorded (before
        the commit) so a later start can tell this changelog has seen everything committed."""
        written = 0
        now = datetime.now(UTC).replace(tzinfo=None)
        for output, rows in self.pending.items():
            if not rows:
                continue
            table = self._to_arrow(output, rows, now)
            stamp = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
            final = self.root / output / f"seg-{stamp}.parquet"
            tmp = final.with_suffix(".tmp")
            pq.write_table(table, tmp, compression="snappy")  # compact() merges segments into zstd files
            os.replace(tmp, final)
            written += table.num_rows
        self.pending.clear()
        if upto is not None and self.group_id is not None:
            self._mark(upto)
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

    def _to_arrow(self, output: str, rows: list[tuple[Any, ...]], processed_at: datetime) -> pa.Table:
        """One transpose in C (`zip`) turns the rows into columns: much cheaper than a Python pass
        per column (bench/stream)."""
        schema = self.schemas[output]
        columns = list(zip(*rows, strict=True))
        # One microsecond apart: ties on (key, position) resolve in processing order.
        base_us = (processed_at - EPOCH) // timedelta(microseconds=1)
        stamps = pa.array(range(base_us, base_us + len(rows)), type=pa.int64()).cast(pa.timestamp("us"))
        arrays = [_array(values, kind) for values, kind in zip(columns, self.row_types[output], strict=True)]
        arrays.insert(schema.get_field_index("__processed_at"), stamps)
        return pa.Table.from_arrays(arrays, schema=schema)

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


def _array(values: Any, kind: pa.DataType) -> pa.Array:
    if pa.types.is_decimal(kind):
        # From text, then cast: exact (a value that does not fit raises), and ten times faster
        # than pyarrow's conversion of Decimal objects.
        return pa.array([None if v is None else str(v) for v in values], type=pa.string()).cast(kind)
    return pa.array(values, type=kind)
