"""`dualrun history list`: the run ids `dualrun report --run` takes, newest first, per output."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from click.testing import CliRunner

from comparators import FrameSource, reconcile
from comparators.history import record
from migrate.cli import cli
from migrate.commands.run import spec_for


def test_history_list_shows_recorded_runs_newest_first_and_filters_by_output(tmp_path: Path) -> None:
    spec = spec_for(None, tmp_path)  # the example spec, its history under tmp_path
    output = next(iter(spec.outputs))
    left = FrameSource(pa.table({"id": [1, 2]}), name="batch")
    ids = []
    for day, (name, right) in enumerate([(output, [1, 2]), (output, [1]), ("other", [1, 2])], start=1):
        result = reconcile(left, FrameSource(pa.table({"id": right}), name="stream"), ["id"],
                           name=f"{spec.name}/{name}")  # fmt: skip
        ids.append(record(spec.history_path, result, datetime(2026, 11, day, 3, 0, tzinfo=UTC),
                          batch_run=f"20261101T0200{day:02d}-abc123"))  # fmt: skip

    runner = CliRunner()
    text = runner.invoke(cli, ["history", "list", "--state-dir", str(tmp_path)])
    assert text.exit_code == 0, text.output
    assert text.output.index(ids[2]) < text.output.index(ids[1]) < text.output.index(ids[0])
    assert "2026-11-02 03:00:00" in text.output and "differences" in text.output
    assert "batch run" in text.output.splitlines()[0]
    assert f"{ids[1]}  2026-11-02 03:00:00  20261101T020002-abc123  differences" in text.output

    data = json.loads(runner.invoke(cli, ["history", "list", "--state-dir", str(tmp_path), "--output", output,
                                          "--limit", "1", "--format", "json"]).output)  # fmt: skip
    assert [(r["run_id"], r["batch_run"], r["verdict"], r["unexplained"]) for r in data] == [
        (ids[1], "20261101T020002-abc123", "differences", 1)
    ]


def test_history_list_on_an_empty_history_and_an_unknown_output(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(cli, ["history", "list", "--state-dir", str(tmp_path)])
    assert empty.exit_code == 0 and "no runs recorded in" in empty.output
    wrong = runner.invoke(cli, ["history", "list", "--state-dir", str(tmp_path), "--output", "nope"])
    assert wrong.exit_code == 2 and wrong.output.strip().count("\n") == 0 and "no such output" in wrong.output
