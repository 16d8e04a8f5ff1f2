"""`dualrun demo`, the README's main command, end to end on the real stack, as a user runs it."""

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

ROOT = Path(__file__).parents[3]


@pytest.fixture
def demo_home(stack: StackConfig) -> Iterator[Path]:
    """The demo keeps its state beside the stack's (it starts the stack from its state dir)."""
    yield stack.state_dir
    for job in stream_jobs(stack.state_dir):
        job.stop(timeout=60)


def test_the_demo_runs_both_pipelines_and_ends_clean_with_both_noise_baselines(demo_home: Path, tmp_path: Path) -> None:
    # From another directory, as after `pip install`: the reference spec ships inside the package.
    done = subprocess.run(
        [sys.executable, "-m", "migrate.cli", "demo", "--state-dir", str(demo_home), "--events", "600",
         "--rate", "300", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    reconciliation = result["reconciliation"]
    assert reconciliation["verdict"] == "clean", reconciliation
    for name, output in reconciliation["outputs"].items():
        assert output["verdict"] == "clean", name
        assert set(output["baselines"]) == {"batch vs batch rerun", "stream vs stream replay"}, name
    assert "starting the stream replay" in done.stderr
    report = demo_home / "report.html"
    assert report.exists() and "stream vs stream replay" in report.read_text()
    # Both streaming jobs keep running for exploration until `dualrun stack down`.
    assert len([job for job in stream_jobs(demo_home) if job.running()]) == 2


def test_stream_jobs_are_found_and_stopped_by_state_dir(tmp_path: Path) -> None:
    """What `dualrun stack down` uses: pid files under <state>/stream whose process names the state dir."""
    home = tmp_path / "state"
    (home / "stream").mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "--state-dir", str(home)])
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (home / "stream" / "mine.pid").write_text(str(sleeper.pid))
        (home / "stream" / "not-mine.pid").write_text(str(stranger.pid))  # a reused pid: not ours
        jobs = stream_jobs(home)
        assert [job.running() for job in jobs] == [True, False]
        assert [job.stop(timeout=10) for job in jobs] == [True, False]
        assert sleeper.wait(10) is not None and stranger.poll() is None
    finally:
        sleeper.kill()
        stranger.kill()
