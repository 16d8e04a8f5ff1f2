"""The dual pipelines on the real stack: parity, injected defects, crash recovery, poison events,
schema change, and the article's plain alert consumer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from confluent_kafka import Consumer, Producer

from comparators.result import Reconciliation
from migrate.asof import SpecReconciliation, reconcile_spec
from migrate.batch import run_batch
from migrate.commands.run import start_stream_background, stream_process
from migrate.demo import defect_spec
from migrate.examples.shop_orders.defects import DEFECTS
from migrate.examples.shop_orders.transform import ShopOrdersTransform
from migrate.spec import PipelineSpec
from migrate.stream.changelog import output_glob
from migrate.stream.status import read_status
from migrate.stream.wire import POSITION_HEADER
from tests.integration.conftest import Database
from tests.integration.migrate.conftest import JobThread, workload_for

pytestmark = pytest.mark.integration


def run_with_batch_in_the_middle(spec: PipelineSpec, events: int, rate: float = 400,
                                 midway: Callable[[], None] | None = None) -> str:  # fmt: skip
    """Workload on a thread; the batch job (and `midway`) run when half of it is done."""
    workload = workload_for(spec)
    half = threading.Event()
    thread = threading.Thread(
        target=lambda: workload.run(events=events, rate=rate, progress=lambda n: n >= events // 2 and half.set()),
        daemon=True,
    )
    thread.start()
    assert half.wait(120)
    if midway is not None:
        midway()
    run = run_batch(spec)
    thread.join(120)
    return run.run_id


def causes(rec: Reconciliation) -> dict[str, int]:
    """Row-level causes; per-partition aggregate mismatches accompany them and are checked apart."""
    return {cause: n for cause, n in rec.to_dict()["causes"].items() if n and cause != "aggregate_mismatch"}


def mismatched_columns(rec: Reconciliation) -> set[str]:
    return {name for name, col in rec.to_dict()["columns"].items() if col["mismatches"]}


def assert_clean(result: SpecReconciliation) -> None:
    problems = {name: causes(rec) for name, rec in result.outputs.items() if rec.verdict != "clean"}
    assert result.verdict == "clean", f"{result.progress.describe()}; {problems}"


def baseline(rec: Reconciliation, what: str) -> Reconciliation:
    found = dict(rec.baselines)
    assert what in found, f"no {what!r} baseline; have {sorted(found)}"
    return found[what]


def test_parity_after_a_mixed_workload(pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread]) -> None:
    job = jobs(pipeline)
    jobs(pipeline.replay())  # the stream's noise baseline
    run_id = run_with_batch_in_the_middle(pipeline, events=1500)
    result = reconcile_spec(pipeline, run_id)
    assert_clean(result)
    for rec in result.outputs.values():
        assert baseline(rec, "batch vs batch rerun").unexplained == 0
        replay = baseline(rec, "stream vs stream replay")
        assert replay.unexplained == 0 and replay.left.rows == replay.right.rows > 0
    rows = {name: rec.left.rows for name, rec in result.outputs.items()}
    assert all(n > 0 for n in rows.values()), rows
    assert set(result.history_ids) == {"orders_enriched", "order_alerts", "daily_revenue"}
    job.stop()
    status = read_status(pipeline)
    assert status is not None and status.state == "stopped" and status.dead_letters == 0


def test_each_injected_defect_is_found_with_its_cause_and_nothing_else(
    pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread]
) -> None:
    specs = {d: defect_spec(pipeline, d) for d in ("ignore-customer-changes", "double-count-updates", "drop-deletes")}
    for spec in specs.values():
        jobs(spec)
    run_id = run_with_batch_in_the_middle(pipeline, events=1500)
    results = {d: reconcile_spec(spec, run_id).outputs for d, spec in specs.items()}

    ignore = results["ignore-customer-changes"]
    assert causes(ignore["orders_enriched"]) == {"value_mismatch": ignore["orders_enriched"].mismatched_rows}
    assert mismatched_columns(ignore["orders_enriched"]) <= {"customer_name", "customer_tier"}
    assert mismatched_columns(ignore["orders_enriched"])
    assert ignore["order_alerts"].verdict == ignore["daily_revenue"].verdict == "clean"

    double = results["double-count-updates"]
    assert causes(double["daily_revenue"]) == {"value_mismatch": double["daily_revenue"].mismatched_rows}
    assert double["daily_revenue"].to_dict()["causes"]["aggregate_mismatch"] > 0  # the days' sums differ too
    assert mismatched_columns(double["daily_revenue"]) == {"revenue"}
    assert double["orders_enriched"].verdict == double["order_alerts"].verdict == "clean"

    drop = results["drop-deletes"]
    assert set(causes(drop["orders_enriched"])) == {"missing_in_batch"}
    assert drop["orders_enriched"].only_in_left == 0 and drop["orders_enriched"].only_in_right > 0
    assert set(causes(drop["order_alerts"])) <= {"missing_in_batch"}
    # A day whose every order was deleted has no batch row at all, so it shows as missing in the batch.
    assert "value_mismatch" in causes(drop["daily_revenue"])
    assert set(causes(drop["daily_revenue"])) <= {"value_mismatch", "missing_in_batch"}
    assert drop["daily_revenue"].only_in_left == 0
    assert mismatched_columns(drop["daily_revenue"]) <= {"order_count", "revenue"}


def read_committed(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None, bytes | None]]:
    """Every committed record of a topic: (key, value, position header)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                         "enable.partition.eof": True})  # fmt: skip
    consumer.subscribe([topic])
    records = []
    idle = time.monotonic()
    while time.monotonic() - idle < 5:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        idle = time.monotonic()
        headers = dict(msg.headers() or [])
        records.append((msg.key(), msg.value(), headers.get(POSITION_HEADER)))
    consumer.close()
    return records


