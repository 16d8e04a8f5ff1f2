"""The third side on the real stack (`stack up --with sink`): Debezium's JDBC sink writes an output
topic into PostgreSQL; dualrun reconciles the table with the topic at an aligned read point, and the
checklist fails a sink that reads an exactly-once topic without read_committed."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from cdc import client
from cdc.client import is_reference
from cdc.connect import ConnectClient
from cdc.topics import TopicAdmin
from comparators import history
from comparators.report import render_run
from migrate import render
from migrate.asof import reconcile_spec
from migrate.checklist.context import Context
from migrate.checklist.reconciliation import parity as parity_check
from migrate.checklist.security import connector_secrets
from migrate.checklist.sink import sink_isolation
from migrate.errors import PERMANENT_CONFIG_EXIT
from migrate.reporting import build_report
from migrate.sink import reconcile_sink, register_sink
from migrate.spec import OutputSinkSpec, PipelineSpec
from migrate.stackconfig import StackConfig
from migrate.stream.job import StreamJob
from tests.integration.conftest import Database
from tests.integration.migrate.conftest import JobThread, make_pipeline

pytestmark = pytest.mark.integration

KEY_SCHEMA = {
    "type": "struct",
    "optional": False,
    "fields": [{"type": "int64", "optional": False, "field": "order_id"}],
}
VALUE_SCHEMA = {
    "type": "struct", "optional": True, "fields": [
        {"type": "int64", "optional": False, "field": "order_id"},
        {"type": "string", "optional": True, "field": "status"},
        {"type": "bytes", "optional": True, "field": "amount", "name": "org.apache.kafka.connect.data.Decimal",
         "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "12"}},
    ],
}  # fmt: skip


def _amount(value: Decimal) -> str:
    unscaled = int(value.scaleb(2))
    return base64.b64encode(unscaled.to_bytes(8, "big", signed=True)).decode()


def _record(order_id: int, status: str | None, amount: str = "0") -> tuple[bytes, bytes | None]:
    key = json.dumps({"schema": KEY_SCHEMA, "payload": {"order_id": order_id}}).encode()
    if status is None:
        return key, None
    payload = {"order_id": order_id, "status": status, "amount": _amount(Decimal(amount))}
    return key, json.dumps({"schema": VALUE_SCHEMA, "payload": payload}).encode()


def _transaction(config: StackConfig, topic: str, txn_id: str, records: list[tuple[bytes, bytes | None]],
                 *, commit: bool) -> None:  # fmt: skip
    producer = client.producer(config.bootstrap_servers, {"transactional.id": txn_id, "enable.idempotence": True})
    producer.init_transactions(30)
    producer.begin_transaction()
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def _sink_spec(stack: StackConfig, db: Database, tmp_path: Path, name: str, topic: str) -> PipelineSpec:
    spec = make_pipeline(stack, db, tmp_path, name)
    outputs = spec.model_dump(mode="json")["outputs"]
    outputs["orders_enriched"]["stream"] = {"topic": topic}
    outputs["orders_enriched"]["sink"] = {"table": f"{name}_enriched"}
    return PipelineSpec.model_validate({**spec.model_dump(mode="json"), "outputs": outputs, "origin": spec.origin})


def _rows(stack: StackConfig, table: str) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(stack.postgres_url().replace("postgresql+psycopg", "postgresql")) as con:
        return {r[0]: r for r in con.execute(f'SELECT order_id, status, amount FROM "{table}"').fetchall()}


def _leaks(text: str, password: str) -> bool:
    """`password` shown as a value in `text`. The local stack's password is "dualrun", which is also
    part of every default state path (`.dualrun/...`) and of names: an occurrence inside a path or an
    identifier is not a leak, one after `=`, `:`, a quote or a space is."""
    return re.search(rf"(?<![\w./-]){re.escape(password)}(?![\w/-])", text) is not None


def _holding(config: dict[str, str], password: str) -> list[str]:
    """The properties whose value shows `password` (config provider references name a file, never
    the secret; the local stack's user name is its password: that property is public by nature)."""
    return [
        key for key, value in config.items()
        if not is_reference(value) and _leaks(str(value), password) and key != "connection.username"
    ]  # fmt: skip


@pytest.mark.parametrize("read_committed", [True, False], ids=["read_committed", "read_uncommitted"])
def test_sink_reconciled_as_third_side(
    postgres_stack: StackConfig, db: Database, tmp_path: Path, unique: Callable[[str], str], read_committed: bool
) -> None:
    name = unique("sink").replace("-", "_")
    topic = f"{name}-enriched"
    TopicAdmin(postgres_stack.bootstrap_servers).create(topic, partitions=2)
    spec = _sink_spec(postgres_stack, db, tmp_path, name, topic)
    settings = register_sink(spec, "orders_enriched", read_committed=read_committed).settings
    connect = ConnectClient(postgres_stack.connect_url)
    assert connect.config(settings.name).get("consumer.override.isolation.level") == (
        "read_committed" if read_committed else None
    )
    # The password reaches Connect as a FileConfigProvider reference: its REST API (read raw here,
    # not through dualrun's masking client) never shows it, and the sink still logs in and writes.
    raw = requests.get(f"{postgres_stack.connect_url}/connectors/{settings.name}/config", timeout=10).json()
    assert raw["connection.password"] == f"${{file:{postgres_stack.connect_secrets_file}:connection.password}}"
    assert not _holding(raw, postgres_stack.db_password)
    assert connector_secrets(Context(spec)).status == "pass"

    _transaction(postgres_stack, topic, f"{name}-t1", [_record(1, "new", "10.50"), _record(2, "new", "7.25"),
                                                         _record(3, "new", "1.00")], commit=True)  # fmt: skip
    # The job's aborted attempt: a wrong amount for 1, a key that never existed, a delete of 2.
    _transaction(postgres_stack, topic, f"{name}-t2", [_record(1, "paid", "999.99"), _record(4, "ghost", "5.00"),
                                                         _record(2, None)], commit=False)  # fmt: skip
    _transaction(postgres_stack, topic, f"{name}-t3", [_record(3, "paid", "1.00"), _record(5, "new", "3.10")],
                 commit=True)  # fmt: skip

    parity = reconcile_sink(spec, "orders_enriched", timeout=90)
    assert parity.alignment.reached, parity.to_dict()["alignment"]
    result = parity.reconciliation
    assert result is not None
    rows = _rows(postgres_stack, f"{name}_enriched")
    check = sink_isolation(Context(spec))
    if read_committed:
        assert rows == {1: (1, "new", Decimal("10.50")), 2: (2, "new", Decimal("7.25")),
                        3: (3, "paid", Decimal("1.00")), 5: (5, "new", Decimal("3.10"))}  # fmt: skip
        assert parity.verdict == "clean", result.to_dict()
        assert result.matched_rows == 4
        assert check.status == "pass", check.evidence
    else:
        # What users read holds the aborted transaction: dualrun says so, on the sink's side.
        assert 4 in rows and 2 not in rows and rows[1][2] == Decimal("999.99")
        assert parity.verdict == "differences" and parity.side == "sink"
        assert result.only_in_right == 1  # order 4, only in the sink
        assert result.only_in_left == 1  # order 2, deleted by an aborted transaction
        assert result.mismatched_rows == 1  # order 1's amount
        assert check.status == "fail"
        assert "consumer.override.isolation.level=read_committed" in check.evidence
        assert settings.name in check.evidence


def test_three_way_parity_of_the_reference_pipeline_is_clean(
    postgres_stack: StackConfig, pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread]
) -> None:
    """dualrun's job writes orders-enriched with schemas (its output has a sink); the JDBC sink
    writes it into PostgreSQL; batch vs stream vs sink all agree."""
    from tests.integration.migrate.test_pipelines import assert_clean, run_with_batch_in_the_middle

    outputs = dict(pipeline.outputs)
    sink = OutputSinkSpec(table=f"{pipeline.name.replace('-', '_')}_enriched")
    outputs["orders_enriched"] = outputs["orders_enriched"].model_copy(update={"sink": sink})
    spec = pipeline.model_copy(update={"outputs": outputs})
    job = jobs(spec)
    register_sink(spec, "orders_enriched")
    run_id = run_with_batch_in_the_middle(spec, events=800)
    result = reconcile_spec(spec, run_id)
    assert result.verdict == "clean", render.spec_reconciliation(result)
    assert_clean(result)
    parity = result.sinks["orders_enriched"]
    assert parity.verdict == "clean", render.spec_reconciliation(result)
    assert parity.reconciliation is not None and parity.reconciliation.matched_rows > 0
    assert parity.reconciliation.right.rows == parity.reconciliation.left.rows
    sink_rows = f"sink {parity.reconciliation.right.rows:>8}"
    assert sink_rows in render.spec_reconciliation(result)
    assert "orders_enriched" in render.spec_reconciliation(result) and "side: sink" in render.spec_reconciliation(
        result
    )
    assert sink_isolation(Context(spec)).status == "pass"
    # The sink is a side of the recorded run: its history entry, the run report and the parity check.
    assert set(result.history_ids) == {*spec.outputs, "orders_enriched@sink"}
    sink_entry = history.runs(spec.history_path, f"{spec.name}/orders_enriched@sink", limit=1)
    assert sink_entry[0].run_id == result.history_ids["orders_enriched@sink"] and sink_entry[0].verdict == "clean"
    report = build_report(spec, histories=False)
    assert [o.output for o in report.outputs][-1] == "orders_enriched@sink" and report.verdict == "clean"
    markdown = render_run(report, "markdown")
    assert f"| `orders_enriched@sink` | clean | – | {parity.reconciliation.left.rows:,} |" in markdown
    assert "sink rows" in render_run(report, "html")
    assert "orders_enriched@sink streak 1" in parity_check(Context(spec)).evidence
    prom = (spec.path(".") / "monitoring" / "textfile" / f"reconcile-{spec.name}.prom").read_text()
    assert f'dualrun_parity_verdict{{output="orders_enriched@sink",spec="{spec.name}",verdict="clean"}} 1.0' in prom
    job.stop()
    # A restart restores its orders from the topic it wrote with schemas: the same state as before.
    restarted = StreamJob(spec)
    assert restarted.restore_state() > 0

    def data(orders: dict[int, Any]) -> dict[int, tuple[Any, ...]]:  # positions are restored from headers
        return {k: (o.customer_id, o.amount, o.status, o.created_at, o.updated_at, o.day) for k, o in orders.items()}

    assert data(restarted.transform.state.orders) == data(job.job.transform.state.orders)


