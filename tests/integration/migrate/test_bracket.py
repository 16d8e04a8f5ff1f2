"""An external batch job bracketed by `batch mark`, under a live workload, on the real stack.

The job (bracket_job.py) runs the reference SQL as separate autocommit statements, outside any
snapshot, while the workload changes orders and customers; dualrun's reference streaming job
carries positions. Window keys are classified, every other key is compared exactly, and a batch
defect (the alerts threshold 500 read as 400) is caught on keys outside the window.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from comparators import history
from migrate.asof import reconcile_spec
from migrate.batch import run_output
from migrate.bracket import check_bracket
from migrate.checklist import Context, parity
from migrate.checklist.reconciliation import coverage
from migrate.examples import shop_orders
from migrate.examples.shop_orders.workload import Workload
from migrate.marks import load_bracket, run_external
from migrate.spec import OutputSpec, PipelineSpec
from tests.integration.migrate.conftest import JobThread

pytestmark = pytest.mark.integration

JOB = Path(__file__).with_name("bracket_job.py")
SQL = Path(shop_orders.__file__).with_name("sql")


def bracketed(spec: PipelineSpec, out_dir: Path) -> PipelineSpec:
    """The pipeline with lineage and each output imported from the job's Parquet file."""
    db = spec.source.database
    orders, customers = f"{db}.orders", f"{db}.customers"
    lineage: dict[str, dict[str, Any]] = {
        "orders_enriched": {orders: {"order_id": "order_id"}, customers: {"customer_id": "id"}},
        "order_alerts": {orders: {"order_id": "order_id"}},
        "daily_revenue": {orders: {"customer_id": "customer_id", "order_day": "CAST(created_at AS DATE)"}},
    }
    outputs = {}
    for name, out in spec.outputs.items():
        data = out.model_dump(by_alias=True)
        data["batch"] = {"import": {"parquet": str(out_dir / f"{name}.parquet")}, "columns": out.batch.columns}
        data["lineage"] = lineage[name]
        outputs[name] = OutputSpec.model_validate(data)
    return spec.model_copy(update={"outputs": outputs})


def job_command(spec: PipelineSpec, out_dir: Path, defect: bool = False) -> list[str]:
    return [sys.executable, str(JOB), spec.source.url, str(SQL), str(out_dir), *(["--defect"] if defect else [])]


def under_load(spec: PipelineSpec, during: Callable[[], Any], rate: float = 100) -> Any:
    """Run `during` once the workload has applied 300 changes; the workload goes on until it returns.
    500 customers: a customer change puts all of its orders in the window, so fewer would leave none out."""
    workload = Workload(spec.source.url, spec.source.password(), database=spec.source.database, seed=11,
                        customers=500)  # fmt: skip
    workload.seed(orders=1000)
    started, stop = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=lambda: workload.run(events=10**6, rate=rate, stop=stop, progress=lambda n: n >= 300 and started.set()),
        daemon=True,
    )
    thread.start()
    assert started.wait(120)
    try:
        return during()
    finally:
        stop.set()
        thread.join(120)


