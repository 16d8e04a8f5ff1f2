"""`dualrun demo --stream kafka-streams` end to end, as a user runs it: the Kafka Streams job as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.commands.run import stream_jobs
from migrate.stackconfig import StackConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def demo_home(stack: StackConfig) -> Iterator[Path]:
    """The demo keeps its state beside the stack's (it starts the stack from its state dir)."""
    yield stack.state_dir
    for job in stream_jobs(stack.state_dir):
        job.stop(timeout=60)


def demo(home: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migrate.cli", "demo", "--stream", "kafka-streams", "--state-dir", str(home),
         "--events", "600", "--rate", "300", "--json", *extra],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_kafka_streams_demo_ends_clean_and_its_defect_run_finds_the_defect(demo_home: Path, tmp_path: Path) -> None:
    # From another directory, as after `pip install`: the job's sources and spec ship inside the package.
    clean = demo(demo_home, tmp_path)
    assert clean.returncode == 0, clean.stderr[-2000:]
    result = json.loads(clean.stdout)["reconciliation"]
    assert result["verdict"] == "clean", result
    assert set(result["outputs"]) == {"orders_enriched", "order_alerts", "daily_revenue"}
    assert all(output["left_rows"] > 0 for output in result["outputs"].values())
    assert "starting the stream replay" not in clean.stderr  # a job dualrun did not write has no replay twin
    assert (demo_home / "stream" / "kstreams-order-enricher.log").exists()

    wrong = demo(demo_home, tmp_path, "--inject-defect", "tier-boundary")
    assert wrong.returncode == 1, wrong.stderr[-2000:]
    outputs = json.loads(wrong.stdout)["reconciliation"]["outputs"]
    enriched = outputs["orders_enriched"]
    assert {c for c, n in enriched["causes"].items() if n} == {"value_mismatch"}
    assert {c for c, col in enriched["columns"].items() if col["mismatches"]} == {"loyalty_tier"}
    assert outputs["order_alerts"]["verdict"] == outputs["daily_revenue"]["verdict"] == "clean"


def test_a_defect_of_the_other_stream_is_refused_in_one_line(demo_home: Path, tmp_path: Path) -> None:
    refused = demo(demo_home, tmp_path, "--inject-defect", "double-count-updates")
    assert refused.returncode == 2
    assert "not a defect of the kafka-streams stream; choose one of drop-deletes" in refused.stderr
    assert "Traceback" not in refused.stderr
