"""Outputs without positions, compared through the offset fence (design-byo §3; issue 13 item 3).

When the user's job cannot carry the source position onto its output records (no SMT allowed on
the connector, an engine that drops headers) but the spec declares the output's **lineage**:

1. the group has passed the CDC fence f_P and drained its internal topics (`cdc.progress`,
   `cdc.chain`; `migrate.external` waits for that first);
2. the output fence: the output topics' high watermarks E, then their last stable offsets >= E
   (`cdc.fence.wait_output_fence`); the tap then reads each output up to its last stable offset;
3. after every output was read, the upper fence U: the group's stable committed offsets
   (exactly-once) or the change topics' end offsets (`stream.exactly_once: false`);
4. the window: the change events in [f_P, U) of every change-topic partition the group consumes,
   plus the **overshoot**: events below f_P whose position is past P (Debezium resends after a
   connector restart; `cdc.fence.overshoot`). The group consumed them, so the keys they touch are in
   flight, never compared as if the output were at P. The scan marks (`STATE/fence/overshoot.json`)
   keep it incremental: a run reads only the change events since the previous run's fence, unless a
   prefix holds a position past the new P;
5. each output's current rows (the last record per key in Kafka write order) against the batch
   output, leaving out the keys in the window's lineage (`migrate.window`): in flight, counted,
   never a defect; every other key is compared exactly.

**Lineage self-check** (`unexplained_keys`): every output record at or past an output fence E was
written by a transaction that consumed change events at or past that run's f_P (the group had
committed past f_P before E was recorded) and below this run's U (it was committed before U was
read). So the records written since the *previous* run's output fence (`FenceMark`, kept in
`STATE/fence/previous.json`) came from the change events in [previous f_P, U): a key written there
that those events' lineage does not name means the lineage is incomplete (a table missing, a wrong
expression): a spec error, and the output is not compared. Only the span since this run's own E
(the first run, a changed group, events lost to retention, a span over `SELF_CHECK_MAX_EVENTS`)
holds just what the job wrote while the outputs were read: a few records, so a gap in the lineage
shows there only by chance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cdc.fence import (
    OutputFence,
    Partition,
    ScanMark,
    low_offsets,
    overshoot,
    read_changes,
    upper_fence,
    wait_output_fence,
)
from cdc.progress import GroupProgress
from comparators.sql import idents
from migrate.spec import PipelineSpec
from migrate.stream.tap import TapLog, segment_files
from migrate.window import Window, WindowEvent


def windowed(spec: PipelineSpec) -> list[str]:
    """Outputs that may be compared through the offset fence: a topic and a lineage."""
    return [name for name, out in spec.outputs.items() if out.lineage and out.stream.topic is not None]


def output_fence(spec: PipelineSpec, timeout: float) -> OutputFence:
    """Step 2 for the outputs with lineage (right after the group fence)."""
    topics = sorted({spec.outputs[o].stream.topic or "" for o in windowed(spec)})
    return wait_output_fence(spec.kafka.client(), topics, timeout=timeout)


# Beyond this many change events since the previous run's fence, the self-check keeps to this run's
# own span rather than decode them all (a nightly run after a busy day).
SELF_CHECK_MAX_EVENTS = 500_000


@dataclass(frozen=True)
class FenceMark:
    """A run's fences, kept for the next run's self-check: the group, its CDC fence f_P per change-topic
    partition (`lower`) and the output fence E per output partition (`ends`)."""

    group: str
    lower: Mapping[Partition, int]
    ends: Mapping[Partition, int]

    def to_dict(self) -> dict[str, Any]:
        def rows(offsets: Mapping[Partition, int]) -> list[dict[str, Any]]:
            return [{"topic": t, "partition": p, "offset": o} for (t, p), o in sorted(offsets.items())]

        return {"group": self.group, "lower": rows(self.lower), "ends": rows(self.ends)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FenceMark:
        def offsets(rows: Sequence[Mapping[str, Any]]) -> dict[Partition, int]:
            return {(str(r["topic"]), int(r["partition"])): int(r["offset"]) for r in rows}

        return cls(str(data["group"]), offsets(data["lower"]), offsets(data["ends"]))


@dataclass(frozen=True)
class CheckSpan:
    """What the lineage self-check reads: change events from `lower` (per change-topic partition) up
    to U, and output records from `since` (per output partition); `previous` when it starts at the
    previous run's fences, else at this run's own."""

    lower: Mapping[Partition, int]
    since: Mapping[Partition, int]
    previous: bool


def check_span(
    previous: FenceMark | None,
    group: str,
    lower: Mapping[Partition, int],
    ends: Mapping[Partition, int],
    lows: Mapping[Partition, int],
    max_events: int = SELF_CHECK_MAX_EVENTS,
) -> CheckSpan:
    """The self-check's span: from the previous run's fences when they apply (same group, every change
    partition fenced then and still held by retention, at most `max_events` events between the two
    CDC fences), else from this run's (`lower`, `ends`). An output partition new since then starts at
    its E; a fence that went back (an older batch position) keeps the lower of the two."""
    own = CheckSpan(dict(lower), dict(ends), previous=False)
    if previous is None or previous.group != group or not lower:
        return own
    if any(tp not in previous.lower or previous.lower[tp] < lows.get(tp, 0) for tp in lower):
        return own
    start = {tp: min(previous.lower[tp], f) for tp, f in lower.items()}
    if sum(lower[tp] - start[tp] for tp in lower) > max_events:
        return own
    since = {tp: min(previous.ends.get(tp, e), e) for tp, e in ends.items()}
    return CheckSpan(start, since, previous=True)


@dataclass(frozen=True)
class FencedWindow:
    """The window of this run ([f_P, U) plus overshoot: its lineage is in flight) and the self-check's
    (`checked`: [span.lower, U) plus overshoot: its lineage must explain every output record written
    since `span.since`)."""

    window: Window
    checked: Window
    span: CheckSpan


def offset_window(spec: PipelineSpec, progress: GroupProgress, fence: OutputFence, timeout: float) -> FencedWindow:
    """Steps 3 and 4, after every output was read: [f_P, U) per change-topic partition, decoded, and the
    self-check's span (recorded for the next run in `STATE/fence/previous.json`)."""
    lower = {(p.topic, p.partition): p.fence for p in progress.partitions if p.fence is not None}
    upper = upper_fence(
        spec.kafka.client(), spec.stream.group, lower, exactly_once=spec.stream.exactly_once,
        timeout=timeout,
    )  # fmt: skip
    # Committed offsets never go back, so U >= f_P; max() only guards a group reset mid-run.
    ranges = {tp: (lo, max(lo, upper[tp])) for tp, lo in lower.items()}
    table_of = {spec.cdc.topic(t): t for t in spec.cdc.tables}
    marks = load_marks(spec)
    early = overshoot(spec.kafka.client(), lower, progress.target, marks, timeout=timeout)
    save_marks(spec, marks)
    lows = low_offsets(spec.kafka.client(), lower, timeout=timeout)
    span = check_span(load_fence_mark(spec), spec.stream.group, lower, fence.ends, lows)
    save_fence_mark(spec, FenceMark(spec.stream.group, lower, fence.ends))
    wide = {tp: (span.lower.get(tp, lo), hi) for tp, (lo, hi) in ranges.items()}
    read = read_changes(spec.kafka.client(), wide, timeout=timeout)
    inside = [(tp, o, e) for tp, o, e in read if o >= ranges[tp][0]]

    def decoded(changes: list[Any]) -> tuple[WindowEvent, ...]:
        return tuple(WindowEvent(table_of[tp[0]], e.before, e.after) for tp, _, e in changes if tp[0] in table_of)

    def window(changes: list[Any], bounds: Mapping[Partition, tuple[int, int]]) -> Window:
        return Window(
            "offsets",
            {f"{t}[{p}]": lo for (t, p), (lo, _) in sorted(bounds.items())},
            {f"{t}[{p}]": hi for (t, p), (_, hi) in sorted(bounds.items())},
            decoded(early + changes),
            overshoot=sum(1 for tp, _, _ in early if tp[0] in table_of),
        )

    return FencedWindow(window(inside, ranges), window(read, wide), span)


