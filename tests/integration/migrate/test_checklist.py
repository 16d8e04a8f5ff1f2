"""Every cutover check proven against the real stack: it passes while its condition holds and fails
when the condition breaks (a paused connector, records in the dead-letter topic, lag on a group that
stopped consuming, short retention, a parity failure, a stopped job). Nothing is mocked: each test
uses its own connector, topics, consumer groups, source database and state directory.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from cdc.connect import ConnectClient
from cdc.topics import TopicAdmin, quiet_logger
from comparators import history
from migrate.asof import reconcile_spec
from migrate.batch import run_batch
from migrate.checklist import CHECK_NAMES, Context, evaluate, select
from migrate.coverage import record_exact
from migrate.examples import shop_orders
from migrate.spec import PipelineSpec
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database, connector_for, wait_status
from tests.integration.migrate.conftest import JobThread, workload_for
from tests.unit.report.builders import local_spec, pipeline_run

pytestmark = pytest.mark.integration


def check(spec: PipelineSpec, name: str) -> tuple[str, str]:
    result = evaluate(spec, select((name,)))
    assert result.unevaluated == (), result.checks[0].evidence
    return result.checks[0].status, result.checks[0].evidence


def isolated_spec(stack: StackConfig, tmp_path: Path, unique: Callable[[str], str], **sections: dict) -> PipelineSpec:
    """The reference spec pointed at the local stack with unique topic, group and connector names."""
    prefix = unique("ck")
    stream = {
        "group": unique("grp"), "dead_letter_topic": unique("dlq"), "state_topic": unique("state"),
        **sections.pop("stream", {}),
    }  # fmt: skip
    sections.setdefault("outputs", {k: v.model_dump() for k, v in shop_orders.outputs(unique("out")).items()})
    cdc = {"connect_url": stack.connect_url, "connector": prefix, "topic_prefix": prefix,
           "tables": ("shop.orders",), **sections.pop("cdc", {})}  # fmt: skip
    return local_spec(tmp_path, stream=stream, cdc=cdc, kafka={"bootstrap_servers": stack.bootstrap_servers},
                      **sections)  # fmt: skip


def produce(bootstrap: str, topic: str, count: int, headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap}, logger=quiet_logger())
    for i in range(count):
        producer.produce(topic, key=str(i).encode(), value=b'{"n": %d}' % i, headers=headers)
    assert producer.flush(30) == 0


def commit_to_end(bootstrap: str, group: str, topic: str) -> None:
    """What a caught-up consumer leaves behind: its group's offsets committed at the log end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False},
                        logger=quiet_logger())  # fmt: skip
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.commit(offsets=[TopicPartition(topic, 0, high)], asynchronous=False)
    finally:
        consumer.close()


def test_connector_running_passes_then_fails_when_paused_and_says_why(
    stack: StackConfig, db: Database, connect: ConnectClient, unique: Callable[[str], str], tmp_path: Path
) -> None:
    table = db.orders_table(unique("orders"))
    settings = connector_for(stack, unique("ckconn"), (f"shop.{table}",))
    connect.put(settings.name, settings.to_config())
    try:
        wait_status(connect, settings.name, lambda s: s.running)
        spec = isolated_spec(stack, tmp_path, unique, cdc={"connector": settings.name})
        status, evidence = check(spec, "connector_running")
        assert status == "pass" and f"connector {settings.name} RUNNING" in evidence and "1/1 task(s)" in evidence

        connect.pause(settings.name)
        wait_status(connect, settings.name, lambda s: s.state == "PAUSED" and all(t.state == "PAUSED" for t in s.tasks))
        status, evidence = check(spec, "connector_running")
        assert status == "fail" and evidence == f"connector {settings.name} PAUSED, task 0 PAUSED"

        connect.resume(settings.name)
        wait_status(connect, settings.name, lambda s: s.running)
        assert check(spec, "connector_running")[0] == "pass"
        missing = spec.with_changes(cdc={"connector": unique("absent")})
        status, evidence = check(missing, "connector_running")
        assert status == "fail" and "is registered on http://" in evidence
    finally:
        connect.delete(settings.name)