def test_a_two_column_key_is_the_sink_tables_primary_key(
    postgres_stack: StackConfig, db: Database, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """daily_revenue (customer_id, order_day): the JDBC sink upserts and deletes by both columns
    (primary.key.fields from the spec's keys) and dualrun compares the table on both."""
    import datetime as dt

    from migrate.stream import connectjson

    name = unique("sinkpk").replace("-", "_")
    topic = f"{name}-revenue"
    TopicAdmin(postgres_stack.bootstrap_servers).create(topic, partitions=2)
    base = make_pipeline(postgres_stack, db, tmp_path, name)
    outputs = base.model_dump(mode="json")["outputs"]
    outputs["daily_revenue"]["stream"] = {"topic": topic}
    outputs["daily_revenue"]["sink"] = {"table": f"{name}_revenue"}
    spec = PipelineSpec.model_validate({**base.model_dump(mode="json"), "outputs": outputs, "origin": base.origin})
    keys = tuple(spec.outputs["daily_revenue"].keys)
    assert keys == ("customer_id", "order_day")
    settings = register_sink(spec, "daily_revenue").settings
    assert ConnectClient(postgres_stack.connect_url).config(settings.name)["primary.key.fields"] == ",".join(keys)

    import pyarrow as pa

    schema = pa.schema([("customer_id", pa.int64()), ("order_day", pa.date32()), ("revenue", pa.decimal128(12, 2))])
    key_schema = connectjson.struct_schema(schema, keys, key=True)
    value_schema = connectjson.struct_schema(schema, keys, key=False)

    def rec(customer: int, day: dt.date, revenue: str | None) -> tuple[bytes, bytes | None]:
        row = {"customer_id": customer, "order_day": day, "revenue": None if revenue is None else Decimal(revenue)}
        key = connectjson.wrap(connectjson.key_payload(json.dumps([customer, day.isoformat()]), None, key_schema),
                               key_schema)  # fmt: skip
        assert key is not None
        return key, None if revenue is None else connectjson.wrap(row, value_schema)

    d1, d2 = dt.date(2024, 4, 29), dt.date(2024, 4, 30)
    # Same customer on two days, same day for two customers: only both columns tell the rows apart.
    _transaction(postgres_stack, topic, f"{name}-t1", [rec(7, d1, "10.00"), rec(7, d2, "20.00"),
                                                         rec(8, d2, "30.00")], commit=True)  # fmt: skip
    _transaction(postgres_stack, topic, f"{name}-t2", [rec(7, d2, "25.50"), rec(8, d2, None)], commit=True)
    parity = reconcile_sink(spec, "daily_revenue", timeout=90)
    assert parity.alignment.reached, parity.to_dict()["alignment"]
    assert parity.verdict == "clean", parity.reconciliation.to_dict() if parity.reconciliation else None
    assert parity.reconciliation is not None and parity.reconciliation.matched_rows == 2
    with psycopg.connect(postgres_stack.postgres_url().replace("postgresql+psycopg", "postgresql")) as con:
        rows = con.execute(f'SELECT customer_id, order_day, revenue FROM "{name}_revenue" ORDER BY 1, 2').fetchall()
        pk = con.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY a.attname",
            (f'"{name}_revenue"',),
        ).fetchall()
    assert rows == [(7, d1, Decimal("10.00")), (7, d2, Decimal("25.50"))]
    assert [r[0] for r in pk] == ["customer_id", "order_day"]


