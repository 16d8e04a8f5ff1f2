"""`dualrun demo`: the whole dual run of the shop example on the local stack, end to end.

Starts the stack, registers the connector, starts the streaming job, runs a
workload, runs the nightly batch job in the middle of it, and reconciles the
two as of the batch snapshot's position. Everything is left running for
exploration; `dualrun stack down` stops it all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.asof import SpecReconciliation, reconcile_spec
from migrate.batch import BatchRun, describe_source, run_batch
from migrate.connector import ensure_connector
from migrate.examples.shop_orders.defects import defect_spec
from migrate.examples.shop_orders.workload import Workload, WorkloadStats
from migrate.sink import register_sink
from migrate.spec import PipelineSpec
from migrate.stack import Stack, needed_services
from migrate.stackconfig import StackConfig

Step = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    spec_name: str
    workload: WorkloadStats
    batch: BatchRun
    reconciliation: SpecReconciliation
    defect: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec_name, "defect": self.defect, "workload": self.workload.to_dict(),
            "batch": self.batch.to_dict(), "reconciliation": self.reconciliation.to_dict(),
        }  # fmt: skip


def stack_config_for(spec: PipelineSpec) -> StackConfig:
    return StackConfig.from_env(Path(spec.state_dir))


def job_spec_for(spec: PipelineSpec, defect: str | None) -> PipelineSpec:
    """The streaming job the demo runs: the spec's own, or for a defect a variant with its own identity
    (group, topics): dualrun's pipeline runs the defective transform, a user's job takes the defect on its
    own command line."""
    if defect is None:
        return spec
    return spec.variant(defect) if spec.is_external else defect_spec(spec, defect)


def run_demo(
    spec: PipelineSpec,
    *,
    events: int,
    rate: float,
    start_stream: Callable[[PipelineSpec, bool], None],
    defect: str | None = None,
    step: Step = lambda _: None,
    workload_progress: Callable[[int], None] | None = None,
    seed: int = 7,
    replay: bool = True,
) -> DemoResult:
    """The whole dual run. `replay`: also start the stream's noise baseline (a second run of dualrun's
    own job over the same change events); a job dualrun did not write has none."""
    step("starting the local stack")
    sinks = [name for name, out in spec.outputs.items() if out.sink is not None]
    # Outputs with a sink (outputs.X.sink) need the stack's PostgreSQL for their tables.
    services = (*needed_services(spec.source.kind), *(("postgres",) if sinks else ()))
    Stack(stack_config_for(spec), services).up(lambda s: step(f"starting the local stack: {s}"))
    step(f"registering connector {spec.cdc.connector}")
    ensure_connector(spec)
    workload = Workload(spec.source.url, spec.source.password(), database=spec.source.database, seed=seed)
    workload.seed(orders=200)
    job_spec = job_spec_for(spec, defect)
    step("starting the streaming job" + (f" with defect {defect!r}" if defect else ""))
    start_stream(job_spec, False)
    for output in sinks:
        # After the job: it creates the output topic the sink subscribes to.
        step(f"registering the JDBC sink of {output}")
        warning = register_sink(job_spec, output).warning
        if warning is not None:
            step(warning)
    if defect is None and replay:
        # The stream's noise baseline: a twin job over the same change events (see PipelineSpec.replay).
        step("starting the stream replay (the stream's noise baseline)")
        start_stream(spec.replay(), True)

    step(f"running the workload against {describe_source(spec)}")
    half = threading.Event()
    done: dict[str, WorkloadStats] = {}
    failure: list[BaseException] = []

    def progress(n: int) -> None:
        if n >= events // 2:
            half.set()
        if workload_progress is not None:
            workload_progress(n)

    def drive() -> None:
        try:
            done["stats"] = workload.run(events=events, rate=rate, progress=progress)
        except BaseException as exc:  # reported in the main thread
            failure.append(exc)
        finally:
            half.set()

    thread = threading.Thread(target=drive, name="workload", daemon=True)
    thread.start()
    half.wait()
    step("running the nightly batch job mid-workload")
    batch = run_batch(spec)
    thread.join()
    if failure:
        raise failure[0]
    step(f"reconciling as of {batch.position}")
    result = reconcile_spec(job_spec, batch.run_id, progress=step)
    return DemoResult(job_spec.name, done["stats"], batch, result, defect)
