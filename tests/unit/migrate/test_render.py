"""Terminal tables at 80 and 200 columns (golden files), and JSON untouched by either layout."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from rich.console import Console

from migrate import render
from migrate.checklist.model import Checklist, CheckResult

GOLDEN = Path(__file__).parents[2] / "golden" / "render"
REGEN = os.environ.get("DUALRUN_REGEN_GOLDEN") == "1"

CHECKS = Checklist(
    "shop-orders",
    (
        CheckResult(
            "connector_running",
            "fail",
            "connector dualrun-shop RUNNING but its topic(s) dbserver1.shop.orders, dbserver1 do not exist and "
            "nothing will create them: the broker has auto.create.topics.enable=false and the connector has no "
            "topic.creation.default.* settings, so Debezium retries UNKNOWN_TOPIC_OR_PARTITION forever",
            "connector and all tasks RUNNING, its topics exist or can be created",
        ),
        CheckResult(
            "events_fresh",
            "pass",
            "job running (pid 4242), reported 1s ago; last event 3s ago",
            "job report and last event within 60s (or nothing waiting)",
        ),  # fmt: skip
        CheckResult(
            "replication",
            "warn",
            "one broker: replication factor 1, min.insync.replicas 1 on 6 topic(s); a broker loss stops the pipeline",
            "RF >= min(3, brokers) and 2 <= min.insync.replicas < RF",
        ),  # fmt: skip
        CheckResult("parity", "skipped", "could not evaluate: Kafka is not reachable at 127.0.0.1:9092", "streak >= 3"),
    ),
    ("parity",),
)


def rendered(width: int) -> str:
    out = io.StringIO()
    render.checklist(CHECKS, Console(file=out, width=width, force_terminal=False, color_system=None))
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 200])
def test_checklist_matches_golden(width: int) -> None:
    text = rendered(width)
    golden = GOLDEN / f"checklist-{width}.txt"
    if REGEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("width", [80, 200])
def test_checklist_fits_the_width_and_wraps_whole_words(width: int) -> None:
    text = rendered(width)
    assert max(len(line) for line in text.splitlines()) <= width
    tokens = set(text.split())
    for check in CHECKS.checks:
        for word in check.evidence.split():
            assert word in tokens, f"{word!r} was split at {width} columns"


def test_narrow_terminals_get_blocks_and_wide_ones_a_table() -> None:
    narrow, wide = rendered(80), rendered(200)
    assert "\n    connector dualrun-shop RUNNING but its topic(s)" in narrow  # evidence indented under its check
    assert "┃ evidence" not in narrow and "┃ evidence" in wide  # the table's header


def test_json_is_the_same_whatever_the_terminal() -> None:
    data = json.loads(render.to_json(CHECKS.to_dict()))
    assert data["checks"][0]["evidence"] == CHECKS.checks[0].evidence
    assert data["verdict"] == "NO-GO" and data["exit_code"] == 2


@pytest.mark.parametrize("width", [80, 200])
def test_stack_status_and_a_stuck_connector_fit_the_width(width: int) -> None:
    from cdc.connect import ConnectorStatus, TaskStatus
    from cdc.health import ConnectorHealth
    from migrate.services.base import ServiceStatus
    from migrate.stack import StackStatus

    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    detail = "wal_level logical, 0 replication slots, current LSN 0/192C000; data in /var/lib/postgresql/dualrun/x"
    render.stack_status(StackStatus((ServiceStatus("postgres", 5432, True, True, "15.14", 42, detail),)), console)
    status = ConnectorStatus("dualrun-shop", "RUNNING", "127.0.0.1:8083", (TaskStatus(0, "RUNNING", None, None),), None)
    stuck = "RUNNING but its topic(s) dbserver1.shop.orders do not exist and nothing will create them"
    render.connector_health(ConnectorHealth(status, ("dbserver1.shop.orders",), ("dbserver1.shop.orders",),
                                            False, stuck), console)  # fmt: skip
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    assert "/var/lib/postgresql/dualrun/x" in text  # a path is never broken
    assert "topics: dbserver1.shop.orders (missing)" in text and "STUCK: RUNNING but" in text


def test_an_output_compared_through_the_offset_fence_shows_its_window_and_coverage() -> None:
    from migrate.external import OutputCheck
    from migrate.window import Coverage, Window, WindowEvent

    window = Window("offsets", {"db.shop.orders[0]": 10}, {"db.shop.orders[0]": 12},
                    (WindowEvent("shop.orders", None, {"order_id": 1}),) * 2)  # fmt: skip
    check = OutputCheck("orders", "topic orders", None, "", 3, None, window=window, coverage=Coverage(97, 3))
    lines = render._check_lines("orders", check)
    assert lines == [
        "  orders           window      2 change event(s) between the offset fences: 97 key(s) verified, 3 in flight "
        "(coverage 97.0%)"
    ]
    shown = check.to_dict()
    assert shown["coverage"] == {"verified_keys": 97, "in_flight_keys": 3, "coverage": 0.97}
    assert shown["window"]["events"] == 2 and shown["window"]["events_per_table"] == {"shop.orders": 2}


def test_a_checklist_that_could_not_run_says_so_in_one_line_never_no_go() -> None:
    down = "could not evaluate: Kafka refused the credentials of user 'dualrun' (SASL authentication failed)"
    checks = (CheckResult("parity", "skipped", down, "streak >= 3"), CheckResult("replication", "skipped", down, "RF"))
    result = Checklist("shop-orders", checks, ("parity", "replication"))
    out = io.StringIO()
    render.checklist(result, Console(file=out, width=80, force_terminal=False, color_system=None))
    text = out.getvalue()
    assert text.count("\n") == 1 and "NO-GO" not in text, text
    assert text.startswith("could not evaluate the checklist of shop-orders: Kafka refused the credentials")
    assert text.rstrip().endswith("(exit 2)") and result.exit_code == 2


def test_a_partly_evaluated_checklist_heads_with_could_not_evaluate() -> None:
    assert rendered(200).startswith("COULD NOT EVALUATE  shop-orders:")


def test_a_spec_reconciliation_with_a_sink_matches_golden() -> None:
    """batch vs stream clean, the sink's table not: a line per side, the verdict, the sink's report."""
    import dataclasses
    from datetime import UTC, datetime

    from cdc.position import Position
    from migrate.asof import SpecReconciliation
    from migrate.batch import BatchRun
    from migrate.progress import StreamProgress
    from migrate.sink import SinkAlignment, SinkParity
    from tests.unit.report.builders import pipeline_run, sink_run

    at = Position.binlog_snapshot("mysql-bin.000003", 9000)
    when = datetime(2024, 4, 30, 2, tzinfo=UTC)
    run = BatchRun("20240430T020000-test01", when, when, at, {"orders_enriched": 12, "daily_revenue": 6})
    aligned = SinkAlignment("shop-orders-oe-sink", "connect-shop-orders-oe-sink", "orders-enriched", ((0, 44),),
                            ((0, 44),), 0.5, ((0, 44),))  # fmt: skip
    sink = SinkParity("orders_enriched", "oe", aligned, dataclasses.replace(sink_run(True, 44), elapsed_s=0.25), 1)
    outputs = {k: dataclasses.replace(r, elapsed_s=0.25) for k, r in pipeline_run(False, "0-1-1").items()}
    result = SpecReconciliation("shop-orders", run, StreamProgress(True, at, at, 0, 0.0, "running"), outputs,
                                sinks={"orders_enriched": sink})  # fmt: skip
    for fmt, name in (("text", "reconcile-sink.txt"), ("markdown", "reconcile-sink.md")):
        text = render.spec_reconciliation(result, fmt)
        golden = GOLDEN / name
        if REGEN:
            golden.write_text(text)
        assert text == golden.read_text(), f"{golden} differs; rerun with DUALRUN_REGEN_GOLDEN=1"
    text = render.spec_reconciliation(result, "text")
    assert text.startswith("dualrun reconcile shop-orders: DIFFERENCES")
    assert "only in sink 1" in text and "== orders_enriched (sink oe) ==" in text and "[only_in_sink]" in text


def test_window_keys_print_as_column_value_pairs_never_a_python_tuple() -> None:
    from migrate.consistency import classify_bracket
    from migrate.window import Window, WindowEvent, lineage_rows

    schema = pa.schema([("sku", pa.string()), ("qty", pa.int64())])
    batch = pa.Table.from_pylist([{"sku": "A-1", "qty": 5}], schema=schema)
    stream = pa.Table.from_pylist([{"sku": "A-1", "qty": 7}], schema=schema)
    event = WindowEvent("shop.stock", {"sku": "A-1", "qty": 6}, {"sku": "A-1", "qty": 7}, row=("A-1",))
    w = Window("positions", {"source": "a"}, {"source": "b"}, (event,))
    changed = lineage_rows("stock", ["sku"], (batch, stream), w, {"shop.stock": {"sku": "sku"}})
    versions = pa.Table.from_pylist([{"sku": "A-1", "qty": q, "__present": True} for q in (6, 7)],
                                    schema=schema.append(pa.field("__present", pa.bool_())))  # fmt: skip
    decided = classify_bracket("stock", ["sku"], batch, stream, changed, versions)
    check = SimpleNamespace(window=None, window_from="", outputs={"stock": decided}, self_check_not_run=())
    lines = render._bracket_lines(check)  # type: ignore[arg-type]
    assert lines[-1] == "    defect in the window (matches no stream version inside the bracket): sku=A-1"
    assert "('A-1',)" not in "\n".join(lines) and "['A-1']" not in "\n".join(lines)


def test_history_list_shows_a_run_without_a_batch_run_as_a_dash() -> None:
    from datetime import datetime

    from comparators.history import RunSummary

    runs = [RunSummary("a" * 32, datetime(2026, 11, 1, 3), "orders", "clean", 0, 0, 0, 0, None),
            RunSummary("b" * 32, datetime(2026, 11, 1, 4), "orders", "clean", 0, 0, 0, 0, "night-1")]  # fmt: skip
    out = io.StringIO()
    render.history_runs(runs, Path("h.duckdb"), Console(file=out, width=200))
    lines = out.getvalue().splitlines()
    assert "batch run" in lines[0] and " - " in lines[1] and "night-1" in lines[2]


def test_a_registered_connectors_config_renders_from_what_connect_answers() -> None:
    """PUT /connectors/X/config answers the connector info, GET the bare config map: both render."""
    import io

    from rich.console import Console

    config = {"connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector", "name": "shop-oe-sink",
              "topics": "orders-enriched"}  # fmt: skip
    info = {"name": "shop-oe-sink", "config": config, "tasks": [], "type": "sink"}
    bare_without_name = {k: v for k, v in config.items() if k != "name"}
    for stored, name in ((info, None), (config, None), (bare_without_name, "shop-oe-sink")):
        out = io.StringIO()
        render.connector_config(stored, Console(file=out, width=100), name)
        text = out.getvalue()
        assert text.startswith("connector shop-oe-sink registered:") and '"topics": "orders-enriched"' in text
        assert '"tasks"' not in text and '"type"' not in text


def test_window_keys_beyond_five_are_counted_not_dropped() -> None:
    from migrate.consistency import classify_bracket
    from migrate.window import Window, WindowEvent, lineage_rows

    schema = pa.schema([("sku", pa.string()), ("qty", pa.int64())])
    skus = [f"A-{i}" for i in range(1, 8)]
    batch = pa.Table.from_pylist([{"sku": s, "qty": 5} for s in skus], schema=schema)
    stream = pa.Table.from_pylist([{"sku": s, "qty": 7} for s in skus], schema=schema)
    events = tuple(WindowEvent("shop.stock", {"sku": s, "qty": 6}, {"sku": s, "qty": 7}, row=(s,)) for s in skus)
    w = Window("positions", {"source": "a"}, {"source": "b"}, events)
    changed = lineage_rows("stock", ["sku"], (batch, stream), w, {"shop.stock": {"sku": "sku"}})
    versions = pa.Table.from_pylist([{"sku": s, "qty": q, "__present": True} for s in skus for q in (6, 7)],
                                    schema=schema.append(pa.field("__present", pa.bool_())))  # fmt: skip
    decided = classify_bracket("stock", ["sku"], batch, stream, changed, versions)
    check = SimpleNamespace(window=None, window_from="", outputs={"stock": decided}, self_check_not_run=())
    lines = render._bracket_lines(check)  # type: ignore[arg-type]
    assert sum("defect in the window" in line for line in lines) == 5
    assert lines[-1] == "    ... and 2 more defect key(s)"
