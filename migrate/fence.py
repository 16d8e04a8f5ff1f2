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

**Lineage self-check** (`unexplained_keys`): every output record at or past the output fence E was
written by a transaction that consumed change events at or past f_P (the group had committed past
f_P before E was recorded) and below U (it was committed before U was read): it came from the
window. A key written there that the window's lineage does not name means the lineage is
incomplete (a table missing, a wrong expression): a spec error, and the output is not compared.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from cdc.fence import OutputFence, Partition, ScanMark, overshoot, read_changes, upper_fence, wait_output_fence
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


def offset_window(spec: PipelineSpec, progress: GroupProgress, timeout: float) -> Window:
    """Steps 3 and 4, after every output was read: [f_P, U) per change-topic partition, decoded."""
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
    changes = early + read_changes(spec.kafka.client(), ranges, timeout=timeout)
    events = tuple(WindowEvent(table_of[tp[0]], e.before, e.after) for tp, _, e in changes if tp[0] in table_of)
    return Window(
        "offsets",
        {f"{t}[{p}]": lo for (t, p), (lo, _) in sorted(ranges.items())},
        {f"{t}[{p}]": hi for (t, p), (_, hi) in sorted(ranges.items())},
        events,
        overshoot=sum(1 for tp, _, _ in early if tp[0] in table_of),
    )


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


def unexplained_keys(root: Path, keys: Sequence[str], ends: dict[int, int], flying: pa.Table) -> pa.Table:
    """Keys of output records at Kafka offsets >= the output fence (`ends`: partition -> E) that are
    not among the `flying` keys (the window's lineage); empty when the lineage explains them all."""
    files = segment_files(root)
    if not files or not ends:
        return flying.schema.empty_table()
    past = " OR ".join(f'("__kafka_partition" = {int(p)} AND "__kafka_offset" >= {int(e)})' for p, e in ends.items())
    with duckdb.connect() as con:
        TapLog(tuple(str(f) for f in files)).register(con, "tap", keys)
        con.register("flying", flying)
        return con.sql(
            f"SELECT DISTINCT * FROM (SELECT {idents(keys)} FROM tap WHERE {past}) AS written "
            f"ANTI JOIN flying USING ({idents(keys)}) ORDER BY ALL"
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
