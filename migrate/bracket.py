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
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from cdc.position import Position
from comparators.errors import SourceError
from comparators.sources import CsvSource, ParquetSource, SqlSource
from comparators.sql import describe
from migrate.batch import BatchRun, translate, write_run
from migrate.errors import DualrunError, SpecError
from migrate.sourcedb import source_url
from migrate.spec import PipelineSpec
from migrate.spec.columns import arrow_type
from migrate.spec.model import BatchImportSpec

MARKS = ("begin", "end")


@dataclass(frozen=True)
class Mark:
    """One end of the bracket: the source position and when it was taken."""

    which: str  # "begin" or "end"
    position: Position
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"which": self.which, "position": self.position.to_dict(), "at": self.at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Mark:
        pos = data["position"]
        position = Position.binlog_snapshot(pos["file"], int(pos["pos"]), pos.get("gtid"))
        return cls(data["which"], position, datetime.fromisoformat(data["at"]))


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


def mark_begin(spec: PipelineSpec) -> Mark:
    """Record P_lo, before the external job starts (replaces an unfinished earlier bracket)."""
    mark = Mark("begin", current_position(spec), datetime.now(UTC))
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
            raise SpecError(f"{field}: cannot read {source.label}: {str(exc).splitlines()[0]}") from None
    for name, text in out.batch.columns.items():
        i = table.schema.get_field_index(name)
        try:
            table = table.set_column(i, name, table.column(name).cast(arrow_type(text), safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SpecError(f"{field}: column {name} does not fit {text}: {str(exc).splitlines()[0]}") from None
    return table
