"""Reconcile a batch run with the stream's changelogs as of the batch snapshot's position."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from cdc.connect import ConnectClient
from cdc.errors import CdcError
from cdc.position import Position, parse_gtid_set
from cdc.progress import GroupProgress
from comparators import ChangelogSource, FrameSource, ParquetSource, Reconciliation, Settings, reconcile
from comparators import history as run_history
from comparators.errors import SourceError
from migrate.batch import RERUN, BatchRun, has_output, load_run, run_output
from migrate.errors import DualrunError
from migrate.external import InWriteOrder, OutputCheck, reconcile_external
from migrate.spec import PipelineSpec
from migrate.stream.changelog import META, output_glob
from migrate.stream.status import StreamStatus, read_status
from migrate.stream.tap import TapLog, segment_files, tap_dir


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
        parts = [f"stream behind the batch position {self.target}"]
        if self.lag_events is not None:
            parts.append(f"by {self.lag_events} events")
        if self.behind_seconds is not None:
            parts.append(f"/ {self.behind_seconds:.1f} s")
        return " ".join(parts) + f" (job {self.state}, last committed position {self.last_position or 'none'})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reached": self.reached, "target": self.target.to_dict(),
            "last_position": self.last_position.to_dict() if self.last_position else None,
            "lag_events": self.lag_events, "behind_seconds": self.behind_seconds, "state": self.state,
        }  # fmt: skip


@dataclass(frozen=True)
class SpecReconciliation:
    """One reconciliation of every output of a spec, at one batch run's position."""

    spec_name: str
    run: BatchRun
    progress: StreamProgress | GroupProgress  # GroupProgress: the user's own job (spec.is_external)
    outputs: dict[str, Reconciliation] = field(default_factory=dict)
    history_ids: dict[str, str] = field(default_factory=dict)
    # External outputs: what each stream side allowed (tap findings; why an output was not compared).
    checks: dict[str, OutputCheck] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if not self.progress.reached:
            return "stream_behind"
        if any(r.verdict != "clean" for r in self.outputs.values()):
            return "differences"
        causes = [c.cause for c in self.checks.values() if c.cause is not None]
        if causes:
            # Not comparable as of the batch position: neither clean nor a defect.
            return "no_positions" if "no_positions" in causes else "unreadable"
        return "clean"

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "clean" else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec_name,
            "verdict": self.verdict,
            "batch_run": self.run.to_dict(),
            "stream": self.progress.to_dict(),
            "outputs": {name: r.to_dict() for name, r in self.outputs.items()},
            "history_ids": dict(self.history_ids),
            "checks": {name: c.to_dict() for name, c in self.checks.items()},
        }


def _position(data: dict[str, Any] | None) -> Position | None:
    if not data or data.get("kind") != "binlog":
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
    secret = spec.cdc.known_password()  # only masked in messages: reading offsets needs no login
    client = ConnectClient(spec.cdc.connect_url, retries=1, secrets=(secret,) if secret else ())
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


def stream_side(spec: PipelineSpec, output: str, position: Position, schema: pa.Schema) -> ChangelogSource:
    """The stream's changelog of `output` as of `position`; with no segment yet, an empty changelog
    shaped like the batch output (`schema`) plus the changelog's own columns. For the user's own
    job, what the tap read of the output topic (`migrate.external`)."""
    at = f"{position.file}:{position.minor}"
    root = spec.changelog_path
    taps = segment_files(tap_dir(spec.path("."), spec.stream.group, output)) if spec.is_external else []
    log: Any
    if taps:  # the user's own job's output, as the tap read it, in write order (migrate.external)
        log = InWriteOrder(TapLog(tuple(str(p) for p in taps), name=f"{output} tap"))
    elif not spec.is_external and any((root / output).glob("*.parquet")):
        log = ParquetSource(output_glob(root, output))
    else:
        empty = pa.schema([*schema, *(f for f in META if f.name not in schema.names)])
        log = FrameSource(empty.empty_table(), name=f"{output} changelog (empty)")
    return ChangelogSource(log, at)


def _rerun(spec: PipelineSpec, run: BatchRun, output: str) -> FrameSource | None:
    """The batch job's rerun in the same snapshot, when it made one (the batch noise baseline)."""
    rerun_id = run.run_id + RERUN
    if not has_output(spec.warehouse_path, rerun_id, output):
        return None
    return FrameSource(run_output(spec.warehouse_path, rerun_id, output), name=f"batch {output} rerun")


def _replay_reached(
    spec: PipelineSpec, position: Position, wait: float | None, progress: Callable[[str], None]
) -> PipelineSpec | None:
    """The stream replay's spec when one has run (`dualrun run stream --replay`) and passed the
    position too: its changelog is then the stream's noise baseline. Never a reason to fail."""
    replay = spec.replay()
    if read_status(replay) is None:
        return None
    progress(f"waiting for the stream replay to pass {position}")
    reached = wait_for_stream(replay, position, spec.compare.wait_seconds if wait is None else wait)
    return replay if reached.reached else None


def reconcile_spec(
    spec: PipelineSpec,
    run_id: str = "latest",
    *,
    wait: float | None = None,
    record: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> SpecReconciliation:
    run = load_run(spec.warehouse_path, run_id)
    if spec.is_external:
        timeout = spec.compare.wait_seconds if wait is None else wait
        group, compared, checks, history = reconcile_external(spec, run, wait=timeout, record=record, progress=progress)
        return SpecReconciliation(spec.name, run, group, compared, history, checks)
    progress(f"waiting for the stream to pass {run.position}")
    reached = wait_for_stream(spec, run.position, spec.compare.wait_seconds if wait is None else wait)
    if not reached.reached:
        return SpecReconciliation(spec.name, run, reached)
    replay = _replay_reached(spec, run.position, wait, progress)
    results: dict[str, Reconciliation] = {}
    ids: dict[str, str] = {}
    missing = [output for output in spec.outputs if output not in run.rows]
    if missing:
        raise DualrunError(
            f"batch run {run.run_id} has no output {missing[0]!r} (the spec gained it after that run); "
            "run `dualrun run batch` again, then reconcile"
        )
    for output, out_spec in spec.outputs.items():
        progress(f"reconciling {output}")
        name = f"{spec.name}/{output}"
        batch = run_output(spec.warehouse_path, run.run_id, output)
        for attempt in range(3):
            try:
                result = reconcile(
                    FrameSource(batch, name=f"batch {output} {run.run_id}"),
                    stream_side(spec, output, run.position, batch.schema),
                    list(out_spec.keys),
                    rules=dict(out_spec.tolerances) or None,
                    ignore=out_spec.ignore,
                    partition=out_spec.partition,
                    left_position=str(run.position),
                    right_position=str(run.position),
                    name=name,
                    baseline_left=_rerun(spec, run, output),
                    baseline_right=stream_side(replay, output, run.position, batch.schema) if replay else None,
                    settings=Settings(allow_empty=True),
                )
                break
            except SourceError:
                # A changelog segment may be merged away between listing and reading it.
                if attempt == 2:
                    raise
                time.sleep(0.2)
        results[output] = result
        if record:
            ids[output] = run_history.record(spec.history_path, result)
    return SpecReconciliation(spec.name, run, reached, results, ids)
