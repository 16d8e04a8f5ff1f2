"""An external batch job bracketed by source positions (design-byo §4.2; issue 13 item 1).

When dualrun cannot run the batch SQL itself (a stored procedure, a Spark or dbt run writing a
warehouse table), it records the source position right before the job starts (`begin`, P_lo) and
right after it ends (`end`, P_hi): `dualrun batch mark --begin` / `--end`, or `dualrun run batch
--external -- COMMAND`, which runs the command between the two marks. The job read the source at
unknown times inside [P_lo, P_hi]; `--end` imports each output from where the job wrote it
(`outputs.X.batch.import`: a SQLAlchemy URL with a table or query, a Parquet or a CSV file), typed
like the spec's `columns`, and records a batch run at P_hi with its bracket beside it
(`<state_dir>/bracket/runs/<run id>.json`). `migrate.consistency` then decides every key.

Positions are MariaDB's binlog end (`SHOW MASTER STATUS`, with `@@gtid_binlog_pos`): every
transaction committed before the mark lies before it, every one committed after it at or past it.
The begin mark also records each change-topic partition's end offset, read *before* the position:
a change past P_lo commits after the offsets were read, so Debezium publishes it at or past them,
and the window is read from there instead of from each topic's start.

`dualrun reconcile --spec` routes a bracketed run here (`migrate.asof`); each output's result is
recorded in the run history, and its window keys in the coverage ledger, as a reconcile's are.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from cdc.errors import CdcError
from cdc.fence import Partition, partition_ends, read_changes
from cdc.position import Position
from cdc.progress import GroupProgress
from comparators import history as run_history
from comparators.changelog import ChangelogSource
from comparators.errors import SourceError
from comparators.positions import PosOrder
from comparators.sources import CsvSource, ParquetSource, SqlSource
from comparators.sql import describe
from migrate.batch import BatchRun, load_run, run_output, translate, write_run
from migrate.consistency import BracketClassification, classify_bracket, versions_in_bracket
from migrate.coverage import record_coverage
from migrate.errors import DualrunError, SpecError
from migrate.metrics import publish_parity
from migrate.progress import StreamProgress, wait_for_stream
from migrate.sides import stream_side
from migrate.sourcedb import source_url
from migrate.spec import PipelineSpec
from migrate.spec.columns import arrow_type
from migrate.spec.model import BatchImportSpec
from migrate.window import Window, WindowEvent, lineage_rows

MARKS = ("begin", "end")


@dataclass(frozen=True)
class Mark:
    """One end of the bracket: the source position and when it was taken. `offsets` (begin only):
    each change-topic partition's end offset read before the position; None in a mark written
    before dualrun recorded them (the window is then read from each topic's start)."""

    which: str  # "begin" or "end"
    position: Position
    at: datetime
    offsets: Mapping[Partition, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"which": self.which, "position": self.position.to_dict(), "at": self.at.isoformat()}
        if self.offsets is not None:
            out["offsets"] = [{"topic": t, "partition": p, "offset": o} for (t, p), o in sorted(self.offsets.items())]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Mark:
        pos = data["position"]
        position = Position.binlog_snapshot(pos["file"], int(pos["pos"]), pos.get("gtid"))
        found = data.get("offsets")
        offsets = None if found is None else {(o["topic"], int(o["partition"])): int(o["offset"]) for o in found}
        return cls(data["which"], position, datetime.fromisoformat(data["at"]), offsets)


@dataclass(frozen=True)
class Bracket:
    """A batch run recorded by an external job: where the source stood before and after it."""

    run_id: str
    begin: Mark
    end: Mark

    @property
    def seconds(self) -> float:
        return (self.end.at - self.begin.at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "begin": self.begin.to_dict(), "end": self.end.to_dict(),
                "seconds": round(self.seconds, 3)}  # fmt: skip


def current_position(spec: PipelineSpec) -> Position:
    """The source's binlog end right now (MariaDB): file, offset and GTID position."""
    if spec.source.kind != "mariadb":
        raise DualrunError(
            f"batch mark: a {spec.source.kind} source cannot be bracketed yet (MariaDB only); "
            "let dualrun run the batch SQL in one snapshot instead (`dualrun run batch`)"
        )
    engine = sa.create_engine(source_url(spec), pool_pre_ping=False)
    try:
        with engine.connect() as conn:
            row = conn.exec_driver_sql("SHOW MASTER STATUS").first()
            gtid = conn.exec_driver_sql("SELECT @@gtid_binlog_pos").scalar()
    except sa.exc.DBAPIError as exc:
        raise translate(exc, spec) from None
    finally:
        engine.dispose()
    if row is None:
        raise DualrunError("the source has no binary log: enable log_bin (row format) so positions can be recorded")
    return Position.binlog_snapshot(str(row[0]), int(row[1]), gtid=str(gtid) if gtid else None)


def _marks_dir(spec: PipelineSpec) -> Path:
    return spec.path("bracket")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def change_offsets(spec: PipelineSpec, timeout: float = 15.0) -> dict[Partition, int]:
    """The end offset of every partition of the spec's change topics now (DualrunError when Kafka
    cannot be read or a topic does not exist: the window could not be located later)."""
    topics = [spec.cdc.topic(t) for t in spec.cdc.tables]
    try:
        return partition_ends(spec.kafka.client(), topics, timeout=timeout)
    except CdcError as exc:
        reason = str(exc).splitlines()[0].split("; ")[0]  # what failed, without the hint for output topics
        raise DualrunError(
            f"batch mark --begin: cannot read the offsets of the change topics ({', '.join(topics)}) at "
            f"{spec.kafka.bootstrap_servers}: {reason}; start Kafka and register the Debezium connector "
            "(`dualrun cdc register --spec ...`) before the bracket"
        ) from None


def mark_begin(spec: PipelineSpec) -> Mark:
    """Record P_lo, before the external job starts (replaces an unfinished earlier bracket): the
    change topics' end offsets first, then the source position (see the module docstring)."""
    offsets = change_offsets(spec)
    mark = Mark("begin", current_position(spec), datetime.now(UTC), offsets)
    _write_json(_marks_dir(spec) / "begin.json", mark.to_dict())
    return mark


def mark_end(spec: PipelineSpec) -> tuple[BatchRun, Bracket]:
    """Record P_hi after the job ended, import its outputs and record the batch run at P_hi.
    DualrunError when no `--begin` was recorded; SpecError when an output cannot be imported."""
    begun = _marks_dir(spec) / "begin.json"
    if not begun.exists():
        raise DualrunError("batch mark --end: no bracket was begun; run `dualrun batch mark --begin` before the job")
    begin = Mark.from_dict(json.loads(begun.read_text()))
    end = Mark("end", current_position(spec), datetime.now(UTC))
    if end.position < begin.position:
        raise DualrunError(f"batch mark --end: the source position went back ({begin.position} -> {end.position})")
    tables = {name: import_output(spec, name) for name in spec.outputs}
    _same_types(spec, tables)
    run = BatchRun(
        run_id=begin.at.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6],
        started_at=begin.at, finished_at=end.at, position=end.position,
        rows={name: t.num_rows for name, t in tables.items()},
    )  # fmt: skip
    write_run(spec.warehouse_path, run, tables)
    bracket = Bracket(run.run_id, begin, end)
    _write_json(_marks_dir(spec) / "runs" / f"{run.run_id}.json", bracket.to_dict())
    begun.unlink()
    return run, bracket