def test_dead_letters_pass_while_empty_and_fail_with_a_record(
    stack: StackConfig, unique: Callable[[str], str], tmp_path: Path
) -> None:
    spec = isolated_spec(stack, tmp_path, unique)
    topic = spec.stream.dead_letter_topic
    status, evidence = check(spec, "dead_letters_empty")
    assert status == "pass" and "does not exist" in evidence
    admin = TopicAdmin(stack.bootstrap_servers)
    admin.create(topic, retention_ms=7 * 24 * 3_600_000)
    try:
        status, evidence = check(spec, "dead_letters_empty")
        assert (status, evidence) == ("pass", f"dead-letter topic {topic} holds no records")
        produce(stack.bootstrap_servers, topic, 1, headers=[("dualrun.error", b"cannot decode the change event")])
        status, evidence = check(spec, "dead_letters_empty")
        assert status == "fail"
        assert evidence == f"dead-letter topic {topic} holds 1 record(s); first error: cannot decode the change event"
    finally:
        admin.delete(topic)


def test_consumer_lag_fails_for_a_group_that_stopped_consuming_and_passes_once_caught_up(
    stack: StackConfig, unique: Callable[[str], str], tmp_path: Path
) -> None:
    spec = isolated_spec(stack, tmp_path, unique, checklist={"max_consumer_lag": 5})
    topic = spec.cdc.topic("shop.orders")
    admin = TopicAdmin(stack.bootstrap_servers)
    status, evidence = check(spec, "consumer_lag")
    assert status == "fail" and f"change topic(s) {topic} do not exist" in evidence
    admin.create(topic)
    try:
        produce(stack.bootstrap_servers, topic, 20)  # nobody in the group reads them
        status, evidence = check(spec, "consumer_lag")
        assert status == "fail"
        group = spec.stream.group
        assert evidence == f"group {group} 20 records behind: {topic} 20 (no committed offset on {topic})"
        status, evidence = check(spec, "rollback_ready")
        assert status == "fail" and f"group {spec.stream.group} has no committed offset on {topic}[0]" in evidence

        commit_to_end(stack.bootstrap_servers, spec.stream.group, topic)
        status, evidence = check(spec, "consumer_lag")
        assert (status, evidence) == ("pass", f"group {spec.stream.group} 0 record(s) behind on 1 partition(s)")
        produce(stack.bootstrap_servers, topic, 3)  # a little behind is within the threshold
        assert check(spec, "consumer_lag") == ("pass", f"group {group} 3 record(s) behind on 1 partition(s)")
    finally:
        admin.delete(topic)


def test_retention_and_compaction_follow_the_topic_configs(
    stack: StackConfig, unique: Callable[[str], str], tmp_path: Path
) -> None:
    spec = isolated_spec(stack, tmp_path, unique, checklist={"batch_window_hours": 24})
    admin = TopicAdmin(stack.bootstrap_servers)
    change = spec.cdc.topic("shop.orders")
    alerts, enriched = spec.outputs["order_alerts"].stream.topic, spec.outputs["orders_enriched"].stream.topic
    assert alerts is not None and enriched is not None
    created = [change, alerts, enriched, spec.stream.state_topic]
    try:
        admin.create(change, retention_ms=3_600_000)  # one hour: shorter than the batch window
        admin.create(alerts, retention_ms=7 * 24 * 3_600_000)
        admin.create(enriched, retention_ms=7 * 24 * 3_600_000)  # delete policy: state expires
        admin.create(spec.stream.state_topic, compact=True)
        status, evidence = check(spec, "topic_retention")
        dlq = spec.stream.dead_letter_topic  # never created: listed, but only change topics must exist
        assert (status, evidence) == ("fail", f"{change} keeps 1h; {dlq} does not exist")
        status, evidence = check(spec, "state_topics_compacted")
        assert status == "fail" and evidence == f"{enriched} is delete (retention 168h)"
        status, evidence = check(spec, "replication")
        assert status == "warn" and evidence.startswith("one broker: replication factor 1, min.insync.replicas 1")

        longer = spec.with_changes(checklist={"batch_window_hours": 0.5})
        status, evidence = check(longer, "topic_retention")
        assert (status, evidence) == ("pass", f"{change} 1h, {alerts} 168h; not created yet: {dlq}")
        state_as_enriched = {
            **spec.outputs["orders_enriched"].model_dump(),
            "stream": {"topic": spec.stream.state_topic},
        }
        compacted = spec.with_changes(outputs={"orders_enriched": state_as_enriched})
        assert check(compacted, "state_topics_compacted")[0] == "pass"
    finally:
        for topic in created:
            admin.delete(topic)


