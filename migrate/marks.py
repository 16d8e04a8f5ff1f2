"""The bracket's marks (design-byo §4.2; issue 13 item 1): the source position right before an
external batch job starts (`begin`, P_lo) and right after it ends (`end`, P_hi).

`dualrun batch mark --begin` / `--end`, or `dualrun run batch --external -- COMMAND`, which runs the
command between the two marks. `--end` imports each output from where the job wrote it
(`migrate.intake`) and records a batch run at P_hi with its bracket beside it
(`<state_dir>/bracket/runs/<run id>.json`); `migrate.bracket` then decides every key.

Positions are MariaDB's binlog end (`SHOW MASTER STATUS`, with `@@gtid_binlog_pos`): every
transaction committed before the mark lies before it, every one committed after it at or past it.
The begin mark also records each change-topic partition's end offset, read *before* the position:
a change past P_lo commits after the offsets were read, so Debezium publishes it at or past them,
and the window is read from there instead of from each topic's start.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cdc.errors import CdcError
from cdc.fence import Partition, partition_ends
from cdc.position import Position
from migrate.batch import BatchRun, translate, write_run
from migrate.errors import DualrunError
from migrate.intake import import_outputs, refuse_stale
from migrate.sourcedb import source_url
from migrate.spec import PipelineSpec

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
        where = "" if spec.kafka.bootstrap_servers in reason else f" at {spec.kafka.bootstrap_servers}"
        raise DualrunError(
            f"batch mark --begin: cannot read the offsets of the change topics ({', '.join(topics)}){where}: "
            f"{reason}; start Kafka and register the Debezium connector "
            "(`dualrun cdc register --spec ...`) before the bracket"
        ) from None


def open_mark(spec: PipelineSpec) -> Mark | None:
    """The begin mark of a bracket not ended yet; None when no bracket is open."""
    begun = _marks_dir(spec) / "begin.json"
    return Mark.from_dict(json.loads(begun.read_text())) if begun.exists() else None


def mark_begin(spec: PipelineSpec, *, abandon: bool = False) -> Mark:
    """Record P_lo, before the external job starts: the change topics' end offsets first, then the
    source position (see the module docstring). DualrunError when a bracket is open already (its
    job's outputs would be imported against the wrong P_lo) unless `abandon` discards it."""
    found = open_mark(spec)
    if found is not None and not abandon:
        raise DualrunError(
            f"batch mark --begin: a bracket is open already, begun at {found.at.isoformat(timespec='seconds')} "
            f"(position {found.position}); run `dualrun batch mark --end` once its job ended, or "
            "`dualrun batch mark --begin --abandon` to discard it and begin anew"
        )
    offsets = change_offsets(spec)
    mark = Mark("begin", current_position(spec), datetime.now(UTC), offsets)
    _write_json(_marks_dir(spec) / "begin.json", mark.to_dict())
    return mark


def mark_end(spec: PipelineSpec) -> tuple[BatchRun, Bracket]:
    """Record P_hi after the job ended, import its outputs and record the batch run at P_hi.
    DualrunError when no `--begin` was recorded; SpecError when an output cannot be imported."""
    begin = open_mark(spec)
    if begin is None:
        raise DualrunError("batch mark --end: no bracket was begun; run `dualrun batch mark --begin` before the job")
    refuse_stale(spec, begin.at)
    end = Mark("end", current_position(spec), datetime.now(UTC))
    if end.position < begin.position:
        raise DualrunError(f"batch mark --end: the source position went back ({begin.position} -> {end.position})")
    tables = import_outputs(spec)
    run = BatchRun(
        run_id=begin.at.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6],
        started_at=begin.at, finished_at=end.at, position=end.position,
        rows={name: t.num_rows for name, t in tables.items()},
    )  # fmt: skip
    write_run(spec.warehouse_path, run, tables)
    bracket = Bracket(run.run_id, begin, end)
    _write_json(_marks_dir(spec) / "runs" / f"{run.run_id}.json", bracket.to_dict())
    (_marks_dir(spec) / "begin.json").unlink()
    return run, bracket


def load_bracket(spec: PipelineSpec, run_id: str) -> Bracket | None:
    """The bracket of a batch run an external job recorded; None for a run dualrun read itself."""
    path = _marks_dir(spec) / "runs" / f"{run_id}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return Bracket(data["run_id"], Mark.from_dict(data["begin"]), Mark.from_dict(data["end"]))


def _abandon(spec: PipelineSpec) -> None:
    (_marks_dir(spec) / "begin.json").unlink(missing_ok=True)


def run_external(spec: PipelineSpec, command: Sequence[str]) -> tuple[int, BatchRun | None, Bracket | None]:
    """Run the user's `command` between the two marks: (its exit code, the run, its bracket); no run
    is recorded when the command fails (its output may be half written)."""
    if not command:
        raise DualrunError("run batch --external: give the job's command after --, e.g. -- ./nightly.sh")
    mark_begin(spec)
    try:
        code = subprocess.call(list(command))
    except OSError as exc:
        _abandon(spec)
        raise DualrunError(f"run batch --external: cannot run {command[0]!r}: {exc.strerror}") from None
    if code != 0:
        _abandon(spec)  # no run to end: the next `run batch --external` begins a bracket of its own
        return code, None, None
    run, bracket = mark_end(spec)
    return 0, run, bracket
