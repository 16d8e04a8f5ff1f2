"""The running streaming job's self-report, a small JSON file other commands read.

The job rewrites `<state_dir>/stream/<group>.status.json` atomically after every committed
transaction (and at least every few seconds when idle). The checklist and the
demo read it; they never talk to the job directly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from migrate.spec import PipelineSpec


@dataclass(frozen=True)
class StreamStatus:
    """What the job says about itself; `updated_at` is epoch seconds of the last rewrite."""

    pid: int
    # "running"; "retrying" (Kafka unavailable, the job waits and retries); "stopped" (clean shutdown);
    # "failed" (the job exited on a fatal error); written by the supervisor: "restarting" (it starts
    # the job again after a backoff) and "crash_loop" (restarted again and again without progress).
    state: str
    updated_at: float
    started_at: float
    exactly_once: bool
    producer: dict[str, str] = field(default_factory=dict)  # effective settings, no secrets
    consumer: dict[str, str] = field(default_factory=dict)
    events_in: int = 0
    events_out: int = 0
    dead_letters: int = 0
    transactions: int = 0
    stalled_transactions: int = 0  # released incomplete after waiting (see migrate.stream.ordering)
    last_event_ts_ms: int | None = None  # source ts of the newest event processed
    last_position: dict[str, Any] | None = None  # cdc Position.to_dict() of the newest event
    last_transaction: str | None = None  # id (MariaDB: GTID) of the newest source transaction fully committed
    events_per_second: float = 0.0
    idle_share: float | None = None  # of the last ~10 s spent waiting for input: near 0 means the job is behind
    lag: int | None = None  # records not yet consumed on the input topics
    lag_measured_at: float | None = None  # epoch seconds: the lag is measured every few seconds, not per write
    error: str | None = None
    pipeline: str | None = None  # the spec's stream.pipeline the job runs ("pkg.module:ATTR")
    heartbeat_at: float | None = None  # epoch seconds of the main loop's last turn (also while retrying)
    committed_at: float | None = None  # epoch seconds of the last committed transaction
    restarts: int = 0  # times the supervisor started this job again after it exited
    supervisor_pid: int | None = None  # the `run stream --background` process that restarts the job

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def status_path(spec: PipelineSpec) -> Path:
    """One file per consumer group, so a second job (e.g. a demo defect) keeps its own."""
    return spec.path("stream") / f"{spec.stream.group}.status.json"


def write_status(spec: PipelineSpec, status: StreamStatus) -> None:
    path = status_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status.to_dict(), default=str))
    os.replace(tmp, path)  # readers never see a half-written file


def read_status(spec: PipelineSpec) -> StreamStatus | None:
    """The last self-report, or None if the job never ran with this state directory."""
    try:
        data = json.loads(status_path(spec).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    known = {f.name for f in fields(StreamStatus)}
    return StreamStatus(**{k: v for k, v in data.items() if k in known})  # a newer or older job's extra fields
