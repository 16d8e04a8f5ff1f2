"""An external batch run bracketed by source positions, decided key by key (design-byo §4.2;
issue 13 item 1).

When dualrun cannot run the batch SQL itself, the job is bracketed by `batch mark --begin` and
`--end` (`migrate.marks`): it read the source at unknown times inside [P_lo, P_hi]. `check_bracket`
waits for the stream to pass P_hi, reads the change events inside the bracket (the window) and
decides every key (`migrate.consistency`). First, per output, the **lineage self-check**: every
record the stream wrote at a position inside the bracket was written for a change inside it, so
the window's lineage must name its key; one it does not name makes the lineage incomplete, a spec
error (`self_check`), and nothing is decided.

`dualrun reconcile --spec` routes a bracketed run here (`migrate.asof`); each output's result is
recorded in the run history, and its window keys in the coverage ledger, as a reconcile's are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from cdc.fence import partition_ends, read_changes
from cdc.progress import GroupProgress
from comparators import history as run_history
from comparators.changelog import ChangelogSource
from comparators.positions import PosOrder
from comparators.report import key_text
from comparators.sql import describe, ident, idents
from migrate.batch import BatchRun, load_run, run_output
from migrate.consistency import BracketClassification, classify_bracket, versions_in_bracket
from migrate.coverage import record_coverage
from migrate.errors import DualrunError, SpecError
from migrate.marks import Bracket, load_bracket
from migrate.metrics import publish_parity
from migrate.progress import StreamProgress, wait_for_stream
from migrate.sides import stream_side
from migrate.spec import OutputSpec, PipelineSpec
from migrate.window import Window, WindowEvent, lineage_rows, unpredicted_keys


@dataclass(frozen=True)
class BracketCheck:
    """An external batch run against the stream: the window between its marks and every output's
    keys decided (`migrate.consistency`). `progress`: whether the stream passed P_hi (outputs are
    decided only then); `window_from`: where the window's change events were read from;
    `history_ids`: each output's run id in the run history (empty when not recorded);
    `self_check_not_run`: outputs whose lineage self-check could not run because the stream
    carries no positions (their window keys' lineage is then untested, so say it)."""

    run: BatchRun
    bracket: Bracket
    progress: StreamProgress | GroupProgress
    window: Window | None
    outputs: dict[str, BracketClassification]
    window_from: str = ""
    history_ids: dict[str, str] = field(default_factory=dict)
    self_check_not_run: tuple[str, ...] = ()

    @property
    def behind(self) -> str | None:
        """Why the stream could not be read yet; None: it passed P_hi."""
        return None if self.progress.reached else self.progress.describe()

    @property
    def verdict(self) -> str:
        if self.behind is not None:
            return "stream behind"
        return "differences" if any(o.verdict == "differences" for o in self.outputs.values()) else "clean"

    @property
    def exit_code(self) -> int:
        """The exit-code contract of `dualrun reconcile`: 0 clean, 1 anything else (differences, or
        the stream behind: not compared, so never clean)."""
        return 0 if self.verdict == "clean" else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "run": self.run.to_dict(), "bracket": self.bracket.to_dict(),
            "behind": self.behind, "window": self.window.to_dict() if self.window else None,
            "window_from": self.window_from, "history_ids": dict(self.history_ids),
            "lineage_self_check_not_run": list(self.self_check_not_run),
            "outputs": {name: o.to_dict() for name, o in self.outputs.items()},
        }  # fmt: skip


def bracket_window(spec: PipelineSpec, bracket: Bracket, timeout: float) -> tuple[Window, str]:
    """The change events whose position lies in the bracket, both ends included (a transaction that
    starts exactly at a mark may belong to either side; over-including only costs coverage), and
    where they were read from (evidence).

    Reads each change-topic partition from the offset the begin mark recorded (0 for a partition
    created since) up to its end offset now; from its start for a mark that recorded none."""
    kafka = spec.kafka.client()
    table_of = {spec.cdc.topic(t): t for t in spec.cdc.tables}
    ends = partition_ends(kafka, list(table_of), timeout=timeout)
    starts = bracket.begin.offsets
    if starts is None:
        where = "each change topic from its start: the begin mark recorded no offsets (written by an older dualrun)"
    else:
        where = "the change topics' offsets recorded at the begin mark: " + ", ".join(
            f"{t}[{p}] {starts.get((t, p), 0)}..{end}" for (t, p), end in sorted(ends.items())
        )
    lo, hi = bracket.begin.position, bracket.end.position
    ranges = {tp: (min((starts or {}).get(tp, 0), end), end) for tp, end in ends.items()}
    events = []
    for tp, _, event in read_changes(kafka, ranges, timeout=timeout):
        at = event.position
        if event.snapshot or at.kind != lo.kind:
            continue
        if (lo.major, lo.minor) <= (at.major, at.minor) <= (hi.major, hi.minor):
            row = tuple(sorted(event.key.items()))
            events.append(WindowEvent(table_of[tp[0]], event.before, event.after, row=row))
    return Window("positions", {"source": str(lo)}, {"source": str(hi)}, tuple(events)), where


def _stream_reached(spec: PipelineSpec, run: BatchRun, wait: float) -> StreamProgress | GroupProgress:
    """Wait (at most `wait` s) for the stream to hold every change up to P_hi."""
    if spec.is_external:
        from migrate.external import external_progress

        return external_progress(spec, run, wait)
    return wait_for_stream(spec, run.position, wait)


