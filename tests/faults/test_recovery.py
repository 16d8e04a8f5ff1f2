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
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from migrate.asof import reconcile_spec
from migrate.batch import run_batch
from migrate.checklist import evaluate, select
from migrate.commands.run import stream_process
from migrate.examples.shop_orders.workload import Workload
from migrate.progress import debezium_passed
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
# Source changes the job catches up on in the backlog scenario (bench/faults/backlog.py: 100k and more).
BACKLOG = int(os.environ.get("DUALRUN_FAULTS_BACKLOG", "6000"))
BACKLOG_CUSTOMERS = 2000
# The backlog scenario's broker restart (bench/faults/backlog.py turns it on; the suite's broker scenario
# already holds a small backlog to the bound, and CI's time is short).
BACKLOG_BROKER = os.environ.get("DUALRUN_FAULTS_BACKLOG_BROKER", "0") == "1"


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


class ConnectorWatch:
    """`connector_running` evaluated every 2 s on a thread: (seconds since start, status, evidence)."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec, self.seen, self.started = spec, list[tuple[float, str, str]](), time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            check = evaluate(self.spec, select(("connector_running",)), timeout=5).checks[0]
            self.seen.append((round(time.monotonic() - self.started, 1), check.status, check.evidence))
            self._stop.wait(2)

    def stop(self) -> list[tuple[float, str, str]]:
        self._stop.set()
        self._thread.join(60)
        return self.seen


def test_kill9_and_restart_of_mariadb_mid_workload(fault_pipeline: PipelineSpec, fault_stack: FaultStack) -> None:
    """Debezium's MariaDB connector stays RUNNING for about 100 s after the server comes back, its binlog
    reader not yet reconnected: the checklist's connector_running must say so (the source moving on, the
    connector's committed offset not), then pass again once Debezium resumes, and not cry wolf when idle."""
    silence_s = 15.0  # checklist.max_event_age_seconds: how long a connector behind the source may stay silent
    spec = fault_pipeline.model_copy(
        update={"checklist": fault_pipeline.checklist.model_copy(update={"max_event_age_seconds": silence_s})}
    )
    watches: list[ConnectorWatch] = []

    def fault(driver: Driver) -> tuple[float, float, int]:
        driver.pause()  # the workload's own connection would die with the server
        kill9(fault_stack.mariadb.process, fault_stack.config.ports.mariadb)
        killed = time.monotonic()
        fault_stack.mariadb.start()
        back = time.monotonic()
        driver.start()
        watches.append(ConnectorWatch(spec))
        return back - killed, back, 0

    recovery = scenario(fault_pipeline, Database(fault_stack.config), "mariadb kill -9", fault)
    seen = watches[0].stop()
    print(f"connector_running after MariaDB came back: {[(t, s) for t, s, _ in seen]}")
    stalls = [(t, e) for t, s, e in seen if s == "fail"]
    print(f"first evidence: {stalls[0] if stalls else None}")
    if recovery.recovery_s > silence_s + 10:  # silent for long enough that the checklist had to see it
        assert stalls, f"connector silent {recovery.recovery_s}s after MariaDB came back, never reported: {seen}"
    for t, evidence in stalls:
        assert "RUNNING but delivering nothing" in evidence, evidence
        assert "source is at GTID" in evidence and "committed offset at" in evidence, evidence
        assert t <= recovery.recovery_s + 5, f"still failing at {t}s, caught up at {recovery.recovery_s}s: {evidence}"
    assert seen and seen[-1][1] == "pass", f"connector_running after Debezium resumed: {seen[-1:]}"
    # Idle: the workload is over and the connector caught up; silent for longer than the limit, not stuck.
    time.sleep(silence_s + 5)
    idle = evaluate(spec, select(("connector_running",))).checks[0]
    assert idle.status == "pass", f"a false alarm on an idle source: {idle.evidence}"


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


@dataclass(frozen=True)
class CatchUp:
    fault: str  # what built the backlog
    backlog: int  # source changes made while the job could not process them
    build_s: float  # how long the workload took to make them (unpaced)
    catch_up_s: float  # job started / broker back -> the job's committed output covers the source position
    throughput: float  # backlog / catch_up_s: source changes per second, start-up included
    peak: float  # the job's peak events/s between two of its status reports
    delivered_s: float  # same start -> Debezium's committed offset at that position (all of it in Kafka)
    restarts: int  # supervisor restarts during the catch-up
    buffer_errors: int  # `BufferError` lines in the job's log (a full producer queue that crashed it)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _build_backlog(spec: PipelineSpec, events: int) -> float:
    """`events` source changes as fast as the source takes them; their duration in seconds.

    Over BACKLOG_CUSTOMERS customers: a customer change re-emits every order of that customer, so
    with the suite's 20 a day of changes would be mostly that fan-out (12M output records for 100k
    changes), not the backlog this measures."""
    workload = Workload(spec.source.url, spec.source.password(), database=spec.source.database, seed=23,
                        customers=BACKLOG_CUSTOMERS)  # fmt: skip
    try:
        workload.seed()  # the customers only: idempotent
        return workload.run(events=events).seconds
    finally:
        workload.close()


