"""Reconcile a batch run with the stream's changelogs as of the batch snapshot's position."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cdc.position import Position
from cdc.progress import GroupProgress
from comparators import FrameSource, Reconciliation, Settings, reconcile
from comparators import history as run_history
from comparators.errors import SourceError
from comparators.errors import SpecError as ComparatorSpecError
from migrate.batch import RERUN, BatchRun, has_output, load_run, run_output
from migrate.coverage import record_exact
from migrate.errors import DualrunError, SpecError
from migrate.external import OutputCheck, reconcile_external
from migrate.metrics import publish_parity
from migrate.progress import StreamProgress, wait_for_stream
from migrate.sides import stream_side
from migrate.sink import SinkParity, reconcile_sink, side_output
from migrate.spec import PipelineSpec
from migrate.stream.status import read_status
from migrate.window import Coverage

if TYPE_CHECKING:
    from migrate.bracket import BracketCheck


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
    # The third side: outputs with a sink (`outputs.X.sink`), the table users read vs the output topic.
    sinks: dict[str, SinkParity] = field(default_factory=dict)
    # A batch run an external job wrote between `batch mark`s: its window and window keys
    # (`outputs` then holds each output's result over the keys outside the window and window defects).
    bracket: BracketCheck | None = None

    @property
    def verdict(self) -> str:
        if not self.progress.reached:
            return "stream_behind"
        if any(r.verdict != "clean" for r in self.outputs.values()):
            return "differences"
        if any(s.verdict == "differences" for s in self.sinks.values()):
            return "differences"
        for named in ("sink_failed", "sink_behind"):  # not compared: neither clean nor (yet) a defect
            if any(s.verdict == named for s in self.sinks.values()):
                return named
        causes = [c.cause for c in self.checks.values() if c.cause is not None]
        if causes:
            # Not comparable as of the batch position: neither clean nor a defect.
            for named in ("no_positions", "lineage_incomplete", "unverified"):
                if named in causes:
                    return named
            return "unreadable"
        return "clean"

    @property
    def coverage(self) -> Coverage | None:
        """Keys verified and in flight over the outputs compared through a window; None when every
        output was compared exactly at the batch position."""
        found = [c.coverage for c in self.checks.values() if c.coverage is not None]
        if self.bracket is not None:
            found += [o.coverage for o in self.bracket.outputs.values()]
        return sum(found[1:], found[0]) if found else None

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
            "coverage": self.coverage.to_dict() if self.coverage else None,
            "sinks": {name: s.to_dict() for name, s in self.sinks.items()},
            "bracket": self.bracket.to_dict() if self.bracket else None,
        }


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
    """Every output as of the batch run's position (batch vs stream); then, once the stream side has
    passed that position, each output's sink table vs the output topic (`migrate.sink`).

    With `record`, each comparison goes to the run history (a sink's as `<spec>/<output>@sink`, in
    the same pipeline run) and every side's parity to the metrics (`migrate.metrics`)."""
    result = _reconcile_spec(spec, run_id, wait=wait, record=record, progress=progress)
    with_sink = [name for name, out in spec.outputs.items() if out.sink is not None]
    if result.progress.reached and with_sink:
        sinks, ids = {}, dict(result.history_ids)
        for output in with_sink:
            progress(f"reconciling {output}'s sink")
            parity = reconcile_sink(spec, output, spec.compare.wait_seconds if wait is None else wait)
            sinks[output] = parity
            if record:  # a sink not compared (behind, failed) is recorded too: never clean
                ids[side_output(output)] = run_history.record(
                    spec.history_path, parity.history_result(spec.name), batch_run=result.run.run_id
                )
        result = replace(result, sinks=sinks, history_ids=ids)
    if record:
        _publish(spec, result)
    return result


def _reconcile_spec(
    spec: PipelineSpec,
    run_id: str = "latest",
    *,
    wait: float | None = None,
    record: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> SpecReconciliation:
    from migrate.bracket import check_bracket
    from migrate.marks import load_bracket

    run = load_run(spec.warehouse_path, run_id)
    if load_bracket(spec, run.run_id) is not None:
        # An external job's run between `batch mark`s: decided key by key against its bracket.
        check = check_bracket(spec, run.run_id, wait=wait, record=record, progress=progress)
        compared = {name: c.reconciliation for name, c in check.outputs.items()}
        return SpecReconciliation(spec.name, run, check.progress, compared, check.history_ids, bracket=check)
    # Before either path: an output the batch run lacks would otherwise read as an empty batch side.
    missing = [output for output in spec.outputs if output not in run.rows]
    if missing:
        raise DualrunError(
            f"batch run {run.run_id} has no output {missing[0]!r} (the spec gained it after that run); "
            "run `dualrun run batch` again, then reconcile"
        )
    if run.snapshot is not None:  # PostgreSQL: the snapshot placed in the stream's commit order
        from migrate import pgsource

        tables = [name for name, out in spec.outputs.items() if out.stream.table is not None]
        if spec.is_external and tables:
            raise DualrunError(
                f"output {tables[0]}: a sink table is read as of a MariaDB/MySQL position only; on a PostgreSQL "
                "source give the output's topic (outputs.X.stream.topic)"
            )

        progress(f"placing the batch snapshot {run.snapshot} in the stream")
        cut = pgsource.place(spec, run.snapshot, run.started_at, spec.compare.wait_seconds if wait is None else wait)
        if not cut.complete:  # Debezium has not passed the snapshot yet
            return SpecReconciliation(spec.name, run, StreamProgress(False, run.position, None, None, None, "unplaced"))
        # The user's job is fenced by comparing whole positions (previous commit, change LSN) with it.
        run = replace(run, position=Position.lsn_cut(cut.bound) if spec.is_external else Position.lsn(cut.bound))
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
            except ComparatorSpecError as exc:  # a tolerance, ignore or partition on a column the output lacks
                raise SpecError(
                    f"outputs.{output}: {exc} (its columns: {', '.join(batch.schema.names)}); fix the column "
                    f"names in outputs.{output}.tolerances, ignore or partition"
                ) from None
            except SourceError:
                # A changelog segment may be merged away between listing and reading it.
                if attempt == 2:
                    raise
                time.sleep(0.2)
        results[output] = result
        if record:
            ids[output] = run_history.record(spec.history_path, result, batch_run=run.run_id)
            record_exact(spec, output, ids[output])  # compared at the position: every key verified
    return SpecReconciliation(spec.name, run, reached, results, ids)


def _publish(spec: PipelineSpec, result: SpecReconciliation) -> None:
    """Parity per output and per sink (`<output>@sink`) as Prometheus metrics (migrate.metrics)."""
    causes = {out: c.cause for out, c in result.checks.items() if c.cause is not None}
    publish_parity(spec, result.outputs, causes, result.sinks)
