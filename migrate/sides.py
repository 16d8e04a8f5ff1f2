"""The stream side of a reconciliation: a changelog read as of a source position.

For dualrun's own job, the changelog it writes; for the user's own job, what the tap read of its
output topics, in the order the job wrote them (`InWriteOrder`), minus keys in flight (`WithoutKeys`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from cdc.position import Position
from comparators import ChangelogSource, FrameSource, ParquetSource
from comparators.positions import PosOrder
from comparators.sql import describe, ident, idents
from migrate.spec import PipelineSpec
from migrate.stream.changelog import META, output_glob
from migrate.stream.tap import TapLog, segment_files, tap_dir


@dataclass(frozen=True)
class WithoutKeys:
    """A comparators Source minus the keys in `skip` (keys reordered around P: in flight)."""

    inner: Any
    skip: pa.Table

    @property
    def label(self) -> str:
        return f"{self.inner.label} without {self.skip.num_rows} in-flight key(s)"

    def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[str]) -> None:
        self.inner.register(con, f"{name}__all", keys)
        if self.skip.num_rows == 0:
            con.execute(f"CREATE TEMP VIEW {ident(name)} AS SELECT * FROM {ident(name + '__all')}")
            return
        con.register(f"{name}__skip", self.skip)
        con.execute(
            f"CREATE TEMP VIEW {ident(name)} AS SELECT * FROM {ident(name + '__all')} "
            f"ANTI JOIN {ident(name + '__skip')} USING ({idents(keys)})"
        )


@dataclass(frozen=True)
class InWriteOrder:
    """A tap log whose versions are ordered as the job wrote them: `__pos_order` becomes the running
    maximum of the key's positions in Kafka offset order (ties: the later offset wins).

    A job that joins two change topics may write a key's versions out of position order (Kafka
    Streams picks across topics by timestamp; Debezium stamps many events with the same
    millisecond). Each version holds what the job had processed when it wrote it, so a version
    written after one at a higher position includes that higher change: as of P, the state is the
    last version written before the key's first version past P. Keys with a version at or before P
    written after one past P are in flight (`reordered_keys_around`) and left out of both sides.
    """

    inner: Any

    @property
    def label(self) -> str:
        return f"{self.inner.label} in write order"

    def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[str]) -> None:
        raw = f"{name}__written"
        self.inner.register(con, raw, keys)
        has = {c for c, _ in describe(con, raw)}
        if not {"__pos_order", "__kafka_partition", "__kafka_offset"} <= has:
            con.execute(f"CREATE TEMP VIEW {ident(name)} AS SELECT * FROM {ident(raw)}")
            return
        # The binlog/LSN/GTID columns would re-order ties by the raw position: only __pos_order orders.
        drop = [c for c in ("__pos_file", "__pos_offset", "__gtid", "__lsn") if c in has]
        exclude = f" EXCLUDE ({idents(drop)})" if drop else ""
        con.execute(
            f'CREATE TEMP VIEW {ident(name)} AS SELECT *{exclude} REPLACE (max("__pos_order") OVER ('
            f'PARTITION BY {idents(keys)}, "__kafka_partition" ORDER BY "__kafka_offset" '
            f'ROWS UNBOUNDED PRECEDING) AS "__pos_order") FROM {ident(raw)}'
        )


def stream_side(spec: PipelineSpec, output: str, position: Position, schema: pa.Schema) -> ChangelogSource:
    """The stream's changelog of `output` as of `position`; with no segment yet, an empty changelog
    shaped like the batch output (`schema`) plus the changelog's own columns. For the user's own
    job, what the tap read of the output topic (`migrate.external`)."""
    # PostgreSQL: the stream cut's order value (migrate.pgsource); the changelog has __pos_order.
    at: PosOrder | str = (
        PosOrder(position.order_value, shown=str(position))
        if position.kind == "lsn"
        else f"{position.file}:{position.minor}"
    )
    root = spec.changelog_path
    taps = segment_files(tap_dir(spec.path("."), spec.stream.group, output)) if spec.is_external else []
    log: Any
    if taps:  # the user's own job's output, as the tap read it, in write order (migrate.external)
        log = InWriteOrder(TapLog(tuple(str(p) for p in taps), name=f"{output} tap"))
    elif not spec.is_external and any((root / output).glob("*.parquet")):
        log = ParquetSource(output_glob(root, output))
    else:
        empty = pa.schema([*schema, *(f for f in META if f.name not in schema.names)])
        log = FrameSource(empty.empty_table(), name=f"{output} changelog (empty)")
    return ChangelogSource(log, at)
