"""Issue 13 trial findings on the bracketed external batch, on the real stack: the marks refuse what
would bracket the wrong job, `batch check` and `reconcile --spec` agree on the exit code of a
stream behind, and an incomplete lineage is caught by the self-check as a spec error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from migrate.bracket import check_bracket
from migrate.errors import DualrunError, SpecError
from migrate.marks import change_offsets, open_mark, run_external
from migrate.spec import PipelineSpec
from tests.integration.migrate.conftest import JobThread, workload_for
from tests.integration.migrate.test_bracket import bracketed, job_command, under_load

pytestmark = pytest.mark.integration


def spec_file(spec: PipelineSpec, tmp_path: Path) -> Path:
    path = tmp_path / "bracket.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True)))
    return path


def seeded(pipeline: PipelineSpec, tmp_path: Path) -> PipelineSpec:
    """The bracketed pipeline, its source seeded and its change topics created by Debezium."""
    os.environ.setdefault("DUALRUN_DB_PASSWORD", pipeline.source.password())
    spec = bracketed(pipeline, tmp_path / "out")
    workload_for(spec)
    deadline = time.monotonic() + 120
    while True:
        try:
            change_offsets(spec, timeout=5)
            return spec
        except DualrunError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrate.cli", *args], capture_output=True, text=True)


def test_marks_refuse_a_second_begin_and_a_stale_output_and_a_failed_job_leaves_none_open(
    pipeline: PipelineSpec, tmp_path: Path
) -> None:
    spec = seeded(pipeline, tmp_path)
    path = spec_file(spec, tmp_path)
    # Last night's outputs, already there before tonight's bracket.
    subprocess.run(job_command(spec, tmp_path / "out"), check=True)
    begun = cli("batch", "mark", "--spec", str(path), "--begin")
    assert begun.returncode == 0, begun.stderr
    again = cli("batch", "mark", "--spec", str(path), "--begin")
    assert again.returncode == 2 and again.stdout == "", again
    [line] = again.stderr.strip().splitlines()
    mark = open_mark(spec)
    assert mark is not None and str(mark.position) in line and "a bracket is open already" in line
    assert "`dualrun batch mark --end`" in line and "--begin --abandon" in line
    stale = cli("batch", "mark", "--spec", str(path), "--end")  # the job did not run tonight
    assert stale.returncode == 2, stale
    [line] = stale.stderr.strip().splitlines()
    assert ".parquet was last written at" in line and "before the bracket began" in line
    assert open_mark(spec) == mark  # still open: run the job, then --end
    abandoned = cli("batch", "mark", "--spec", str(path), "--begin", "--abandon")
    assert abandoned.returncode == 0, abandoned.stderr
    assert (
        f"discarded the open bracket begun at {mark.at.isoformat(timespec='seconds')} (position {mark.position})"
        in (abandoned.stderr)
    )
    assert open_mark(spec) is not None and open_mark(spec) != mark
    subprocess.run(job_command(spec, tmp_path / "out"), check=True)  # tonight's job
    ended = cli("batch", "mark", "--spec", str(path), "--end")
    assert ended.returncode == 0 and open_mark(spec) is None, ended.stderr
    # `run batch --external` with a failing job records no run and leaves no bracket open.
    code, run, _ = run_external(spec, [sys.executable, "-c", "raise SystemExit(3)"])
    assert (code, run, open_mark(spec)) == (3, None, None)


def test_batch_check_and_reconcile_agree_when_the_stream_is_behind(pipeline: PipelineSpec, tmp_path: Path) -> None:
    spec = seeded(pipeline, tmp_path)
    path = spec_file(spec, tmp_path)
    code, run, _ = run_external(spec, job_command(spec, tmp_path / "out"))  # no streaming job runs
    assert code == 0 and run is not None
    checked = cli("batch", "check", "--spec", str(path), "--wait", "2")
    reconciled = cli("reconcile", "--spec", str(path), "--wait", "2")
    assert (checked.returncode, reconciled.returncode) == (1, 1), (checked, reconciled)
    assert checked.stdout.startswith("STREAM BEHIND: batch run") and "not compared:" in checked.stdout
    assert "by 0 events" not in checked.stdout + reconciled.stdout
    report = tmp_path / "check.json"
    written = cli("batch", "check", "--spec", str(path), "--wait", "2", "--json", "--output", str(report))
    assert written.returncode == 1 and written.stdout == "", written
    assert written.stderr.strip() == f"stream behind: report written to {report}"
    assert json.loads(report.read_text())["verdict"] == "stream behind"


def test_an_incomplete_lineage_is_a_spec_error_found_by_the_self_check(
    pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread], tmp_path: Path
) -> None:
    """orders_enriched carries its customer's tier: a customer change inside the bracket rewrites its
    orders, which a lineage naming only orders does not predict."""
    os.environ.setdefault("DUALRUN_DB_PASSWORD", pipeline.source.password())
    spec = bracketed(pipeline, tmp_path / "out")
    enriched = spec.outputs["orders_enriched"]
    partial = {t: m for t, m in enriched.lineage.items() if t.endswith(".orders")}
    outputs = {**spec.outputs, "orders_enriched": enriched.model_copy(update={"lineage": partial})}
    spec = spec.model_copy(update={"outputs": outputs})
    jobs(spec)
    code, run, _ = under_load(spec, lambda: run_external(spec, job_command(spec, tmp_path / "out")))
    assert code == 0 and run is not None
    with pytest.raises(SpecError) as raised:
        check_bracket(spec, run.run_id, wait=120)
    message = str(raised.value)
    assert message.startswith("outputs.orders_enriched.lineage: the lineage is incomplete: "), message
    assert "e.g. order_id=" in message and "\n" not in message
    checked = cli("batch", "check", "--spec", str(spec_file(spec, tmp_path)), "--wait", "120")
    assert checked.returncode == 2 and "the lineage is incomplete" in checked.stderr, checked