def _catch_up(spec: PipelineSpec, since: float, timeout: float) -> tuple[float, float, float]:
    """Wait until the job's committed output covers the source position now: (seconds since `since`,
    seconds since `since` until Debezium had delivered up to it, the job's peak events/s seen in its
    status reports meanwhile)."""
    target = source_position(spec)
    peak, last, delivered = 0.0, None, None
    deadline = time.monotonic() + timeout
    while True:
        status = read_status(spec)
        if status is not None:
            if last is not None and last[0] == status.pid and status.updated_at > last[2]:
                peak = max(peak, (status.events_in - last[1]) / (status.updated_at - last[2]))
            last = (status.pid, status.events_in, status.updated_at)
            assert status.state != "crash_loop", f"crash loop while catching up: {status.error}"
        if delivered is None and debezium_passed(spec, target):
            delivered = time.monotonic() - since
        try:
            caught = wait_caught_up(spec, target, timeout=0.5) - since
            return caught, min(caught, delivered if delivered is not None else caught), peak
        except AssertionError:
            assert time.monotonic() < deadline, f"the job did not catch up in {timeout:.0f}s; status: {status}"


def _row(spec: PipelineSpec, fault: str, build_s: float, times: tuple[float, float, float], restarts: int) -> CatchUp:
    log = stream_process(spec).log_file
    buffer_errors = log.read_text(errors="replace").count("BufferError") if log.exists() else 0
    seconds, delivered, peak = times
    return CatchUp(fault, BACKLOG, round(build_s, 1), round(seconds, 1), round(BACKLOG / seconds, 1), round(peak, 1),
                   round(delivered, 1), restarts, buffer_errors)  # fmt: skip


def test_a_backlog_is_caught_up_at_full_speed_after_a_stop_and_after_a_broker_restart(
    fault_pipeline: PipelineSpec, fault_stack: FaultStack
) -> None:
    """Issue 12's backpressure: a backlog (a day of changes, scaled by DUALRUN_FAULTS_BACKLOG) is
    caught up in one go, no BufferError, no restart; and (DUALRUN_FAULTS_BACKLOG_BROKER=1, the bench)
    after a broker kill -9 with a backlog built while it was down, broker back -> caught up within
    backlog / throughput + 60 s."""
    spec, db = fault_pipeline, Database(fault_stack.config)
    timeout = 300 + BACKLOG / 200
    start_job(spec)
    Driver(spec, 200, RATE).start().finish()
    _catch_up(spec, time.monotonic(), 120)
    rows: list[CatchUp] = []

    # 1. The job stopped (a deploy, a long outage of its host): the backlog waits in Kafka.
    assert stream_process(spec).stop(timeout=60)
    build_s = _build_backlog(spec, BACKLOG)
    target = source_position(spec)
    deadline = time.monotonic() + timeout
    while not debezium_passed(spec, target):  # all of it in Kafka: what follows times the job, not Debezium
        assert time.monotonic() < deadline, f"Debezium did not deliver the backlog in {timeout:.0f}s"
        time.sleep(0.5)
    started = time.monotonic()
    start_job(spec)
    times = _catch_up(spec, started, timeout)
    status = read_status(spec)
    assert status is not None and status.restarts == 0, f"restarted while catching up: {status}"
    rows.append(_row(spec, "job stopped", build_s, times, status.restarts))

    # 2. The broker killed with the job running; the backlog is made while it is down (Debezium and the
    #    job both wait), then the broker comes back and nobody touches the job.
    if BACKLOG_BROKER:
        ports = fault_stack.config.ports
        kill9(fault_stack.kafka.process, ports.kafka, ports.controller)
        try:
            build_s = _build_backlog(spec, BACKLOG)
        finally:
            fault_stack.kafka.start()  # returns once the broker answers
        back = time.monotonic()
        times = _catch_up(spec, back, timeout)
        status = read_status(spec)
        assert status is not None and status.state == "running", status
        rows.append(_row(spec, "broker kill -9", build_s, times, status.restarts))

    for row in rows:
        print(f"catch-up {json.dumps(row.to_dict())}")
        with RESULTS.open("a") as out:
            out.write(json.dumps({**row.to_dict(), "kind": "backlog", "at": time.time()}) + "\n")
    assert not any(r.buffer_errors for r in rows), rows
    if BACKLOG_BROKER:  # not a crash loop: at most the watchdog's one restart of a job stuck after the broker died
        assert rows[1].restarts <= 1, rows[1]
    run = run_batch(spec)
    result = reconcile_spec(spec, run.run_id)
    assert result.verdict == "clean", f"parity {result.verdict}: {result.progress.describe()}"
    found = audit(spec, db)
    assert not found.lost and not found.ghosts, (found.lost[:5], found.ghosts[:5])
    assert not any(found.duplicated.values()), f"records written twice: {found.duplicated}: {found.samples}"
    if BACKLOG_BROKER:
        # The bound, with the job's throughput measured on the first backlog (start-up included).
        # After a broker restart Debezium must also send the whole backlog, and the job cannot pass it:
        # the time from Debezium done to caught up is the job's own share (in the bench's table).
        bound = BACKLOG / rows[0].throughput + 60
        broker = rows[1]
        within = max(bound, broker.delivered_s + 60)
        assert broker.catch_up_s <= within, f"broker back -> caught up: {broker}; bound {bound:.1f}s"
