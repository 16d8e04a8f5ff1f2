"""Keeps a streaming job running: starts it, and starts it again after it exits on an error.

`dualrun run stream --background` runs this loop detached (its pid is the job's pid file);
the job itself is a child process. The job exits non-zero only on a fatal Kafka error
(fenced, misconfigured) or a bug; everything transient it retries itself (see
`migrate.stream.kafka`). After a non-zero exit the supervisor waits (exponential backoff,
1 s doubling to 60 s) and starts it again, counting restarts in the job's status. Restarts
that make no progress (no transaction committed in between) are a crash loop: after
`CRASH_LOOP_AFTER` of them the status says `crash_loop` with the last error, which the
checklist fails on; the supervisor keeps trying at the longest backoff, since the cause
(a broker away for long, a revoked ACL) may be fixed without it.

A zero exit (the job was asked to stop) ends the supervisor, and so does exit code 78
(`PERMANENT_CONFIG_EXIT`, EX_CONFIG), a config error no restart mends (an output topic in the other
JSON format: `restore.RestoreFormatError`). Exit code 2 is restarted: it is every error root's
default (a revocable `KafkaAccessError` among them) and click's usage error;
SIGTERM to the supervisor is passed on to the job, which commits what it holds and exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.errors import PERMANENT_CONFIG_EXIT
from migrate.spec import PipelineSpec
from migrate.stream.status import StreamStatus, read_status, write_status

RESTARTS_ENV = "DUALRUN_STREAM_RESTARTS"  # the job puts it in its status
SUPERVISOR_ENV = "DUALRUN_STREAM_SUPERVISOR"  # the supervisor's pid: the job may run under its pid file
PR_SET_PDEATHSIG = 1
CRASH_LOOP_AFTER = 5  # restarts in a row without a committed transaction


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff between restarts, in seconds: first, doubling up to `max_s`; reset after progress."""

    first_s: float = 1.0
    max_s: float = 60.0
    crash_loop_after: int = CRASH_LOOP_AFTER
    stop_timeout_s: float = 60.0  # a job asked to stop gets this long before SIGKILL

    def delay(self, failures: int) -> float:
        """Seconds to wait before the restart that follows `failures` exits in a row without progress.

        >>> [RestartPolicy().delay(n) for n in range(1, 9)]
        [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
        """
        return float(min(self.max_s, self.first_s * 2 ** max(0, failures - 1)))


def last_line(log: Path | None, limit: int = 300) -> str | None:
    """The last non-empty line of the job's log: its one-line reason for exiting."""
    if log is None:
        return None
    try:
        with log.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            lines = [line.strip() for line in fh.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1][-limit:] if lines else None


def _end_with_parent() -> None:
    """In the job, before exec: SIGTERM when the supervisor dies (even by SIGKILL), so a job is never
    left running unsupervised beside the one a new supervisor starts (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Runs `argv` (the job) until it exits 0 or the supervisor is told to stop."""

    def __init__(
        self,
        spec: PipelineSpec,
        argv: Sequence[str],
        *,
        policy: RestartPolicy = RestartPolicy(),
        log: Path | None = None,
    ) -> None:
        self.spec = spec
        self.argv = list(argv)
        self.policy = policy
        self.log = log
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.failures = 0  # exits in a row without a committed transaction

    def stop(self, *_: Any) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """The supervision loop; returns the exit code for the supervisor process itself."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        while True:
            started = time.time()
            env = {**os.environ, RESTARTS_ENV: str(self.restarts), SUPERVISOR_ENV: str(os.getpid())}
            self.child = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, preexec_fn=_end_with_parent)
            code = self._wait()
            if self.stopping or code == 0:
                return 0 if code in (0, -signal.SIGTERM) else code
            if code == PERMANENT_CONFIG_EXIT:  # the spec and what Kafka holds disagree: a restart cannot mend it
                self._report(code, started, None)
                return code
            progressed = self._progressed(started)
            self.failures = 0 if progressed else self.failures + 1
            self.restarts += 1
            delay = self.policy.delay(max(1, self.failures))
            self._report(code, started, delay)
            deadline = time.monotonic() + delay
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.stopping:
                return 0

    def _wait(self) -> int:
        assert self.child is not None
        while True:
            try:
                return self.child.wait()
            except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled by stop()
                continue

    def _progressed(self, since: float) -> bool:
        status = read_status(self.spec)
        return status is not None and status.committed_at is not None and status.committed_at >= since

    def _report(self, code: int, started: float, delay: float | None) -> None:
        """Say in the job's status that it exited, why, and what happens next (None: nothing, it stays failed)."""
        assert self.child is not None
        status = read_status(self.spec)
        ours = status is not None and status.pid == self.child.pid
        reason = status.error if ours and status is not None and status.error else last_line(self.log)
        crash_loop = self.failures >= self.policy.crash_loop_after
        what = (
            f"exited with code {code} (a config error), not restarted"
            if delay is None
            else f"crash loop: {self.failures} restarts without progress"
            if crash_loop
            else f"exited with code {code}, restart {self.restarts} in {delay:.0f}s"
        )
        now = time.time()
        eos = self.spec.stream.exactly_once
        fresh = StreamStatus(pid=self.child.pid, state="failed", updated_at=now, started_at=started, exactly_once=eos)
        base = status if ours and status is not None else fresh
        write_status(
            self.spec,
            dataclasses.replace(
                base,
                state="failed" if delay is None else "crash_loop" if crash_loop else "restarting",
                updated_at=now,
                error=f"{what}; last error: {reason or 'none reported'}",
                restarts=self.restarts,
                supervisor_pid=os.getpid(),
            ),
        )