def check_bracket(
    spec: PipelineSpec,
    run_id: str = "latest",
    *,
    wait: float | None = None,
    record: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> BracketCheck:
    """Decide every key of every output of an external batch run (DualrunError when the run was not
    bracketed): wait for the stream to pass P_hi, read the window, then per output the stream's
    current rows as of P_hi and, for window keys, its versions inside [P_lo, P_hi]. With `record`,
    each output's result goes to the run history (`<spec>/<output>`, as `dualrun reconcile --spec`
    names it) with its window keys in the coverage ledger, and parity is published as metrics."""
    run = load_run(spec.warehouse_path, run_id)
    bracket = load_bracket(spec, run.run_id)
    if bracket is None:
        raise DualrunError(
            f"batch run {run.run_id} was not bracketed by `batch mark`; compare it with `dualrun reconcile --spec`"
        )
    missing = [output for output in spec.outputs if output not in run.rows]
    if missing:
        raise DualrunError(
            f"batch run {run.run_id} has no output {missing[0]!r} (the spec gained it after that run); "
            "run your job between `batch mark --begin` and `--end` again (or `dualrun run batch --external`)"
        )
    timeout = spec.compare.wait_seconds if wait is None else wait
    progress(f"waiting for the stream to pass the end mark {run.position}")
    reached = _stream_reached(spec, run, timeout)
    if not reached.reached:
        if record:
            publish_parity(spec, {})
        return BracketCheck(run, bracket, reached, None, {})
    progress("reading the change events inside the bracket")
    window, where = bracket_window(spec, bracket, timeout)
    lo, hi = bracket.begin.position.order_value, bracket.end.position.order_value
    decided: dict[str, BracketClassification] = {}
    unchecked: list[str] = []
    for output, out in spec.outputs.items():
        progress(f"deciding {output} key by key")
        keys = list(out.keys)
        batch = run_output(spec.warehouse_path, run.run_id, output)
        if out.stream.table is not None:
            raise DualrunError(f"outputs.{output}.stream.table: a bracketed batch run is compared with topics only")
        if spec.is_external:
            from migrate.external import tap_spec_output

            tap_spec_output(spec, output, batch.schema)
        log = stream_side(spec, output, run.position, batch.schema).log
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            log.register(con, "log", keys)
            ChangelogSource(log, PosOrder(hi)).register(con, "at_end", keys)
            stream = con.sql("SELECT * FROM at_end").to_arrow_table()
            changed = lineage_rows(output, keys, (batch, stream), window, out.lineage)
            positioned = "__pos_order" in {c for c, _ in describe(con, "log")}
            versions = versions_in_bracket(con, "log", keys, changed, lo, hi) if positioned else None
            written = written_in_bracket(con, "log", lo, hi) if positioned else None
        if written is not None:
            self_check(output, out, (batch, stream), written, window)
        else:  # no positions to tell which records the bracket wrote: the lineage goes untested
            unchecked.append(output)
        decided[output] = classify_bracket(
            output, keys, batch, stream, changed, versions, rules=dict(out.tolerances) or None, ignore=out.ignore,
            partition=out.partition, name=f"{spec.name}/{output}",
            positions=(f"bracket {bracket.begin.position} .. {bracket.end.position}", str(run.position)),
        )  # fmt: skip
    ids = record_bracket(spec, run.run_id, decided) if record else {}
    return BracketCheck(run, bracket, reached, window, decided, where, ids, tuple(unchecked))


def written_in_bracket(con: duckdb.DuckDBPyConnection, log: str, lo: int, hi: int) -> pa.Table:
    """The value columns of the records the stream wrote at a position inside [lo, hi] (deletes
    left out: their images may lack the columns the lineage maps)."""
    values = idents([c for c, _ in describe(con, log) if not c.startswith("__")])
    return con.sql(
        f"""SELECT {values} FROM {ident(log)} WHERE "__pos_order" BETWEEN $lo AND $hi AND "__op" <> 'd'""",
        params={"lo": lo, "hi": hi},
    ).to_arrow_table()


def self_check(output: str, out: OutputSpec, sides: Sequence[pa.Table], written: pa.Table, window: Window) -> None:
    """The lineage self-check (issue 13): every record the stream wrote inside the bracket was written
    for a change inside it, so the window's lineage must name its key. SpecError (exit 2) when it
    does not: an incomplete lineage would leave changed keys out of the window and call them defects
    or, worse, compare them as if unchanged."""
    missed = unpredicted_keys(output, list(out.keys), sides, written, window, out.lineage)
    if missed.num_rows:
        first = key_text(missed.slice(0, 1).to_pylist()[0].items())
        raise SpecError(
            f"outputs.{output}.lineage: the lineage is incomplete: {missed.num_rows:,} key(s) of {output} were "
            f"written inside the bracket by changes it does not name, e.g. {first}; add the table their changes "
            f"come from to outputs.{output}.lineage (or map it to `all`)"
        )


def record_bracket(spec: PipelineSpec, run_id: str, decided: Mapping[str, BracketClassification]) -> dict[str, str]:
    """Record each output's result in the run history (named `<spec>/<output>`, as `dualrun
    reconcile --spec` names it, and as a check of batch run `run_id`, so the checklist's parity
    streak counts the bracketed run once however often it is checked) and its window keys in
    the coverage ledger (in flight: the coverage gate counts them), then publish parity as
    metrics. Returns the history run id per output."""
    ids: dict[str, str] = {}
    for output, c in decided.items():
        ids[output] = run_history.record(spec.history_path, c.reconciliation, batch_run=run_id)
        record_coverage(spec, output, ids[output], c.coverage, c.in_flight)
    publish_parity(spec, {name: c.reconciliation for name, c in decided.items()})
    return ids