def test_a_stream_replay_that_disagrees_shows_up_as_stream_noise(
    pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread]
) -> None:
    jobs(pipeline)
    # The replay's identity with a transform that keeps deleted orders: not the migration's fault,
    # the stream's own noise, and the baseline must say so without touching the verdict.
    jobs(pipeline.replay().with_changes(stream={"pipeline": DEFECTS["drop-deletes"][1]}))
    run_id = run_with_batch_in_the_middle(pipeline, events=1500)
    result = reconcile_spec(pipeline, run_id)
    assert_clean(result)
    noise = baseline(result.outputs["orders_enriched"], "stream vs stream replay")
    assert noise.unexplained > 0 and noise.only_in_right > 0 and noise.only_in_left == 0


def test_sigkill_mid_workload_then_restart_changes_nothing(pipeline: PipelineSpec) -> None:
    spec_file = Path(pipeline.state_dir) / "dualrun.yaml"
    supervisor = start_stream_background(pipeline, spec_file)
    reported = read_status(pipeline)
    assert reported is not None and reported.pid != supervisor
    first = reported.pid

    def kill_and_restart() -> None:
        time.sleep(0.5)  # let it be mid-transaction
        os.kill(first, signal.SIGKILL)  # the job, not its supervisor: it starts the job again by itself
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = read_status(pipeline)
            if status is not None and status.pid != first and status.state == "running":
                return
            time.sleep(0.1)

    run_id = run_with_batch_in_the_middle(pipeline, events=2000, midway=kill_and_restart)
    second = read_status(pipeline)
    assert second is not None and second.pid != first and second.restarts == 1
    assert stream_process(pipeline).pid() == supervisor
    result = reconcile_spec(pipeline, run_id)
    assert_clean(result)
    stream_process(pipeline).stop()

    for output in ("orders_enriched", "order_alerts"):
        topic = pipeline.outputs[output].stream.topic
        assert topic is not None
        records = read_committed(pipeline.kafka.bootstrap_servers, topic)
        assert records, topic
        seen = Counter((key, header) for key, _, header in records)
        duplicated = {k: n for k, n in seen.items() if n > 1}
        assert not duplicated, f"{topic}: records delivered twice: {list(duplicated)[:5]}"


