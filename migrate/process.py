"""Background service processes owned by one state directory.

Each service gets a pid file and a log file. A pid file alone is never trusted:
the process must still exist and its command line must mention the state
directory, so `down` can never kill an unrelated process that reused the pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from migrate.errors import StackError

T = TypeVar("T")


@dataclass(frozen=True)
class RunAs:
    """An unprivileged account a service runs as when dualrun itself runs as root."""

    name: str
    uid: int
    gid: int

    def popen_args(self) -> dict[str, Any]:
        # Group and supplementary groups too: setuid alone would keep root's groups.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _live_cmdline(pid: int, settle: float = 2.0) -> str | None:
    """The command line of a live (not zombie) process, else None. Raises OSError if there is no such pid.

    exec closes close-on-exec descriptors (which is when Popen returns) before it
    sets up the new argv, and an exiting process drops its argv before it turns
    zombie: both briefly read as "", so an empty command line is polled, not trusted.
    """
    deadline = time.monotonic() + settle
    while True:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return None
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        if raw or time.monotonic() >= deadline:
            return raw.replace(b"\0", b" ").decode(errors="replace")
        time.sleep(0.01)


@dataclass(frozen=True)
class ManagedProcess:
    """A long-running service process with its pid file and log under the state directory."""

    name: str
    pid_file: Path
    log_file: Path
    marker: str  # a string that must appear in the process's command line
    stop_signal: signal.Signals = signal.SIGTERM  # the service's "shut down cleanly and quickly"

    def pid(self) -> int | None:
        """The pid of the running process this state directory started, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = _live_cmdline(pid)
        except OSError:
            return None
        # A zombie still has a /proc entry but is not a running service.
        return pid if cmdline is not None and self.marker in cmdline else None

    def running(self) -> bool:
        return self.pid() is not None

    def cmdline(self) -> str | None:
        """The running process's command line (arguments joined by spaces), else None."""
        pid = self.pid()
        try:
            return None if pid is None else _live_cmdline(pid)
        except OSError:
            return None

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        run_as: RunAs | None = None,
    ) -> int:
        """Start the process detached from this one, appending its output to the log file."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # survives the CLI's exit and its Ctrl-C
                # Dropped in the child before exec, so the pid is the service's own (no su/runuser
                # parent that would SIGKILL it two seconds after forwarding a SIGTERM).
                **(run_as.popen_args() if run_as else {}),
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        # Until exec() completes, /proc shows our own command line, not the service's.
        deadline = time.monotonic() + 10
        while self.pid() is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return proc.pid

    def stop(self, timeout: float = 30.0) -> bool:
        """The stop signal, wait for a clean exit, SIGKILL after the timeout. True if something stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, self.stop_signal)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.1)
        if not self.kill():  # kill() SIGKILLs what is still running and removes the pid file
            self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL at once, no clean shutdown (a crash, for fault tests). True if something was killed."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        while self.pid() is not None:
            _reap(pid)
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail)


def _reap(pid: int) -> None:
    # Our own children become zombies until waited for; others are not ours to wait on.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    process: ManagedProcess | None = None,
    interval: float = 0.25,
) -> T:
    """Poll `probe` until it returns a value, the process dies, or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if process is not None and not process.running():
            raise StackError(
                f"{process.name} exited while waiting for {what}; last log lines: "
                f"{process.log_tail()} (full log: {process.log_file})"
            )
        if time.monotonic() > deadline:
            where = f"; last log lines: {process.log_tail()} (log: {process.log_file})" if process else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{where}")
        time.sleep(interval)
