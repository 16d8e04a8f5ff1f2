"""rollback_ready's batch side for an external job's imported outputs: the last bracketed run and
what each output imports, never the batch SQL dualrun does not run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from cdc.position import Position
from migrate.batch import BatchRun, write_run
from migrate.checklist import Context
from migrate.checklist.rollback import _last_run
from migrate.marks import Bracket, Mark, _marks_dir
from migrate.spec import load_spec
from tests.unit.migrate.spec.test_load import changed, write

BATCH = "outputs.account_balance.batch"
AT = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def _spec_file(tmp_path: Path, batch: dict[str, Any] | None) -> Path:
    """The ledger spec, its state under tmp_path; `batch`: the output's import (None: its SQL)."""
    data = changed(BATCH, {"import": batch}) if batch is not None else changed("name", "ledger")
    return write(tmp_path, {**data, "state_dir": str(tmp_path / "state")})


def _run(spec_path: Path, run_id: str, bracketed: bool) -> Context:
    spec = load_spec(spec_path)
    end = Position.binlog_snapshot("mysql-bin.000003", 870, gtid="0-1-870")
    run = BatchRun(run_id=run_id, started_at=AT, finished_at=AT, position=end, rows={"account_balance": 1})
    write_run(spec.warehouse_path, run, {"account_balance": pa.table({"account_id": [1], "balance": ["0.10"]})})
    if bracketed:
        begin = Mark("begin", Position.binlog_snapshot("mysql-bin.000003", 850, gtid="0-1-850"), AT)
        runs = _marks_dir(spec) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        (runs / f"{run_id}.json").write_text(json.dumps(Bracket(run_id, begin, Mark("end", end, AT)).to_dict()))
    return Context(spec)


def test_an_imported_output_names_its_import_and_the_last_bracketed_run(tmp_path: Path) -> None:
    spec_path = _spec_file(tmp_path, {"parquet": "out.parquet"})
    missing = f"no batch run recorded in {tmp_path / 'state' / 'warehouse.duckdb'}"
    assert _last_run(Context(load_spec(spec_path))) == ([], [missing])
    facts, problems = _last_run(_run(spec_path, "20261130T020000-ab12cd", bracketed=True))
    assert problems == []
    assert facts[0].startswith("last bracketed run 20261130T020000-ab12cd (") and " .. " in facts[0]
    assert facts[1] == f"account_balance imported from Parquet {tmp_path / 'out.parquet'}"


def test_an_imported_output_whose_last_run_was_not_bracketed_fails(tmp_path: Path) -> None:
    spec_path = _spec_file(tmp_path, {"csv": "out.csv"})
    facts, problems = _last_run(_run(spec_path, "20261130T020000-ef34ab", bracketed=False))
    assert facts == [f"account_balance imported from CSV {tmp_path / 'out.csv'}"]
    assert problems == [
        "the last batch run 20261130T020000-ef34ab was not bracketed by `batch mark`; run the external job with "
        "`dualrun run batch --external -- COMMAND`"
    ]


def test_a_batch_dualrun_runs_itself_reports_its_last_run(tmp_path: Path) -> None:
    spec_path = _spec_file(tmp_path, None)
    assert _last_run(_run(spec_path, "20261130T020000-0a0b0c", bracketed=False)) == (
        ["last batch run 20261130T020000-0a0b0c"],
        [],
    )
