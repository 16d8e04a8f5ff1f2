"""ManagedProcess.stop: a clean exit on the stop signal, SIGKILL after the timeout, pid file gone."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

from migrate.process import ManagedProcess

# A child that ends on SIGTERM, or ignores it when told to; its argv carries the marker. It says
# "ready" once its handler is in place, so the test never signals it before.
CHILD = (
    "import signal, sys, time\n"
    "if sys.argv[1] == 'stubborn': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)"
)


def managed(tmp_path: Path, mode: str) -> ManagedProcess:
    marker = f"dualrun-test-{uuid.uuid4().hex}"
    process = ManagedProcess("child", tmp_path / "child.pid", tmp_path / "child.log", marker)
    process.start([sys.executable, "-c", CHILD, mode, marker])
    deadline = time.monotonic() + 10
    while "ready" not in process.log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.running()
    return process


def test_stop_ends_a_process_that_honours_the_stop_signal(tmp_path: Path) -> None:
    process = managed(tmp_path, "polite")
    assert process.stop(timeout=10)
    assert not process.running() and not process.pid_file.exists()
    assert not process.stop()  # nothing left to stop


def test_stop_kills_a_process_that_ignores_the_stop_signal_after_the_timeout(tmp_path: Path) -> None:
    process = managed(tmp_path, "stubborn")
    started = time.monotonic()
    assert process.stop(timeout=0.5)
    assert time.monotonic() - started >= 0.5  # it outlived the stop signal: SIGKILL ended it
    assert not process.running() and not process.pid_file.exists()


def test_cmdline_is_the_running_processs_arguments_and_none_once_stopped(tmp_path: Path) -> None:
    """What `start_stream_background` compares with the job it would start, to restart one started
    for another spec instead of reusing it."""
    process = managed(tmp_path, "polite")
    cmdline = process.cmdline()
    assert cmdline is not None and cmdline.strip().endswith(f"polite {process.marker}")
    assert cmdline.strip().startswith(f"{sys.executable} -c ")
    assert process.stop(timeout=10)
    assert process.cmdline() is None
