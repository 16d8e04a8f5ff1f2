"""A connector that is RUNNING but can never deliver: registered without topic.creation.* (the
article's JSON) on the local broker, which does not auto-create topics."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from cdc.connect import ConnectClient
from migrate.cli import cli
from migrate.connector import connector_settings, ensure_connector
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database, wait_status
from tests.integration.migrate.conftest import make_pipeline, workload_for

pytestmark = pytest.mark.integration


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps at the terminal width; names stay whole


def _stack_args(stack: StackConfig) -> list[str]:
    return ["--state-dir", str(stack.state_dir), "--kafka-port", str(stack.ports.kafka),
            "--connect-port", str(stack.ports.connect)]  # fmt: skip


def test_a_running_connector_without_topic_creation_is_stuck_and_said_so(
    stack: StackConfig, db: Database, connect: ConnectClient, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    spec = make_pipeline(stack, db, tmp_path, unique("stuck"))
    config = {k: v for k, v in connector_settings(spec).to_config().items() if not k.startswith("topic.creation.")}
    connect.put(spec.cdc.connector, config)
    wait_status(connect, spec.cdc.connector, lambda s: s.running)
    workload_for(spec).run(events=20, rate=200)  # the source writes; nothing can reach Kafka
    orders = spec.cdc.topic(spec.cdc.tables[1])

    status = CliRunner().invoke(cli, ["cdc", "status", "--name", spec.cdc.connector, *_stack_args(stack)])
    text = _flat(status.output)
    assert status.exit_code == 1, status.output
    assert f"connector {spec.cdc.connector}: RUNNING" in text and "task 0: RUNNING" in text
    assert f"{orders} (missing)" in text and f"{spec.cdc.topic_prefix} (missing)" in text
    assert "STUCK" in text and "topic.creation.default.replication.factor" in text
    assert "auto.create.topics.enable" in text

    checklist = CliRunner().invoke(
        cli, ["checklist", "--spec", str(tmp_path / "dualrun.yaml"), "--check", "connector_running", "--format", "json"]
    )
    assert checklist.exit_code == 1, checklist.output
    assert '"verdict": "NO-GO"' in checklist.output
    assert f"connector {spec.cdc.connector} RUNNING but its topic(s)" in checklist.output
    assert orders in checklist.output

    tail = CliRunner().invoke(
        cli, ["cdc", "tail", "--topic-prefix", spec.cdc.topic_prefix, "--table", spec.cdc.tables[1],
              "--from-beginning", *_stack_args(stack)],
    )  # fmt: skip
    assert tail.exit_code == 2, tail.output  # nothing to read: usage-ish; the finding is `cdc status`'s
    assert _flat(tail.output).startswith(f"error: none of the topics {orders} exists on {stack.bootstrap_servers}")
    assert "dualrun cdc status" in tail.output


def test_the_same_connector_with_topic_creation_delivers_and_status_says_ok(
    stack: StackConfig, db: Database, connect: ConnectClient, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    spec = make_pipeline(stack, db, tmp_path, unique("live"))
    ensure_connector(spec)  # topic.creation.default.* included
    workload_for(spec).run(events=20, rate=200)
    orders = spec.cdc.topic(spec.cdc.tables[1])
    wait_status(connect, spec.cdc.connector, lambda s: orders in connect.topics(spec.cdc.connector))

    status = CliRunner().invoke(cli, ["cdc", "status", "--name", spec.cdc.connector, *_stack_args(stack)])
    assert status.exit_code == 0, status.output
    assert "missing" not in status.output and "STUCK" not in status.output
    assert orders in _flat(status.output)


def test_a_running_connector_whose_topics_were_deleted_delivers_nothing_and_the_checklist_says_so(
    stack: StackConfig, db: Database, connect: ConnectClient, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Connect creates a topic once per task; deleted afterwards, it is never created again, and the
    connector stays RUNNING while the source writes. Its offset stops behind the source: a stall."""
    from cdc.topics import TopicAdmin

    spec = make_pipeline(stack, db, tmp_path, unique("stall"))
    ensure_connector(spec)
    workload = workload_for(spec)
    topics = connect.topics(spec.cdc.connector)
    wait_status(connect, spec.cdc.connector, lambda s: spec.cdc.topic(spec.cdc.tables[1]) in connect.topics(s.name))
    admin = TopicAdmin(stack.bootstrap_servers)
    # The stall rule compares the connector's committed GTIDs with the source's: wait until it has
    # committed a streaming offset (a snapshot offset carries none), as a connector running for a while has.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any(
        (o.get("offset") or {}).get("gtids") for o in connect.offsets(spec.cdc.connector)
    ):
        workload.run(events=2, rate=200)
        time.sleep(0.5)
    doomed = {*topics, *connect.topics(spec.cdc.connector)}
    for topic in doomed:
        admin.delete(topic)
    deadline = time.monotonic() + 60  # deletion is asynchronous: until it is done, the old records count
    while doomed & admin.topic_names() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not doomed & admin.topic_names(), f"topics still listed after deletion: {doomed & admin.topic_names()}"
    workload.run(events=20, rate=200)  # the source writes; the connector can send none of it

    checklist = CliRunner().invoke(
        cli, ["checklist", "--spec", str(tmp_path / "dualrun.yaml"), "--check", "connector_running", "--format", "json"]
    )
    assert wait_status(connect, spec.cdc.connector, lambda s: s.running).running  # still RUNNING
    assert checklist.exit_code == 1, checklist.output
    assert f"connector {spec.cdc.connector} RUNNING but delivering nothing" in checklist.output
    status = CliRunner().invoke(cli, ["cdc", "status", "--name", spec.cdc.connector, *_stack_args(stack)])
    assert status.exit_code == 1, status.output
    assert "STUCK: RUNNING but delivering nothing" in _flat(status.output)
    # And it really is stuck, not just slow: more writes, and its change topic never comes back.
    workload.run(events=20, rate=200)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert not admin.exists(spec.cdc.topic(spec.cdc.tables[1])), "the connector recovered: not a stall"
        time.sleep(1)
