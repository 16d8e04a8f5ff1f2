"""Has dualrun's own streaming job committed past a source position? Its status file and Debezium's
committed offsets say, with the evidence ("stream behind by N events / S seconds")."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from cdc.errors import CdcError
from cdc.position import Position, parse_gtid_set
from migrate.spec import PipelineSpec
from migrate.stream.status import StreamStatus, read_status


@dataclass(frozen=True)
class StreamProgress:
    """Whether the stream's committed output has passed a position, with the evidence."""

    reached: bool
    target: Position
    last_position: Position | None
    lag_events: int | None
    behind_seconds: float | None
    state: str | None

    def describe(self) -> str:
        if self.reached:
            return f"stream has committed every change up to {self.target}"
        if self.state is None:
            return "the streaming job has never run for this state directory; start it with `dualrun run stream`"
        # The job's lag counts events already in Kafka it has not committed; 0 says the rest has not
        # reached Kafka yet (Debezium behind), a count nobody knows: said so, never "by 0 events".
        seconds = f"{self.behind_seconds:.1f} s" if self.behind_seconds is not None else None
        if self.lag_events:
            by = f" by {self.lag_events:,} event(s)" + (f" / {seconds}" if seconds else "")
        elif self.lag_events == 0:
            by = ": the job has consumed every change in Kafka; Debezium has not published the rest yet"
        else:
            by = f" by {seconds}" if seconds else ""
        last = self.last_position or "none"
        return f"stream behind the batch position {self.target}{by} (job {self.state}, last committed position {last})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reached": self.reached, "target": self.target.to_dict(),
            "last_position": self.last_position.to_dict() if self.last_position else None,
            "lag_events": self.lag_events, "behind_seconds": self.behind_seconds, "state": self.state,
        }  # fmt: skip


def _position(data: dict[str, Any] | None) -> Position | None:
    if not data or data.get("kind") not in ("binlog", "lsn"):
        return None
    return Position.from_dict(data)


def _transaction_covers(last_transaction: str | None, target: Position) -> bool:
    """Transactions are released in commit order, so once the job committed the END of the
    transaction that `target` ends with (or a later one), everything up to `target` is in."""
    if last_transaction is None or not target.gtid:
        return False
    try:
        wanted = parse_gtid_set(target.gtid)
        done = parse_gtid_set(last_transaction)
    except CdcError:
        return False  # not a MariaDB GTID (MySQL uuid:n, PostgreSQL txId)
    return len(wanted) == 1 and all(done.get(domain, -1) >= seq for domain, seq in wanted.items())


def stream_progress(spec: PipelineSpec, target: Position, status: StreamStatus | None) -> StreamProgress:
    if status is None:
        return StreamProgress(False, target, None, None, None, None)
    last = _position(status.last_position)
    reached = (last is not None and last > target) or _transaction_covers(status.last_transaction, target)
    behind = None
    if not reached and status.last_event_ts_ms is not None:
        behind = max(0.0, time.time() - status.last_event_ts_ms / 1000)
    return StreamProgress(reached, target, last, status.lag, behind, status.state)


def debezium_passed(spec: PipelineSpec, target: Position) -> bool:
    """Debezium's committed source offset is at or past `target`: every change before it is in Kafka.

    Connect commits a source offset only after the records before it were acknowledged, and
    heartbeats move the offset along an idle or unrelated binlog.
    """
    if target.kind == "lsn":  # PostgreSQL: past the commit the stream cut ends with (migrate.pgsource)
        from migrate.pgsource import committed_lsn

        lsn = committed_lsn(spec)
        return lsn is not None and lsn > target.major
    secret = spec.cdc.known_password()  # only masked in messages: reading offsets needs no login
    client = spec.cdc.connect_client(retries=1, secrets=(secret,) if secret else ())
    try:
        offsets = client.offsets(spec.cdc.connector)
    except CdcError:
        return False
    for entry in offsets:
        offset = entry.get("offset", {})
        if offset.get("file") is None or offset.get("pos") is None:
            continue
        at = Position.binlog(str(offset["file"]), int(offset["pos"]))
        if (at.major, at.minor) >= (target.major, target.minor):
            return True
    return False


def wait_for_stream(spec: PipelineSpec, target: Position, timeout: float) -> StreamProgress:
    """Poll until the stream's committed output covers `target`, up to `timeout`.

    Covered means: the job committed a change after `target`, or (on a quiet source)
    Debezium's offset passed `target` and afterwards the job reported no uncommitted input.
    """
    deadline = time.monotonic() + timeout
    passed_at: float | None = None
    while True:
        status = read_status(spec)
        progress = stream_progress(spec, target, status)
        if progress.reached:
            return progress
        if passed_at is None and debezium_passed(spec, target):
            passed_at = time.time()
        if (
            passed_at is not None
            and status is not None
            and status.lag == 0
            and ((status.lag_measured_at or status.updated_at) > passed_at)
        ):
            return replace(progress, reached=True)
        if time.monotonic() >= deadline:
            return progress
        time.sleep(0.25)
