"""The bracket's marks refuse what would bracket the wrong job: a second begin while one is open,
an output file older than the begin mark. Both before any system is asked (one line, exit 2)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from cdc.position import Position
from migrate.cli import cli
from migrate.marks import Mark, open_mark
from migrate.spec import load_spec
from tests.unit.migrate.spec.test_load import changed, write

BATCH = "outputs.account_balance.batch"
BEGUN = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def open_bracket(tmp_path: Path) -> Path:
    """A spec importing out.csv, with a bracket begun at BEGUN in its state directory."""
    spec_file = write(tmp_path, changed(BATCH, {"import": {"csv": "out.csv"}, "columns": {}}))
    spec = load_spec(spec_file).model_copy(update={"state_dir": str(tmp_path / "state")})
    mark = Mark("begin", Position.binlog_snapshot("mysql-bin.000003", 1234, "0-1-42"), BEGUN, {})
    path = spec.path("bracket") / "begin.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(mark.to_dict()))
    assert open_mark(spec) == mark
    return spec_file


def mark(spec_file: Path, *args: str) -> tuple[int, str]:
    state = str(spec_file.parent / "state")
    result = CliRunner().invoke(cli, ["batch", "mark", "--spec", str(spec_file), "--state-dir", state, *args])
    return result.exit_code, result.output


def test_a_second_begin_is_refused_naming_the_open_mark(tmp_path: Path) -> None:
    spec_file = open_bracket(tmp_path)
    code, out = mark(spec_file, "--begin")
    assert code == 2, out
    assert out.strip().count("\n") == 0
    assert "a bracket is open already, begun at 2026-12-01T02:00:00+00:00" in out
    assert "mysql-bin.000003:1234" in out and "batch mark --end" in out and "--begin --abandon" in out
    # The open mark is kept: the job it brackets can still be ended.
    assert (tmp_path / "state" / "bracket" / "begin.json").exists()


def test_abandon_goes_with_begin_only(tmp_path: Path) -> None:
    code, out = mark(open_bracket(tmp_path), "--end", "--abandon")
    assert code == 2 and "--abandon goes with --begin" in out and out.strip().count("\n") == 0


def test_end_refuses_an_output_file_older_than_the_begin_mark(tmp_path: Path) -> None:
    spec_file = open_bracket(tmp_path)
    out_csv = tmp_path / "out.csv"
    out_csv.write_text("account_id,balance\n1,0.10\n")
    last_night = (BEGUN - timedelta(hours=20)).timestamp()
    os.utime(out_csv, (last_night, last_night))
    code, out = mark(spec_file, "--end")
    assert code == 2, out
    assert out.strip().count("\n") == 0
    assert f"{BATCH}.import: {out_csv} was last written at 2026-11-30T06:00:00+00:00, before the bracket" in out
    assert "began at 2026-12-01T02:00:00+00:00" in out and "run the job, then `dualrun batch mark --end`" in out
    assert (tmp_path / "state" / "bracket" / "begin.json").exists()  # still open for the real output


def test_an_output_file_written_inside_the_bracket_is_not_refused(tmp_path: Path) -> None:
    from migrate.intake import refuse_stale

    spec_file = open_bracket(tmp_path)
    (tmp_path / "out.csv").write_text("account_id,balance\n1,0.10\n")  # written now, after BEGUN
    refuse_stale(load_spec(spec_file), BEGUN)  # no error
