"""Small hand-built pipeline runs recorded in a real history database, for report tests.

Each run reconciles a batch and a stream version of two outputs of the reference
pipeline with the real engine; a "defect" run drifts a few stream rows the way a
wrong transform would. Nothing here is a canned result: the engine computes it.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa

from comparators import Settings, history, reconcile
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


def build_history(path: Path, pattern: str = "CCDCC", pipeline: str = PIPELINE) -> list[list[str]]:
    """Record one pipeline run per letter (C clean, D defect); returns the run ids per run."""
    runs = []
    for i, letter in enumerate(pattern):
        position = f"0-1-{100 + 10 * i}"
        ids = []
        for output, result in pipeline_run(letter == "D", position).items():
            named = dataclasses.replace(result, name=f"{pipeline}/{output}", elapsed_s=0.25)
            ids.append(history.record(path, named, recorded_at=T0 + timedelta(days=i, seconds=len(ids))))
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