def test_bracketed_external_batch_under_load(
    pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread], tmp_path: Path
) -> None:
    os.environ.setdefault("DUALRUN_DB_PASSWORD", pipeline.source.password())
    spec = bracketed(pipeline, tmp_path / "out")
    jobs(spec)
    code, run, bracket = under_load(spec, lambda: run_external(spec, job_command(spec, tmp_path / "out")))
    assert code == 0 and run is not None and bracket is not None
    assert bracket.begin.position < bracket.end.position  # the workload wrote inside the bracket
    result = check_bracket(spec, run.run_id, wait=120)
    assert result.behind is None
    assert result.window is not None and result.window.size > 0
    assert result.window_from.startswith("the change topics' offsets recorded at the begin mark")
    report = {name: out.to_dict() for name, out in result.outputs.items()}
    for name, out in result.outputs.items():
        print(name, {k: v for k, v in report[name].items() if k not in ("window", "reconciliation")})  # the split
        assert out.reconciliation.unexplained == 0, f"{name}: {report[name]}"
        assert out.window_defects == (), f"{name}: {report[name]}"
    # Every order was created today, so each revenue group may be in the window; orders are not.
    for name in ("orders_enriched", "order_alerts"):
        assert result.outputs[name].outside > 0, report[name]
    window_keys = sum(len(out.window) for out in result.outputs.values())
    assert window_keys > 0, report
    assert result.verdict == "clean"
    # `reconcile --spec` routes the bracketed run to the same decision, recorded like any reconcile.
    # With a second `batch check` that makes three checks of ONE batch run: the parity streak counts
    # it once (each batch run is judged by its latest check), so the checklist does not say GO yet.
    routed = reconcile_spec(spec, run.run_id, wait=120)
    assert routed.bracket is not None and routed.verdict == "clean", routed.to_dict()
    assert routed.coverage is not None and routed.coverage.in_flight > 0
    check_bracket(spec, run.run_id, wait=120)
    checks = history.runs(spec.history_path, f"{spec.name}/orders_enriched")
    assert len(checks) == 3 and {c.batch_run for c in checks} == {run.run_id}
    ctx = Context(spec)
    assert history.parity_streak(spec.history_path, f"{spec.name}/orders_enriched") == 1
    assert parity(ctx).status == "fail" and "orders_enriched streak 1 < 3" in parity(ctx).evidence, parity(ctx).evidence
    assert "never verified over 1 run(s)" in coverage(ctx).evidence, coverage(ctx).evidence
    # Further bracketed runs of the quiet source (the workload has stopped) read one source state:
    # batch runs at one source position count once. A run after changes is a new state.
    quiet: list[str] = []
    for changes in (0, 0, 30):
        if changes:
            Workload(spec.source.url, spec.source.password(), database=spec.source.database, seed=12,
                     customers=500).run(events=changes, rate=300)  # fmt: skip
        code, more, _ = run_external(spec, job_command(spec, tmp_path / "out"))
        assert code == 0 and more is not None and more.run_id != run.run_id
        assert check_bracket(spec, more.run_id, wait=120).verdict == "clean"
        if not changes:
            marks = load_bracket(spec, more.run_id)
            assert marks is not None
            quiet.append(f"{marks.begin.position} .. {marks.end.position}")
    assert len(set(quiet)) == 1, f"the quiet source moved between the two runs: {quiet}"
    states = 3  # the run under load, the quiet position (two runs), the run after changes
    ctx = Context(spec)
    assert parity(ctx).status == "pass", parity(ctx).evidence
    assert f"orders_enriched streak {states}" in parity(ctx).evidence, parity(ctx).evidence
    assert history.parity_streak(spec.history_path, f"{spec.name}/orders_enriched") == states
    gate = coverage(ctx)
    assert f"never verified over {states} run(s)" in gate.evidence, gate.evidence
    print("coverage gate", gate.status, gate.evidence)


def test_a_batch_defect_outside_the_window_is_caught_through_batch_mark(
    pipeline: PipelineSpec, jobs: Callable[[PipelineSpec], JobThread], tmp_path: Path
) -> None:
    os.environ.setdefault("DUALRUN_DB_PASSWORD", pipeline.source.password())
    spec = bracketed(pipeline, tmp_path / "out")
    path = tmp_path / "bracket.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True)))
    jobs(spec)

    def marked_job() -> None:
        cli = [sys.executable, "-m", "migrate.cli", "batch", "mark", "--spec", str(path)]
        subprocess.run([*cli, "--begin"], check=True)
        subprocess.run(job_command(spec, tmp_path / "out", defect=True), check=True)
        subprocess.run([*cli, "--end"], check=True)

    under_load(spec, marked_job)
    done = subprocess.run(
        [sys.executable, "-m", "migrate.cli", "batch", "check", "--spec", str(path), "--wait", "120", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    result = check_bracket(spec, wait=120)
    alerts = result.outputs["order_alerts"]
    rec = alerts.reconciliation
    window = {w.key for w in alerts.window}
    rows = run_output(spec.warehouse_path, result.run.run_id, "order_alerts").to_pylist()
    batch = {row["order_id"]: row for row in rows}
    # Exactly the orders the wrong threshold let in, less those changed during the batch window.
    let_in = {(o,) for o, row in batch.items() if Decimal(400) < row["amount"] <= Decimal(500)}
    # Every order let in outside the window is missing in the stream, and nothing else differs there;
    # a window defect can only be an order let in too (read at 400 < amount <= 500 at some point).
    assert set(alerts.window_defects) <= let_in & window, alerts.to_dict()
    assert rec.only_in_left + rec.mismatched_rows == len(let_in - window) + len(alerts.window_defects) > 0
    assert rec.unexplained == rec.only_in_left + rec.mismatched_rows, alerts.to_dict()
    assert {tuple(v for _, v in s.key) for s in rec.samples} <= let_in
    print("alerts defects", rec.only_in_left, "of", len(let_in), "let in;", len(window), "window keys")
    for name in ("orders_enriched", "daily_revenue"):
        assert result.outputs[name].verdict == "clean", result.outputs[name].to_dict()
