"""The sink side's pure parts: decoding what the sink reads, alignment, verdicts (migrate.sink)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from comparators import FrameSource, reconcile
from migrate.render import _sink_line
from migrate.sink import SinkAlignment, SinkParity, decode_json, record_key
from migrate.spec import PipelineSpec


def _decimal_field() -> dict[str, object]:
    return {"field": "amount", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "2"}}  # fmt: skip


def test_decode_json_reads_connect_decimals_exactly_and_bare_json() -> None:
    unscaled = base64.b64encode((-1050).to_bytes(2, "big", signed=True)).decode()
    wrapped = {"schema": {"type": "struct", "fields": [_decimal_field()]}, "payload": {"amount": unscaled}}
    assert decode_json(json.dumps(wrapped).encode()) == {"amount": Decimal("-10.50")}
    assert decode_json(b'{"order_id": 1}') == {"order_id": 1}
    assert decode_json(None) is None and decode_json(b'{"schema": {}, "payload": null}') is None
    assert record_key(b"7", ("order_id",)) == (7,)


def test_alignment_needs_every_partition_committed() -> None:
    behind = SinkAlignment("s", "connect-s", "t", ((0, 7), (1, 1)), ((0, 7), (1, None)), 1.0)
    assert not behind.reached and behind.lag == 1
    done = SinkAlignment("s", "connect-s", "t", ((0, 7), (1, 1)), ((0, 8), (1, 1)), 1.0)
    assert done.reached and done.lag == 0 and done.to_dict()["needed"] == {0: 7, 1: 1}


def test_sink_difference_is_on_the_sink_side_and_rendered() -> None:
    topic = pa.table({"order_id": [1, 2], "amount": pa.array([Decimal("1.00"), Decimal("2.00")], pa.decimal128(12, 2))})
    amounts = pa.array([Decimal("1.00"), Decimal("9.99"), Decimal("5.00")], pa.decimal128(12, 2))
    sink = pa.table({"order_id": [1, 2, 4], "amount": amounts})
    result = reconcile(FrameSource(topic, "topic"), FrameSource(sink, "sink"), ["order_id"])
    aligned = SinkAlignment("s", "connect-s", "t", ((0, 3),), ((0, 3),), 0.5)
    parity = SinkParity("orders_enriched", "orders_sink", aligned, result)
    assert parity.verdict == "differences" and parity.to_dict()["side"] == "sink"
    line = _sink_line("orders_enriched", parity)
    assert "only in sink 1" in line and "mismatched 1" in line and "side: sink orders_sink" in line
    late = SinkParity(
        "orders_enriched", "orders_sink", SinkAlignment("s", "connect-s", "t", ((0, 3),), ((0, 1),), 9), None
    )
    assert late.verdict == "sink_behind" and "2 record(s) behind" in _sink_line("orders_enriched", late)


def test_a_column_the_sink_lacks_is_drift_not_agreement() -> None:
    from migrate.sink import _frame

    sink = pa.table({"order_id": [1], "status": ["new"]})
    topic = _frame([{"order_id": 1, "status": "new", "amount": "1.00"}], sink.schema)
    result = reconcile(FrameSource(topic, "topic"), FrameSource(sink, "sink"), ["order_id"])
    assert result.verdict == "differences" and result.schema.only_in_left == ("amount",)


def test_a_variant_sinks_into_its_own_table_and_connector() -> None:
    from migrate.sink import connector_name
    from migrate.spec import OutputSinkSpec, example_spec_path, load_spec

    spec = load_spec(example_spec_path())
    outputs = dict(spec.outputs)
    outputs["orders_enriched"] = outputs["orders_enriched"].model_copy(update={"sink": OutputSinkSpec(table="oe")})
    spec = spec.model_copy(update={"outputs": outputs})
    variant = spec.variant("drop-deletes")
    sink = variant.outputs["orders_enriched"].sink
    assert sink is not None and sink.table == "oe_drop_deletes"
    assert connector_name(spec, "orders_enriched") == "shop-orders-oe-sink"
    assert connector_name(variant, "orders_enriched") == "shop-orders-drop-deletes-oe_drop_deletes-sink".replace(
        "_", "-"
    )
    named_sink = {"sink": OutputSinkSpec(table="orders_sink")}
    outputs["orders_enriched"] = outputs["orders_enriched"].model_copy(update=named_sink)
    assert connector_name(spec.model_copy(update={"outputs": outputs}), "orders_enriched") == "shop-orders-orders-sink"


def test_a_composite_key_travels_as_a_struct_and_is_compared_column_by_column() -> None:
    """A two-column output (daily_revenue: customer_id, order_day): the job writes the key struct
    from the row, or from the key text `[customer, "day"]` for a tombstone; the sink side reads
    the struct back into both key columns and compares on them."""
    from datetime import date

    from migrate.sink import sink_settings
    from migrate.spec import OutputSinkSpec, example_spec_path, load_spec
    from migrate.stream import connectjson

    schema = pa.schema([("customer_id", pa.int64()), ("order_day", pa.date32()),
                        ("revenue", pa.decimal128(12, 2))])  # fmt: skip
    keys = ("customer_id", "order_day")
    key_schema = connectjson.struct_schema(schema, keys, key=True)
    row = {"customer_id": 7, "order_day": date(2024, 4, 30), "revenue": Decimal("12.50")}
    from_row = connectjson.wrap(connectjson.key_payload("ignored", row, key_schema), key_schema)
    from_text = connectjson.wrap(connectjson.key_payload('[7, "2024-04-30"]', None, key_schema), key_schema)
    assert from_row == from_text
    assert record_key(from_text, keys) == (7, date(2024, 4, 30))
    with pytest.raises(connectjson.UnsupportedType, match="JSON array of its values"):
        connectjson.key_payload("7|2024-04-30", None, key_schema)

    amounts = pa.array([Decimal("1.00"), Decimal("12.50"), Decimal("3.00")], pa.decimal128(12, 2))
    days = [date(2024, 4, 29), date(2024, 4, 30), date(2024, 4, 30)]
    topic = pa.table({"customer_id": [7, 7, 8], "order_day": days, "revenue": amounts})
    sink = topic.filter(pa.array([True, True, False])).set_column(
        2, "revenue", pa.array([Decimal("1.00"), Decimal("12.51")], pa.decimal128(12, 2))
    )
    result = reconcile(FrameSource(topic, "topic"), FrameSource(sink, "sink"), list(keys))
    assert (result.only_in_left, result.mismatched_rows, result.matched_rows) == (1, 1, 2)

    spec = load_spec(example_spec_path())
    outputs = dict(spec.outputs)
    revenue = outputs["daily_revenue"]
    stream = revenue.stream.model_copy(update={"topic": "daily-revenue"})
    outputs["daily_revenue"] = revenue.model_copy(update={"sink": OutputSinkSpec(table="dr"), "stream": stream})
    config = sink_settings(spec.model_copy(update={"outputs": outputs}), "daily_revenue").to_config()
    assert config["primary.key.fields"] == ",".join(revenue.keys) and config["topics"] == "daily-revenue"


def _with_sink(spec_sink: dict[str, object], *, local: bool = True) -> PipelineSpec:
    from migrate.spec import OutputSinkSpec, example_spec_path, load_spec

    spec = load_spec(example_spec_path())
    outputs = dict(spec.outputs)
    outputs["orders_enriched"] = outputs["orders_enriched"].model_copy(
        update={"sink": OutputSinkSpec.model_validate(spec_sink)}
    )
    return spec.model_copy(update={"outputs": outputs, "local": local})


def test_the_sink_password_reaches_connect_as_a_file_reference_never_in_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from migrate.sink import sink_settings, sink_url
    from migrate.stackconfig import StackConfig

    # The local stack's PostgreSQL: the stack's own secrets file.
    monkeypatch.setenv("DUALRUN_DB_PASSWORD", "l0cal-Pg")
    local = sink_settings(_with_sink({"table": "oe"}), "orders_enriched")
    stack_file = StackConfig.from_env().connect_secrets_file
    assert local.to_config()["connection.password"] == f"${{file:{stack_file}:connection.password}}"
    assert local.password == "l0cal-Pg" and "l0cal-Pg" not in json.dumps(local.to_config())
    # A user's database and Connect: password_file on the worker's host; dualrun reads with password_env.
    monkeypatch.setenv("SINK_PW", "s3cr3t=:#!")
    user = {"table": "oe", "url": "postgresql+psycopg://app@db.example:5432/shop", "password_env": "SINK_PW",
            "password_file": "/etc/kafka/connect-secrets.properties"}  # fmt: skip
    spec = _with_sink(user, local=False)
    config = sink_settings(spec, "orders_enriched").to_config()
    assert config["connection.password"] == "${file:/etc/kafka/connect-secrets.properties:connection.password}"
    assert "s3cr3t" not in json.dumps(config)
    assert sink_url(spec, "orders_enriched", password=True).startswith("postgresql+psycopg://app:s3cr3t%3D")
    # Without password_file the password itself goes (what the connector_secrets check flags).
    bare = sink_settings(_with_sink({**user, "password_file": None}, local=False), "orders_enriched")
    assert (
        bare.to_config()["connection.password"] == "s3cr3t=:#!" and bare.to_dict()["connection.password"] == "********"
    )


def test_password_file_is_an_alternative_to_password_env_when_dualrun_can_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from migrate.errors import SpecError
    from migrate.services.properties import write_properties
    from migrate.sink import sink_url

    monkeypatch.delenv("SINK_PW", raising=False)
    secrets = tmp_path / "connect-secrets.properties"
    write_properties(secrets, {"connection.password": "p@ss w=rd"})
    user = {"table": "oe", "url": "postgresql+psycopg://app@db.example:5432/shop", "password_env": "SINK_PW",
            "password_file": str(secrets)}  # fmt: skip
    url = sink_url(_with_sink(user, local=False), "orders_enriched", password=True)
    assert url == "postgresql+psycopg://app:p%40ss%20w%3Drd@db.example:5432/shop"
    missing = _with_sink({**user, "password_file": str(tmp_path / "absent.properties")}, local=False)
    with pytest.raises(SpecError, match=r"SINK_PW is not set and password_file .*absent.properties is not readable"):
        sink_url(missing, "orders_enriched", password=True)
    write_properties(secrets, {"other": "x"})
    with pytest.raises(SpecError, match="has no connection.password"):
        sink_url(_with_sink(user, local=False), "orders_enriched", password=True)


def test_the_sink_password_is_among_the_secrets_scrubbed_from_its_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """sink_failure's reason goes into history and reports: its Connect client scrubs the sink's password."""
    from migrate.sink import sink_secrets

    monkeypatch.setenv("SINK_PW", "Sink-Pw-77")
    user = {"table": "oe", "url": "postgresql+psycopg://app@db.example:5432/shop", "password_env": "SINK_PW"}
    assert sink_secrets(_with_sink(user, local=False), "orders_enriched") == ("Sink-Pw-77",)
    monkeypatch.setenv("DUALRUN_DB_PASSWORD", "l0cal-Pg")  # the local stack's PostgreSQL
    assert sink_secrets(_with_sink({"table": "oe"}), "orders_enriched") == ("l0cal-Pg",)
    monkeypatch.delenv("SINK_PW")  # unreadable here: nothing to scrub, and no error on the way
    assert sink_secrets(_with_sink(user, local=False), "orders_enriched") == ()


def test_a_password_sent_in_clear_is_warned_about_by_its_setting_never_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from migrate.sink import clear_password_warning, sink_settings

    monkeypatch.setenv("SINK_PW", "Warn-Pw-55")
    user = {"table": "oe", "url": "postgresql+psycopg://app@db.example:5432/shop", "password_env": "SINK_PW"}
    bare = sink_settings(_with_sink(user, local=False), "orders_enriched")
    warning = clear_password_warning("orders_enriched", bare)
    assert warning is not None and warning.startswith("warning: ") and "\n" not in warning
    assert "outputs.orders_enriched.sink.password_file" in warning and bare.name in warning
    assert "Warn-Pw-55" not in warning
    referenced = sink_settings(
        _with_sink({**user, "password_file": "/etc/kafka/connect-secrets.properties"}, local=False), "orders_enriched"
    )
    assert clear_password_warning("orders_enriched", referenced) is None
    monkeypatch.setenv("DUALRUN_DB_PASSWORD", "l0cal-Pg")  # the local stack's PostgreSQL: its own secrets file
    local = sink_settings(_with_sink({"table": "oe"}), "orders_enriched")
    assert clear_password_warning("orders_enriched", local) is None


@pytest.mark.parametrize("failed", [None, "org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized"])
def test_a_sink_not_compared_is_recorded_and_the_run_report_is_never_clean(tmp_path: Path, failed: str | None) -> None:
    """Batch vs stream clean, the sink behind (or FAILED): the history gets `<output>@sink` for that
    batch run with the verdict and why, so `dualrun report` reads the run as not clean."""
    from comparators import history
    from comparators.report import render_run
    from comparators.report.runs import load_run
    from tests.unit.report.builders import PIPELINE, pipeline_run

    path, batch_run = tmp_path / "h.duckdb", "batch-behind"
    for output, result in pipeline_run(False, "0-1-100").items():
        history.record(path, replace(result, name=f"{PIPELINE}/{output}"), batch_run=batch_run)
    behind = SinkAlignment("s", "connect-s", "orders-enriched", ((0, 44),), ((0, 30),), 60.0, ((0, 45),))
    parity = SinkParity("orders_enriched", "orders_sink", behind, None, failed=failed)
    history.record(path, parity.history_result(PIPELINE), batch_run=batch_run)
    verdict = "sink_failed" if failed else "sink_behind"
    assert [r.verdict for r in history.runs(path, f"{PIPELINE}/orders_enriched@sink")] == [verdict]
    report = load_run(path, pipeline=PIPELINE)
    assert [o.output for o in report.outputs] == ["orders_enriched", "daily_revenue", "orders_enriched@sink"]
    sink = report.outputs[2].result
    assert sink.verdict == verdict and sink.left.position == "orders-enriched [0]@45"
    assert sink.not_compared is not None
    assert ("14 record(s) behind" if failed is None else failed) in sink.not_compared[1]
    assert report.verdict != "clean" and report.exit_code == 1 and report.parity_streak == 0
    text = render_run(report, "markdown")
    assert "CLEAN" not in text.splitlines()[0] and f"| `orders_enriched@sink` | {verdict} |" in text
    assert "NOT COMPARED" in text and "(not compared) |" in text
    junit = render_run(report, "junit")
    assert f'<failure type="{verdict}" message="not compared: ' in junit
