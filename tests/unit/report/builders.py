"""Small hand-built pipeline runs recorded in a real history database, for report tests.

Each run reconciles a batch and a stream version of two outputs of the reference
pipeline with the real engine; a "defect" run drifts a few stream rows the way a
wrong transform would. Nothing here is a canned result: the engine computes it.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cdc.position import Position
from comparators import Settings, history, reconcile
from comparators.positions import binlog_order
from comparators.report.model import (
    CheckOutcome,
    KeyEvent,
    KeyHistory,
    LagPoint,
    OutputRun,
    RunReport,
    TrendPoint,
)
from comparators.result import Reconciliation
from migrate.batch import BatchRun, write_run
from migrate.examples.shop_orders.rules import SCHEMAS, is_alert, loyalty_tier
from migrate.spec import PipelineSpec, example_spec_path, load_spec
from migrate.stream.changelog import changelog_schema

PIPELINE = "shop-orders"
T0 = datetime(2024, 5, 1, 2, 0)
SETTINGS = Settings(memory_limit="512MB", threads=2)
DAYS = (date(2024, 4, 29), date(2024, 4, 30))


def orders(defect: bool) -> tuple[pa.Table, pa.Table]:
    """orders_enriched on both sides: 12 orders over two days; with a defect, 4 stream rows differ."""
    ids = list(range(1, 13))
    amounts = [D(f"{40 * i}.25") for i in ids]
    batch = {
        "order_id": ids,
        "customer_id": [100 + i % 3 for i in ids],
        "amount": amounts,
        "loyalty_tier": ["GOLD" if a > 200 else "SILVER" if a > 100 else "BRONZE" for a in amounts],
        "order_day": [DAYS[i % 2] for i in ids],
    }
    stream = {k: list(v) for k, v in batch.items()}
    if defect:
        stream["amount"][2] = amounts[2] + D("0.01")  # within the 0.01 tolerance
        stream["loyalty_tier"][4] = "SILVER"  # the wrong tier threshold
        stream["amount"][6] = amounts[6] * 2
        for column in stream.values():
            del column[9]  # order 10 never reached the stream
    return pa.table(batch), pa.table(stream)


def revenue(defect: bool) -> tuple[pa.Table, pa.Table]:
    rows = [(100 + c, d) for c in range(3) for d in DAYS]
    batch = {
        "customer_id": [c for c, _ in rows],
        "order_day": [d for _, d in rows],
        "revenue": [D(f"{(i + 1) * 100}.00") for i in range(len(rows))],
    }
    stream = {k: list(v) for k, v in batch.items()}
    if defect:
        stream["revenue"][1] = D("-5.00")
    return pa.table(batch), pa.table(stream)


def pipeline_run(defect: bool, position: str, baseline: bool = True) -> dict[str, Reconciliation]:
    """Both outputs reconciled as the spec run would, named `<pipeline>/<output>`."""
    ob, os_ = orders(defect)
    rb, rs = revenue(defect)
    return {
        "orders_enriched": reconcile(
            ob, os_, ["order_id"], rules={"amount": "abs:0.01"}, partition="order_day", left_position=position,
            baseline_left=ob if baseline else None, name=f"{PIPELINE}/orders_enriched", settings=SETTINGS,
        ),
        "daily_revenue": reconcile(
            rb, rs, ["customer_id", "order_day"], partition="order_day", left_position=position,
            baseline_left=rb if baseline else None, name=f"{PIPELINE}/daily_revenue", settings=SETTINGS,
        ),
    }  # fmt: skip


def sink_run(defect: bool, offset: int, pipeline: str = PIPELINE) -> Reconciliation:
    """orders_enriched's sink side (`<pipeline>/orders_enriched@sink`): the output topic (the stream's
    rows) vs the sink's table at the topic's read point; with a defect, the table kept an aborted
    transaction's rows (order 99 only in the sink, order 3's amount)."""
    _, topic = orders(False)
    table = topic.to_pydict()
    if defect:
        table["amount"][2] = D("999.99")
        for column, value in zip(table, (99, 101, D("1.00"), "BRONZE", DAYS[0]), strict=True):
            table[column].append(value)
    return reconcile(
        topic, pa.table(table, schema=topic.schema), ["order_id"], name=f"{pipeline}/orders_enriched@sink",
        left_position=f"orders-enriched [0]@{offset}", right_position=f"group connect-sink committed [0]@{offset}",
        settings=SETTINGS,
    )  # fmt: skip


def build_history(
    path: Path, pattern: str = "CCDCC", pipeline: str = PIPELINE, sinks: str = "", last_batch_run: str | None = None
) -> list[list[str]]:
    """Record one pipeline run per letter (C clean, D defect); returns the run ids per run.

    `sinks`, one letter per run: also record orders_enriched's sink side (C clean, D defect,
    - not compared, the sink was behind), at its own position, after the outputs. Each letter is a
    batch run of its own at a source position of its own (as `dualrun reconcile --spec` records a
    new batch run of a changing source), also over several calls; `last_batch_run` names the last
    letter's batch run (e.g. the warehouse's latest run)."""
    runs = []
    done = 0
    if path.exists():
        with duckdb.connect(str(path), read_only=True) as con:
            positions = "SELECT count(DISTINCT left_position) FROM runs WHERE name NOT LIKE '%@%'"
            done = int(con.execute(positions).fetchall()[0][0])
    for i, letter in enumerate(pattern):
        position = f"0-1-{100 + 10 * (done + i)}"
        batch_run = f"batch-{uuid.uuid4().hex[:12]}"
        if last_batch_run is not None and i == len(pattern) - 1:
            batch_run = last_batch_run
        ids = []
        for output, result in pipeline_run(letter == "D", position).items():
            named = dataclasses.replace(result, name=f"{pipeline}/{output}", elapsed_s=0.25)
            ids.append(history.record(path, named, T0 + timedelta(days=i, seconds=len(ids)), batch_run))
        if sinks[i : i + 1] in ("C", "D"):
            sink = dataclasses.replace(sink_run(sinks[i] == "D", 40 + done + i, pipeline), elapsed_s=0.25)
            ids.append(history.record(path, sink, T0 + timedelta(days=i, seconds=len(ids)), batch_run))
        runs.append(ids)
    return runs


def rich_report() -> RunReport:
    """A defect run with every extra a caller can add: trend, key histories, a lag series, checks.

    Ids and times are fixed so renderings can be compared with golden files.
    """
    results = pipeline_run(True, "0-1-140")
    outputs = tuple(
        OutputRun(name, f"{PIPELINE}/{name}", f"run-{i + 1:02d}", T0 + timedelta(days=4, seconds=i),
                  dataclasses.replace(r, elapsed_s=0.25))
        for i, (name, r) in enumerate(results.items())
    )  # fmt: skip
    trend = tuple(
        TrendPoint(f"run-earlier-{i}", T0 + timedelta(days=i), 2, unexplained, streak)
        for i, (unexplained, streak) in enumerate([(0, 1), (0, 2), (7, 0), (0, 1)])
    ) + (TrendPoint("run-01", T0 + timedelta(days=4), 2, 7, 0),)
    order5 = (("order_id", 5),)
    histories = (
        KeyHistory("orders_enriched", order5, (
            KeyEvent("batch", "batch run 20240504T020000-a1b2c3 @ 0-1-130", "row",
                     (("amount", D("200.25")), ("loyalty_tier", "GOLD")), T0 + timedelta(days=3)),
            KeyEvent("stream", "0-1-120", "c", (("amount", D("200.25")), ("loyalty_tier", "SILVER")),
                     T0 + timedelta(days=2, hours=5)),
            KeyEvent("stream", "0-1-141", "u", (("amount", D("200.25")), ("loyalty_tier", "SILVER")),
                     T0 + timedelta(days=4, minutes=1)),
            KeyEvent("source", "now", "row", (("amount", D("200.25")), ("status", "PAID"))),
        )),
    )  # fmt: skip
    lag = tuple(LagPoint(T0 + timedelta(days=4, seconds=10 * i), lag) for i, lag in enumerate([0, 40, 120, 60, 5, 0]))
    checks = (
        CheckOutcome("connector_running", "pass", "connector dualrun-shop RUNNING, 1/1 task(s) RUNNING",
                     "connector and all tasks RUNNING"),
        CheckOutcome("consumer_lag", "fail", "group dualrun-stream is 1,204 records behind on 2 partition(s)",
                     "<= 1000 records"),
        CheckOutcome("replication", "warn", "one broker: replication factor 1, min.insync.replicas 1",
                     "RF >= 3 and min.insync.replicas >= 2 on a multi-broker cluster"),
        CheckOutcome("noise_baseline", "skipped", "no baseline measured in the latest run", "<= 0 rows"),
    )  # fmt: skip
    return RunReport(
        title=PIPELINE, outputs=outputs, trend=trend, min_parity_streak=3, lag=lag, key_histories=histories,
        checks=checks, checks_verdict="NO-GO", generated_at=T0 + timedelta(days=4, minutes=5),
    )  # fmt: skip


def sink_report() -> RunReport:
    """rich_report's run with orders_enriched's sink side too: its table kept an aborted transaction."""
    report = rich_report()
    sink = OutputRun(
        "orders_enriched@sink",
        f"{PIPELINE}/orders_enriched@sink",
        "run-03",
        T0 + timedelta(days=4, seconds=2),
        dataclasses.replace(sink_run(True, 44), elapsed_s=0.25),
    )
    trend = report.trend[:-1] + (TrendPoint("run-01", T0 + timedelta(days=4), 3, 9, 0),)
    return dataclasses.replace(report, outputs=(*report.outputs, sink), trend=trend, checks=(), checks_verdict=None,
                               lag=None)  # fmt: skip


# -- a spec's on-disk state (warehouse, stream changelog, stream status), for checklist and notebook tests --

SNAPSHOT_FILE, SNAPSHOT_POS = "mysql-bin.000003", 9_000


def orders_rows(negative_revenue: bool = False) -> list[dict[str, Any]]:
    """Three orders of two customers on one day; one is a high-value alert."""
    day = date(2024, 4, 30)
    rows = []
    for order_id, customer, amount in ((1, 7, D("120.50")), (2, 7, D("650.00")), (3, 8, D("80.00"))):
        rows.append({
            "order_id": order_id, "customer_id": customer, "customer_name": f"c{customer}", "customer_tier": "SILVER",
            "amount": amount, "status": "PAID", "loyalty_tier": loyalty_tier(amount), "order_day": day,
            "created_at": datetime(2024, 4, 30, 9, order_id), "updated_at": datetime(2024, 4, 30, 9, order_id),
        })  # fmt: skip
    return rows


def output_tables(rows: list[dict[str, Any]], negative_revenue: bool = False) -> dict[str, pa.Table]:
    alerts = [{"order_id": r["order_id"], "customer_id": r["customer_id"], "amount": r["amount"]}
              for r in rows if is_alert(r["amount"])]  # fmt: skip
    revenue: dict[tuple[int, date], list[D]] = {}
    for r in rows:
        revenue.setdefault((r["customer_id"], r["order_day"]), []).append(r["amount"])
    daily = [{"customer_id": c, "order_day": d, "order_count": len(a), "revenue": sum(a, D(0))}
             for (c, d), a in revenue.items()]  # fmt: skip
    if negative_revenue:
        daily[0]["revenue"] = -daily[0]["revenue"]
    return {
        "orders_enriched": pa.Table.from_pylist(rows, schema=SCHEMAS["orders_enriched"]),
        "order_alerts": pa.Table.from_pylist(alerts, schema=SCHEMAS["order_alerts"]),
        "daily_revenue": pa.Table.from_pylist(daily, schema=SCHEMAS["daily_revenue"]),
    }


def write_batch(spec: PipelineSpec, tables: dict[str, pa.Table], run_id: str = "20240430T020000-test01") -> BatchRun:
    """Record a batch run in the spec's warehouse exactly as the batch job does."""
    started = datetime(2024, 4, 30, 2, 0, tzinfo=UTC)
    run = BatchRun(run_id, started, started + timedelta(seconds=3),
                   Position.binlog_snapshot(SNAPSHOT_FILE, SNAPSHOT_POS, gtid="0-1-90"),
                   {name: t.num_rows for name, t in tables.items()})  # fmt: skip
    write_run(spec.warehouse_path, run, tables)
    return run