def test_rollback_ready_needs_the_batch_queries_to_run_on_the_source(
    stack: StackConfig, db: Database, unique: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = unique("src_empty")
    db.run(f"CREATE DATABASE `{empty}`")
    url = f"mysql+pymysql://{stack.db_user}@127.0.0.1:{stack.ports.mariadb}/{empty}"
    spec = isolated_spec(stack, tmp_path, unique, source={"url": url, "default_password": stack.db_password})
    status, evidence = check(spec, "rollback_ready")
    assert status == "fail" and "the batch job cannot run" in evidence and "is the source schema created?" in evidence
    secret = unique("s3cret-pw")  # a wrong password: refused, and never echoed back
    monkeypatch.setenv("DUALRUN_TEST_WRONG_PW", secret)
    wrong = spec.with_changes(source={"password_env": "DUALRUN_TEST_WRONG_PW"})
    status, evidence = check(wrong, "rollback_ready")
    assert status == "fail" and "refused the login" in evidence and secret not in evidence
    down = spec.with_changes(source={"url": "mysql+pymysql://dualrun@127.0.0.1:1/shop"})
    result = evaluate(down, select(("rollback_ready",)))
    assert result.exit_code == 2 and "127.0.0.1:1" in result.checks[0].evidence


def test_a_live_pipeline_goes_from_go_to_no_go_as_conditions_break(
    pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread], connect: ConnectClient
) -> None:
    """The whole checklist on a real dual run: GO after three clean batch runs, then NO-GO for each break."""
    spec = pipeline.with_changes(checklist={"max_consumer_lag": 50})
    workload = workload_for(spec)
    job = jobs(spec)
    for _ in range(3):
        workload.run(events=60, rate=400)
        run = run_batch(spec)
        result = reconcile_spec(spec, run.run_id)
        assert result.verdict == "clean", result.progress.describe()
    checklist = evaluate(spec)
    statuses = {c.name: c.status for c in checklist.checks}
    assert checklist.verdict == "GO" and checklist.exit_code == 0, [c.to_dict() for c in checklist.checks]
    # The batch job reruns its queries in the same snapshot: the noise baseline is measured, and zero.
    # Never verified against the source yet (`cdc verify`) only warns; no output has a sink here;
    # the local stack's connector holds its database password as a ${file:...} reference.
    assert statuses == {**dict.fromkeys(CHECK_NAMES, "pass"), "replication": "warn", "kafka_security": "warn",
                        "cdc_complete": "warn", "sink_isolation": "skipped"}  # fmt: skip
    security = next(c for c in checklist.checks if c.name == "kafka_security")
    assert "dualrun's clients use a plaintext listener" in security.evidence
    assert "broker listener PLAINTEXT is plaintext" in security.evidence
    assert "no authorizer on the broker" in security.evidence
    noise = next(c for c in checklist.checks if c.name == "noise_baseline")
    assert "batch vs batch rerun 0 rows" in noise.evidence

    # a parity failure lands in the history
    dirty = dataclasses.replace(pipeline_run(True, "0-1-1")["daily_revenue"], name=f"{spec.name}/daily_revenue")
    # as `reconcile --spec` records it: the history entry and its coverage ledger (compared exactly)
    record_exact(spec, "daily_revenue", history.record(spec.history_path, dirty))
    status, evidence = check(spec, "parity")
    assert status == "fail" and "daily_revenue latest run has 2 unexplained differences" in evidence

    # the job stops: its heartbeat goes stale-and-stopped, and changes pile up behind its group
    job.stop()
    workload.run(events=200, rate=1000)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and check(spec, "consumer_lag")[0] == "pass":
        time.sleep(0.5)
    status, evidence = check(spec, "consumer_lag")
    assert status == "fail" and f"group {spec.stream.group}" in evidence
    status, evidence = check(spec, "events_fresh")
    assert status == "fail" and "streaming job is stopped" in evidence
    assert evaluate(spec).exit_code == 1

    # the connector is paused
    connect.pause(spec.cdc.connector)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and check(spec, "connector_running")[0] == "pass":
            time.sleep(0.25)
        assert check(spec, "connector_running")[0] == "fail"
    finally:
        connect.resume(spec.cdc.connector)
    assert Context(spec).status is not None