def _same_types(spec: PipelineSpec, tables: Mapping[str, pa.Table]) -> None:
    """SpecError when an import's column types differ from those earlier runs stored in the
    warehouse (appending would cast them silently: an empty first CSV stores every column as text)."""
    path = spec.warehouse_path
    if not path.exists():
        return
    with duckdb.connect(str(path), read_only=True) as con:
        stored = {str(r[0]) for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for name, table in tables.items():
            if name not in stored:
                continue
            before = dict(describe(con, name))
            con.register("incoming", table)
            now = dict(describe(con, "incoming"))
            con.unregister("incoming")
            changed = [(c, before[c], t) for c, t in now.items() if c in before and before[c] != t]
            if changed:
                col, was, is_ = changed[0]
                raise SpecError(
                    f"outputs.{name}.batch.import: column {col} is {is_} now but {was} in earlier runs in {path}; "
                    f"declare its type in outputs.{name}.batch.columns, or point batch.warehouse at a new file"
                )


def load_bracket(spec: PipelineSpec, run_id: str) -> Bracket | None:
    """The bracket of a batch run an external job recorded; None for a run dualrun read itself."""
    path = _marks_dir(spec) / "runs" / f"{run_id}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return Bracket(data["run_id"], Mark.from_dict(data["begin"]), Mark.from_dict(data["end"]))


def run_external(spec: PipelineSpec, command: Sequence[str]) -> tuple[int, BatchRun | None, Bracket | None]:
    """Run the user's `command` between the two marks: (its exit code, the run, its bracket); no run
    is recorded when the command fails (its output may be half written)."""
    if not command:
        raise DualrunError("run batch --external: give the job's command after --, e.g. -- ./nightly.sh")
    mark_begin(spec)
    try:
        code = subprocess.call(list(command))
    except OSError as exc:
        raise DualrunError(f"run batch --external: cannot run {command[0]!r}: {exc.strerror}") from None
    if code != 0:
        return code, None, None
    run, bracket = mark_end(spec)
    return 0, run, bracket


def _import_source(spec: PipelineSpec, output: str, where: BatchImportSpec) -> Any:
    if where.parquet is not None:
        return ParquetSource(where.parquet)
    if where.csv is not None:
        return CsvSource(where.csv)
    assert where.url is not None  # BatchImportSpec._one_place
    url = sa.engine.make_url(where.url)
    if where.password_env is not None:
        password = os.environ.get(where.password_env)
        if password is None:
            raise SpecError(
                f"outputs.{output}.batch.import.password_env: environment variable {where.password_env} is not set; "
                "export it with the password"
            )
        url = url.set(password=password)
    return SqlSource(url.render_as_string(hide_password=False), where.table, where.query)


def import_output(spec: PipelineSpec, output: str) -> pa.Table:
    """One output as the external job wrote it, columns typed by `outputs.X.batch.columns` (exact:
    a value that does not fit its declared type fails, SpecError); a CSV's plain decimal literals
    are read as DECIMAL, never through a float (`comparators.sources.CsvSource`)."""
    out = spec.outputs[output]
    where = out.batch.import_
    field = f"outputs.{output}.batch.import"
    if where is None:
        raise SpecError(f"outputs.{output}.batch: say where the external job writes this output with import")
    source = _import_source(spec, output, where)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        try:
            source.register(con, "imported", list(out.keys))
            names = [name for name, _ in describe(con, "imported")]
            missing = [k for k in [*out.keys, *out.batch.columns] if k not in names]
            if missing:
                raise SpecError(f"{field}: {source.label} has no column {missing[0]!r} (it has {', '.join(names)})")
            table = con.sql("SELECT * FROM imported").to_arrow_table()
        except (SourceError, duckdb.Error) as exc:
            reason = str(exc).splitlines()[0]
            said = reason if reason.startswith("cannot read") else f"cannot read {source.label}: {reason}"
            raise SpecError(f"{field}: {said}") from None
    for name, text in out.batch.columns.items():
        i = table.schema.get_field_index(name)
        try:
            table = table.set_column(i, name, table.column(name).cast(arrow_type(text), safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SpecError(f"{field}: column {name} does not fit {text}: {str(exc).splitlines()[0]}") from None
    return table


@dataclass(frozen=True)
class BracketCheck:
    """An external batch run against the stream: the window between its marks and every output's
    keys decided (`migrate.consistency`). `progress`: whether the stream passed P_hi (outputs are
    decided only then); `window_from`: where the window's change events were read from;
    `history_ids`: each output's run id in the run history (empty when not recorded)."""

    run: BatchRun
    bracket: Bracket
    progress: StreamProgress | GroupProgress
    window: Window | None
    outputs: dict[str, BracketClassification]
    window_from: str = ""
    history_ids: dict[str, str] = field(default_factory=dict)

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
        return {"clean": 0, "differences": 1}.get(self.verdict, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "run": self.run.to_dict(), "bracket": self.bracket.to_dict(),
            "behind": self.behind, "window": self.window.to_dict() if self.window else None,
            "window_from": self.window_from, "history_ids": dict(self.history_ids),
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
            _publish(spec, {})
        return BracketCheck(run, bracket, reached, None, {})
    progress("reading the change events inside the bracket")
    window, where = bracket_window(spec, bracket, timeout)
    lo, hi = bracket.begin.position.order_value, bracket.end.position.order_value
    decided: dict[str, BracketClassification] = {}
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
        decided[output] = classify_bracket(
            output, keys, batch, stream, changed, versions, rules=dict(out.tolerances) or None, ignore=out.ignore,
            partition=out.partition, name=f"{spec.name}/{output}",
            positions=(f"bracket {bracket.begin.position} .. {bracket.end.position}", str(run.position)),
        )  # fmt: skip
    ids = record_bracket(spec, run.run_id, decided) if record else {}
    return BracketCheck(run, bracket, reached, window, decided, where, ids)


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
    _publish(spec, {name: c.reconciliation for name, c in decided.items()})
    return ids


def _publish(spec: PipelineSpec, results: Mapping[str, Any]) -> None:
    publish_parity(spec, results)