def _fence_mark_path(spec: PipelineSpec) -> Path:
    return spec.path("fence") / "previous.json"


def load_fence_mark(spec: PipelineSpec) -> FenceMark | None:
    """The previous run's fences (None: no run fenced yet, or a mark this version cannot read)."""
    path = _fence_mark_path(spec)
    if not path.exists():
        return None
    try:
        return FenceMark.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        return None  # the self-check then keeps to this run's span: weaker, never wrong


def save_fence_mark(spec: PipelineSpec, mark: FenceMark) -> None:
    """Keep this run's fences for the next run's self-check (atomic rename)."""
    path = _fence_mark_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(mark.to_dict(), indent=1) + "\n")
    os.replace(tmp, path)


def _marks_path(spec: PipelineSpec) -> Path:
    return spec.path("fence") / "overshoot.json"


def load_marks(spec: PipelineSpec) -> dict[Partition, ScanMark]:
    """The overshoot scan marks per change-topic partition (empty: scan from each low offset)."""
    path = _marks_path(spec)
    if not path.exists():
        return {}
    marks: dict[Partition, ScanMark] = {}
    for entry in json.loads(path.read_text()):
        marks[(str(entry["topic"]), int(entry["partition"]))] = ScanMark.from_dict(entry)
    return marks


def save_marks(spec: PipelineSpec, marks: dict[Partition, ScanMark]) -> None:
    """Keep the marks for the next run (atomic rename)."""
    path = _marks_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"topic": t, "partition": p, **m.to_dict()} for (t, p), m in sorted(marks.items())]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    os.replace(tmp, path)