def test_a_job_whose_changelog_was_deleted_refuses_to_resume_with_one_line(
    pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread]
) -> None:
    job = jobs(pipeline)
    workload_for(pipeline).run(events=200, rate=400)
    deadline = time.monotonic() + 60
    while (status := read_status(pipeline)) is None or status.last_position is None or status.lag != 0:
        assert time.monotonic() < deadline, f"the job did not catch up: {status}"
        time.sleep(0.2)
    job.stop()
    shutil.rmtree(pipeline.changelog_path)
    done = subprocess.run(
        [sys.executable, "-m", "migrate.cli", "run", "stream", "--spec", str(Path(pipeline.state_dir) / "dualrun.yaml"),
         "--state-dir", pipeline.state_dir],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "already committed up to" in lines[0] and "is empty" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_poison_event_goes_to_the_dead_letter_topic_and_parity_holds(
    pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread]
) -> None:
    job = jobs(pipeline)
    orders_topic = pipeline.cdc.topic(pipeline.cdc.tables[1])

    def poison() -> None:
        producer = Producer({"bootstrap.servers": pipeline.kafka.bootstrap_servers})
        producer.produce(orders_topic, key=b'{"order_id": 1}', value=b"\x00 not a change event")
        producer.produce(orders_topic, key=b'{"order_id": 2}', value=b'{"op": "c", "source": {}, "after": {}}')
        assert producer.flush(10) == 0

    run_id = run_with_batch_in_the_middle(pipeline, events=1200, midway=poison)
    assert_clean(reconcile_spec(pipeline, run_id))
    dead = read_committed(pipeline.kafka.bootstrap_servers, pipeline.stream.dead_letter_topic)
    assert [value for _, value, _ in dead] == [b"\x00 not a change event", b'{"op": "c", "source": {}, "after": {}}']
    consumer = Consumer({"bootstrap.servers": pipeline.kafka.bootstrap_servers, "group.id": f"dlq-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
    consumer.subscribe([pipeline.stream.dead_letter_topic])
    msg = None
    while msg is None or msg.error():
        msg = consumer.poll(1)
    headers = dict(msg.headers() or [])
    consumer.close()
    assert b"not JSON" in headers["dualrun.error"]
    assert headers["dualrun.source.topic"] == orders_topic.encode()
    status = read_status(pipeline)
    assert status is not None and status.dead_letters == 2
    job.stop()


def test_schema_change_mid_stream_keeps_the_job_running(
    pipeline: PipelineSpec, db: Database, jobs: Callable[[PipelineSpec], JobThread]
) -> None:
    job = jobs(pipeline)
    database = pipeline.source.database
    run_id = run_with_batch_in_the_middle(
        pipeline, events=1200,
        midway=lambda: db.run(f"ALTER TABLE `{database}`.orders ADD COLUMN note VARCHAR(40) NULL"),
    )  # fmt: skip
    db.run(f"INSERT INTO `{database}`.orders (customer_id, amount, status, note) VALUES (1, 42.00, 'NEW', 'after')")
    assert_clean(reconcile_spec(pipeline, run_id))
    assert job.thread.is_alive()
    status = read_status(pipeline)
    assert status is not None and status.dead_letters == 0 and status.state == "running"
    job.stop()


def test_the_articles_alert_consumer_receives_exactly_the_high_value_orders(
    pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread]
) -> None:
    job = jobs(pipeline)
    run_id = run_with_batch_in_the_middle(pipeline, events=1200)
    assert_clean(reconcile_spec(pipeline, run_id))
    job.stop()

    # The article's consumer, unchanged but for the topic name and a stop condition.
    conf = {"bootstrap.servers": pipeline.kafka.bootstrap_servers, "group.id": "alert-consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False}  # fmt: skip
    c = Consumer(conf)
    c.subscribe([str(pipeline.outputs["order_alerts"].stream.topic)])
    alerted: list[str] = []
    idle = time.monotonic()
    while time.monotonic() - idle < 5:
        msg = c.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            continue
        alerted.append(msg.value().decode())
        c.commit(msg)
        idle = time.monotonic()
    c.close()

    with duckdb.connect() as con:
        high = con.execute(
            "SELECT DISTINCT order_id FROM read_parquet(?) WHERE __op <> 'd' AND amount > 500",
            [output_glob(Path(pipeline.changelog_path), "orders_enriched")],
        ).fetchall()
    assert alerted, "no alert was sent"
    assert set(alerted) == {str(r[0]) for r in high}
    assert all(int(a) for a in alerted)
    print(json.dumps({"alerts": len(alerted)}))


def test_a_bug_in_the_transform_stops_the_job_and_says_so_in_its_status(
    pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a poison event (those are dead-lettered): a defect of our own must not leave a stale 'running'."""

    def bug(self: ShopOrdersTransform, event: object) -> None:
        raise RuntimeError("a bug in the transform")

    monkeypatch.setattr(ShopOrdersTransform, "apply", bug)
    workload_for(pipeline)  # seeds customers and orders: the job's first events
    job = jobs(pipeline)
    job.thread.join(120)
    assert not job.thread.is_alive() and isinstance(job.error, RuntimeError)
    status = read_status(pipeline)
    assert status is not None and status.state == "failed"
    assert status.error == "RuntimeError: a bug in the transform"
