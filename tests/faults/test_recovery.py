"""Faults injected under a live workload on the reference pipeline; each scenario ends with nothing
lost, nothing written twice, parity clean, and its recovery time recorded.

The job runs as `dualrun run stream --background` does: supervised, in its own process. Every
recovery here is by itself; no test restarts the job. Recovery time: from the fault's end (the
service is back, the process resumed, or the job was killed) until the job's committed output
covers the source position of that moment.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from migrate.asof import reconcile_spec
from migrate.batch import run_batch
from migrate.checklist import evaluate, select
from migrate.spec import PipelineSpec
from migrate.stream.kafka import Timeouts
from migrate.stream.status import read_status
from tests.faults.conftest import (
    Driver,
    FaultStack,
    audit,
    kill9,
    source_position,
    start_job,
    wait_caught_up,
    wait_status,
)
from tests.integration.conftest import Database

pytestmark = [pytest.mark.faults, pytest.mark.integration]

RATE = float(os.environ.get("DUALRUN_FAULTS_RATE", "150"))  # source changes per second
EVENTS = int(os.environ.get("DUALRUN_FAULTS_EVENTS", "3000"))
BROKER_DOWN_S = float(os.environ.get("DUALRUN_FAULTS_BROKER_DOWN_S", "30"))
RESULTS = Path(os.environ.get("DUALRUN_FAULTS_RESULTS", "/tmp/dualrun-faults-results.jsonl"))


@dataclass(frozen=True)
class Recovery:
    fault: str
    down_s: float  # how long the component was away (or stopped)
    backlog: int  # source changes made while it was away
    recovery_s: float  # fault's end -> the job's committed output covers the source position of that moment
    throughput: float  # the job's peak events/s while catching up, between two of its status reports
    restarts: int  # times the supervisor restarted the job
    records: int  # committed output records audited

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def scenario(
    spec: PipelineSpec, db: Database, name: str, fault: Callable[[Driver], tuple[float, float, int]]
) -> Recovery:
    """Workload on; `fault` at a third (returns down seconds, the monotonic time it ended, backlog);
    then: caught up by itself, the rest of the workload, parity, and an independent audit."""
    start_job(spec)
    driver = Driver(spec, EVENTS, RATE).start()
    driver.wait_for(EVENTS // 3)
    down_s, ended, backlog = fault(driver)
    target = source_position(spec)
    peak = 0.0
    last: tuple[int, int, float] | None = None  # (pid, events_in, updated_at) of the previous report
    deadline = time.monotonic() + 300
    while True:  # caught up, and the job's own rate while it got there (events between two of its reports)
        status = read_status(spec)
        if status is not None:
            if last is not None and last[0] == status.pid and status.updated_at > last[2]:
                peak = max(peak, (status.events_in - last[1]) / (status.updated_at - last[2]))
            last = (status.pid, status.events_in, status.updated_at)
        try:
            caught = wait_caught_up(spec, target, timeout=0.5)
            break
        except AssertionError:
            assert time.monotonic() < deadline, f"{name}: the job did not catch up in 300 s; status: {status}"
    recovery = Recovery(name, round(down_s, 1), backlog, round(caught - ended, 1), round(peak, 1), 0, 0)

    if driver.paused:
        driver.start()  # the rest of the workload, after the recovery
    driver.finish()
    run = run_batch(spec)
    result = reconcile_spec(spec, run.run_id)
    assert result.verdict == "clean", f"{name}: parity {result.verdict}: {result.progress.describe()}"
    found = audit(spec, db)
    assert not found.lost, f"{name}: {len(found.lost)} order(s) lost, e.g. {found.lost[:5]}"
    assert not found.ghosts, f"{name}: {len(found.ghosts)} deleted order(s) still live, e.g. {found.ghosts[:5]}"
    assert not any(found.duplicated.values()), f"{name}: records written twice: {found.duplicated}: {found.samples}"
    status = read_status(spec)
    assert status is not None and status.state == "running", f"{name}: job not running at the end: {status}"
    checks = evaluate(spec, select(("job_alive",)))
    assert checks.checks[0].status == "pass", f"{name}: {checks.checks[0]}"
    recovery = Recovery(**{**recovery.to_dict(), "restarts": status.restarts, "records": found.records})  # type: ignore[arg-type]
    with RESULTS.open("a") as out:
        out.write(json.dumps({**recovery.to_dict(), "rate": RATE, "events": EVENTS, "at": time.time()}) + "\n")
    print(f"recovery {json.dumps(recovery.to_dict())}")
    return recovery


def test_sigkill_of_the_job_mid_workload(fault_pipeline: PipelineSpec, fault_stack: FaultStack) -> None:
    def fault(driver: Driver) -> tuple[float, float, int]:
        status = read_status(fault_pipeline)
        assert status is not None
        os.kill(status.pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_status(fault_pipeline, lambda s: s.pid != status.pid and s.state == "running", timeout=60)
        return time.monotonic() - killed, killed, 0

    recovery = scenario(fault_pipeline, Database(fault_stack.config), "job SIGKILL", fault)
    assert recovery.restarts == 1


def test_kill9_and_restart_of_the_broker_mid_workload(fault_pipeline: PipelineSpec, fault_stack: FaultStack) -> None:
    seen: list[str] = []

    def fault(driver: Driver) -> tuple[float, float, int]:
        before = driver.done
        kill9(fault_stack.kafka.process, fault_stack.config.ports.kafka, fault_stack.config.ports.controller)
        killed = time.monotonic()
        time.sleep(min(8.0, BROKER_DOWN_S / 2))
        # The checklist during the outage: the broker is unreachable (exit 2) and nothing passes, whatever
        # the job's last report says (it may be stuck in a Kafka call that ignores its timeout).
        outage = evaluate(fault_pipeline, select(("job_alive", "events_fresh", "consumer_lag")), timeout=3)
        assert outage.exit_code == 2 and not any(c.status == "pass" for c in outage.checks), outage.to_dict()
        while time.monotonic() - killed < BROKER_DOWN_S:
            status = read_status(fault_pipeline)
            if status is not None and status.state != "running":
                seen.append(f"{status.state}: {status.error}")
            time.sleep(0.2)
        fault_stack.kafka.start()  # returns once the broker answers
        back = time.monotonic()
        driver.pause()  # a fixed backlog to catch up with
        return back - killed, back, driver.done - before

    db = Database(fault_stack.config)
    recovery = scenario(fault_pipeline, db, "broker kill -9", fault)
    # Nobody restarted the job: it retried in place, or its watchdog ended it and the supervisor restarted it.
    print(f"job states while the broker was away: {sorted(set(s.split(':')[0] for s in seen))}")
    # The bound: broker back -> caught up within backlog / throughput + 60 s.
    bound = recovery.backlog / max(recovery.throughput, 1.0) + 60
    assert recovery.recovery_s <= bound, recovery


def test_kill9_and_restart_of_connect_mid_workload(fault_pipeline: PipelineSpec, fault_stack: FaultStack) -> None:
    def fault(driver: Driver) -> tuple[float, float, int]:
        before = driver.done
        kill9(fault_stack.connect.process, fault_stack.config.ports.connect)
        killed = time.monotonic()
        fault_stack.connect.start()  # Debezium resumes from its stored offsets: some events come twice
        back = time.monotonic()
        return back - killed, back, driver.done - before

    scenario(fault_pipeline, Database(fault_stack.config), "connect kill -9", fault)


def test_kill9_and_restart_of_mariadb_mid_workload(fault_pipeline: PipelineSpec, fault_stack: FaultStack) -> None:
    def fault(driver: Driver) -> tuple[float, float, int]:
        driver.pause()  # the workload's own connection would die with the server
        kill9(fault_stack.mariadb.process, fault_stack.config.ports.mariadb)
        killed = time.monotonic()
        fault_stack.mariadb.start()
        back = time.monotonic()
        driver.start()
        return back - killed, back, 0

    scenario(fault_pipeline, Database(fault_stack.config), "mariadb kill -9", fault)


def test_sigstop_of_the_job_beyond_the_transaction_timeout(
    fault_pipeline: PipelineSpec, fault_stack: FaultStack
) -> None:
    stopped_for = Timeouts().transaction_s + 15  # the broker aborts timed-out transactions every 10 s

    def fault(driver: Driver) -> tuple[float, float, int]:
        status = read_status(fault_pipeline)
        assert status is not None
        before = driver.done
        os.kill(status.pid, signal.SIGSTOP)
        try:
            time.sleep(stopped_for)
        finally:
            os.kill(status.pid, signal.SIGCONT)
        return stopped_for, time.monotonic(), driver.done - before

    # Fenced (and restarted by the supervisor) or recovered in place: either way nothing twice.
    scenario(fault_pipeline, Database(fault_stack.config), "job SIGSTOP", fault)