def _past(since: Mapping[int, int]) -> str:
    return " OR ".join(f'("__kafka_partition" = {int(p)} AND "__kafka_offset" >= {int(o)})' for p, o in since.items())


def written_versions(root: Path, keys: Sequence[str], since: Mapping[int, int], columns: Sequence[str]) -> pa.Table:
    """Every version the tap holds (`columns` of the output that it has) of the keys written at Kafka
    offsets >= `since` (partition -> offset): the rows whose lineage columns may explain those writes,
    a tombstone's included through the versions before it. Empty when nothing was written there."""
    files = segment_files(root)
    if not files or not since:
        return pa.table({})
    with duckdb.connect() as con:
        TapLog(tuple(str(f) for f in files)).register(con, "tap", keys)
        have = {str(r[0]) for r in con.execute("DESCRIBE tap").fetchall()}
        wanted = [c for c in columns if c in have]
        return con.sql(
            f"SELECT DISTINCT {idents(wanted)} FROM tap SEMI JOIN "
            f"(SELECT {idents(keys)} FROM tap WHERE {_past(since)}) AS written USING ({idents(keys)})"
        ).to_arrow_table()


def unexplained_keys(root: Path, keys: Sequence[str], since: Mapping[int, int], explained: pa.Table) -> pa.Table:
    """Keys of output records at Kafka offsets >= `since` (partition -> the output fence of the check
    span) that are not among the `explained` keys (the lineage of the span's change events); empty
    when the lineage explains them all."""
    files = segment_files(root)
    if not files or not since:
        return explained.schema.empty_table()
    with duckdb.connect() as con:
        TapLog(tuple(str(f) for f in files)).register(con, "tap", keys)
        con.register("explained", explained)
        return con.sql(
            f"SELECT DISTINCT * FROM (SELECT {idents(keys)} FROM tap WHERE {_past(since)}) AS written "
            f"ANTI JOIN explained USING ({idents(keys)}) ORDER BY ALL"
        ).to_arrow_table()


def current_rows(root: Path, keys: Sequence[str], schema: pa.Schema) -> pa.Table:
    """The output as the job last wrote it: per key the record with the highest Kafka offset (the
    tap's `__processed_at` grows with it), tombstoned keys removed, the tap's columns dropped;
    shaped like `schema` (the batch output's) when the tap read nothing yet."""
    files = segment_files(root)
    if not files:
        return schema.empty_table()
    with duckdb.connect() as con:
        TapLog(tuple(str(f) for f in files)).register(con, "tap", keys)
        values = [str(r[0]) for r in con.execute("DESCRIBE tap").fetchall() if not str(r[0]).startswith("__")]
        return con.sql(
            f"SELECT {idents(values)} FROM (SELECT * FROM tap QUALIFY row_number() OVER (PARTITION BY {idents(keys)} "
            f'ORDER BY "__processed_at" DESC NULLS LAST, "__kafka_offset" DESC) = 1) WHERE "__op" <> \'d\''
        ).to_arrow_table()