def test_the_checklist_names_a_sink_password_in_clear_never_its_value(
    postgres_stack: StackConfig, db: Database, tmp_path: Path, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A sink of a user's own database (sink.url, password_env) without password_file sends the
    password itself: connector_secrets warns, naming the connector and the property only; with
    password_file the config holds a reference and the check passes."""
    name = unique("sinkpw").replace("-", "_")
    topic = f"{name}-enriched"
    TopicAdmin(postgres_stack.bootstrap_servers).create(topic, partitions=1)
    spec = _sink_spec(postgres_stack, db, tmp_path, name, topic)
    monkeypatch.setenv("DUALRUN_TEST_SINK_PASSWORD", postgres_stack.db_password)
    url = postgres_stack.postgres_url(password=False)
    own = {"table": f"{name}_enriched", "url": url, "password_env": "DUALRUN_TEST_SINK_PASSWORD"}
    outputs = spec.model_dump(mode="json")["outputs"]
    outputs["orders_enriched"]["sink"] = own
    clear = PipelineSpec.model_validate({**spec.model_dump(mode="json"), "outputs": outputs, "origin": spec.origin})
    registered = register_sink(clear, "orders_enriched")
    settings, warned = registered.settings, registered.warning or ""  # at register time, before any checklist
    assert "outputs.orders_enriched.sink.password_file" in warned and not _leaks(warned, postgres_stack.db_password)
    raw = requests.get(f"{postgres_stack.connect_url}/connectors/{settings.name}/config", timeout=10).json()
    assert raw["connection.password"] == postgres_stack.db_password  # what Connect shows anyone who asks
    check = connector_secrets(Context(clear))
    assert check.status == "warn", check.evidence
    assert f"connector {settings.name}: connection.password in clear" in check.evidence
    assert not _leaks(check.evidence, postgres_stack.db_password) and "password_file" in check.evidence
    # The same sink with a password file on the worker's host: a reference, and the check passes.
    outputs["orders_enriched"]["sink"] = {**own, "password_file": str(postgres_stack.connect_secrets_file)}
    fixed = PipelineSpec.model_validate({**spec.model_dump(mode="json"), "outputs": outputs, "origin": spec.origin})
    assert register_sink(fixed, "orders_enriched").warning is None
    # A config update reaches every worker through the config topic: poll until it is served.
    deadline = time.monotonic() + 30
    while True:
        raw = requests.get(f"{postgres_stack.connect_url}/connectors/{settings.name}/config", timeout=10).json()
        if is_reference(raw.get("connection.password")) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not _holding(raw, postgres_stack.db_password)
    check = connector_secrets(Context(fixed))
    assert check.status == "pass" and settings.name in check.evidence, check.evidence
    ConnectClient(postgres_stack.connect_url).delete(settings.name)


def test_a_failed_sink_is_reported_at_once_and_recorded_as_not_clean(
    postgres_stack: StackConfig, db: Database, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """A record the sink's JsonConverter cannot read fails its task: reconcile_sink says so without
    waiting out its timeout, the history's `@sink` entry is not clean, connector_running names it."""
    from migrate.checklist.connector import connector_running

    name = unique("sinkfail").replace("-", "_")
    topic = f"{name}-enriched"
    TopicAdmin(postgres_stack.bootstrap_servers).create(topic, partitions=1)
    spec = _sink_spec(postgres_stack, db, tmp_path, name, topic)
    settings = register_sink(spec, "orders_enriched").settings
    _transaction(postgres_stack, topic, f"{name}-t1", [(b"1", b"not json at all")], commit=True)
    connect = ConnectClient(postgres_stack.connect_url)
    deadline = time.monotonic() + 60
    while not connect.status(settings.name).failed and time.monotonic() < deadline:
        time.sleep(0.5)
    started = time.monotonic()
    parity = reconcile_sink(spec, "orders_enriched", timeout=90)
    assert time.monotonic() - started < 30, "a FAILED sink must not be waited for"
    assert parity.verdict == "sink_failed" and parity.failed is not None
    assert parity.failed.startswith("task 0 FAILED: ") and "\n" not in parity.failed
    history.record(spec.history_path, parity.history_result(spec.name), batch_run="batch-failed-sink")
    entry = history.runs(spec.history_path, f"{spec.name}/orders_enriched@sink")
    assert [e.verdict for e in entry] == ["sink_failed"] and entry[0].unexplained == 1
    check = connector_running(Context(spec))
    assert check.status == "fail" and f"sink connector {settings.name} RUNNING, task 0 FAILED" in check.evidence


def test_the_stream_job_refuses_to_restore_an_output_topic_an_earlier_run_wrote_as_bare_json(
    postgres_stack: StackConfig, db: Database, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """The plain demo wrote orders-enriched as bare JSON; with `sink:` the job writes Connect JSON and
    would read those records back as such: it refuses in one line (exit 2, not restarted)."""
    from migrate.stream.restore import RestoreFormatError

    name = unique("sinkfmt").replace("-", "_")
    topic = f"{name}-enriched"
    TopicAdmin(postgres_stack.bootstrap_servers).create(topic, partitions=1)
    producer = client.producer(postgres_stack.bootstrap_servers)
    producer.produce(topic, key=b"7", value=b'{"order_id": 7, "amount": "10.50"}')
    assert producer.flush(30) == 0
    spec = _sink_spec(postgres_stack, db, tmp_path, name, topic)
    with pytest.raises(RestoreFormatError) as caught:
        StreamJob(spec).restore_state()
    text = str(caught.value)
    expected = (f"cannot restore outputs.orders_enriched from topic {topic}: record {topic}/0@0 is bare JSON, "
                "but the spec (with outputs.orders_enriched.sink) writes Connect JSON")  # fmt: skip
    assert text.startswith(expected)
    assert "\n" not in text and caught.value.exit_code == PERMANENT_CONFIG_EXIT  # the supervisor stops