def write_changelog(spec: PipelineSpec, tables: dict[str, pa.Table], offset: int = 1_000, op: str = "c") -> None:
    """One changelog segment per output holding `tables` as changes at `offset` (before the snapshot)."""
    for output, table in tables.items():
        n = table.num_rows
        meta = {
            "__op": [op] * n, "__pos_file": [SNAPSHOT_FILE] * n, "__pos_offset": [offset + i for i in range(n)],
            "__gtid": [f"0-1-{10 + i}" for i in range(n)], "__lsn": [None] * n,
            "__source_ts_ms": [1714467600000 + i for i in range(n)],
            "__processed_at": [datetime(2024, 4, 30, 1, 0, 1)] * n,
            "__pos_order": [binlog_order(SNAPSHOT_FILE, offset + i) for i in range(n)],
        }  # fmt: skip
        rows = [{**row, **{k: v[i] for k, v in meta.items()}} for i, row in enumerate(table.to_pylist())]
        folder = spec.changelog_path / output
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=changelog_schema(SCHEMAS[output])),
                       folder / f"seg-{offset:08d}-{op}.parquet")  # fmt: skip


def local_spec(state_dir: Path, **sections: dict[str, Any]) -> PipelineSpec:
    """The reference spec with its state in `state_dir` and some sections changed."""
    spec = load_spec(example_spec_path()).model_copy(update={"state_dir": str(state_dir)})
    return spec.with_changes(**sections) if sections else spec


NOTEBOOK = Path(__file__).parents[3] / "notebooks" / "explore.ipynb"


def run_notebook(state_dir: Path, spec: PipelineSpec, env: dict[str, str]) -> Any:
    """Execute notebooks/explore.ipynb against `spec` (written to `state_dir`) with nbclient; returns the notebook."""
    import json
    import os

    import nbformat
    from nbclient import NotebookClient

    spec_file = state_dir / "dualrun.yaml"
    spec_file.write_text(json.dumps(json.loads(spec.model_dump_json())))  # JSON is YAML
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    saved = {k: os.environ.get(k) for k in (*env, "DUALRUN_SPEC", "PYTHONPATH")}
    # The kernel inherits the environment: this checkout first on its path, the spec and the key to drill.
    os.environ.update({**env, "DUALRUN_SPEC": str(spec_file), "PYTHONPATH": str(NOTEBOOK.parents[1])})
    try:
        NotebookClient(notebook, timeout=180, kernel_name="python3",
                       resources={"metadata": {"path": str(state_dir)}}).execute()  # fmt: skip
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return notebook


def notebook_text(notebook: Any) -> str:
    """Everything the executed notebook printed or displayed, as text."""
    parts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)
