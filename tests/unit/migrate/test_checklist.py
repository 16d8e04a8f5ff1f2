"""Checklist checks that read files (history, stream status, warehouse, changelog), the verdict and exit codes.

Checks against Kafka, Connect and the source are proven on the real stack in
tests/integration/migrate/test_checklist.py; here the only network is a port
nothing listens on, to prove "could not evaluate" names what it could not reach.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from comparators import history
from migrate.checklist import (
    CHECK_NAMES,
    CHECKS,
    Checklist,
    CheckResult,
    Context,
    data_quality,
    evaluate,
    events_fresh,
    exactly_once,
    job_alive,
    noise_baseline,
    parity,
    select,
)
from migrate.cli import cli
from migrate.errors import CheckUnavailable, SpecError
from migrate.spec import PipelineSpec
from migrate.stream.status import StreamStatus, write_status
from tests.unit.report.builders import (
    build_history,
    local_spec,
    orders_rows,
    output_tables,
    pipeline_run,
    write_batch,
    write_changelog,
)

EOS_PRODUCER = {"transactional.id": "dualrun-stream-1", "enable.idempotence": "True", "acks": "all"}
EOS_CONSUMER = {"isolation.level": "read_committed", "enable.auto.commit": "False", "group.id": "dualrun-stream"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def spec(tmp_path: Path) -> PipelineSpec:
    # outputs named like the builders' history (orders_enriched, daily_revenue)
    # Kafka where nothing listens: these checks must not depend on whether a stack runs here.
    base = local_spec(tmp_path, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    outputs = {k: v for k, v in base.outputs.items() if k in ("orders_enriched", "daily_revenue")}
    return base.model_copy(update={"outputs": outputs})


def status(**changes: object) -> StreamStatus:
    now = time.time()
    # This test's own pid: a live process, as a running job's would be.
    base = StreamStatus(pid=os.getpid(), state="running", updated_at=now - 1, started_at=now - 600, exactly_once=True,
                        producer=dict(EOS_PRODUCER), consumer=dict(EOS_CONSUMER),
                        last_event_ts_ms=int((now - 3) * 1000), lag=0)  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_registry_is_ordered_documented_and_named() -> None:
    assert CHECK_NAMES[0] == "connector_running" and CHECK_NAMES[-1] == "rollback_ready"
    assert len(set(CHECK_NAMES)) == len(CHECKS) == 20
    for check in CHECKS:
        assert check.__doc__ and "Example:" in check.__doc__, f"{check.__name__} needs a docstring example"
    assert select(("parity", "connector_running")) == (CHECKS[0], parity)
    with pytest.raises(SpecError, match="unknown check.*nope"):
        select(("nope",))


def test_verdict_and_exit_codes() -> None:
    ok = CheckResult("a", "pass", "fine", "t")
    warn = CheckResult("b", "warn", "one broker", "t")
    assert Checklist("p", (ok, warn)).verdict == "GO" and Checklist("p", (ok, warn)).exit_code == 0
    failed = Checklist("p", (ok, ok.failed("broken")))
    assert failed.verdict == "NO-GO" and failed.exit_code == 1
    unknown = Checklist("p", (ok.failed("x"), ok.skip("could not evaluate: down")), ("a",))
    assert unknown.verdict == "NO-GO" and unknown.exit_code == 2
    assert unknown.to_dict()["checks"][1] == {"name": "a", "status": "skipped", "evidence": "could not evaluate: down",
                                              "threshold": "t"}  # fmt: skip


def test_parity_fails_on_a_dirty_latest_run_and_on_a_short_streak_then_passes(spec: PipelineSpec) -> None:
    assert parity(Context(spec)).status == "fail"  # no history at all
    latest = write_batch(spec, output_tables(orders_rows())).run_id
    build_history(spec.history_path, "CCD", last_batch_run=latest)
    result = parity(Context(spec))
    assert result.status == "fail" and "orders_enriched latest run has 5 unexplained" in result.evidence
    build_history(spec.history_path, "CC", last_batch_run=latest)
    result = parity(Context(spec))
    assert result.status == "fail" and "streak 2 < 3" in result.evidence
    build_history(spec.history_path, "C", last_batch_run=latest)
    result = parity(Context(spec))
    assert result.status == "pass", result
    assert result.evidence == "orders_enriched streak 3, daily_revenue streak 3"
    assert result.threshold.startswith("latest run clean and >= 3")


def test_noise_baseline_warns_when_unmeasured_and_fails_above_threshold(spec: PipelineSpec) -> None:
    for output, result in pipeline_run(False, "0-1-1", baseline=False).items():
        history.record(spec.history_path, dataclasses.replace(result, name=f"shop-orders/{output}"))
    assert noise_baseline(Context(spec)).status == "warn"
    clean, dirty = pipeline_run(False, "0-1-2"), pipeline_run(True, "0-1-2")
    for output, result in clean.items():
        # the batch rerun differs from the batch as much as the defect stream does: noise
        noisy = dataclasses.replace(result, baselines=(("batch vs batch rerun", dirty[output]),))
        history.record(spec.history_path, dataclasses.replace(noisy, name=f"shop-orders/{output}"))
    result = noise_baseline(Context(spec))
    assert result.status == "fail" and result.evidence == "batch vs batch rerun 7 rows (orders_enriched, daily_revenue)"
    for output, result_ in clean.items():
        history.record(spec.history_path, dataclasses.replace(result_, name=f"shop-orders/{output}"))
    assert noise_baseline(Context(spec)).status == "pass"


def test_exactly_once_reads_the_jobs_effective_settings(spec: PipelineSpec) -> None:
    assert exactly_once(Context(spec)).status == "fail"  # the job never reported
    write_status(spec, status())
    assert exactly_once(Context(spec)).status == "pass"
    write_status(spec, status(consumer={**EOS_CONSUMER, "isolation.level": "read_uncommitted"},
                              producer={k: v for k, v in EOS_PRODUCER.items() if k != "transactional.id"}))  # fmt: skip
    result = exactly_once(Context(spec))
    assert result.status == "fail"
    assert "producer has no transactional.id" in result.evidence
    assert "isolation.level read_uncommitted" in result.evidence


def test_events_fresh_follows_the_jobs_heartbeat_and_last_event(spec: PipelineSpec) -> None:
    # No broker in unit tests: every would-be pass is "could not evaluate", never a pass on the job's word
    # alone (the passes themselves are shown against the real stack, tests/integration/migrate/test_checklist.py).
    spec = spec.with_changes(kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    assert events_fresh(Context(spec)).status == "fail"
    write_status(spec, status())
    with pytest.raises(CheckUnavailable, match="Kafka is not reachable"):
        events_fresh(Context(spec, timeout=2))
    old = int((time.time() - 3600) * 1000)
    write_status(spec, status(last_event_ts_ms=old, lag=0))  # quiet source, nothing waiting
    with pytest.raises(CheckUnavailable, match="Kafka is not reachable"):
        events_fresh(Context(spec, timeout=2))
    write_status(spec, status(last_event_ts_ms=old, lag=1204))
    result = events_fresh(Context(spec))
    assert result.status == "fail" and "1,204 records waiting" in result.evidence
    write_status(spec, status(updated_at=time.time() - 600))
    assert "main loop last turned 10 min ago: it is hung" in events_fresh(Context(spec)).evidence
    write_status(spec, status(state="failed", error="broker down"))
    result = events_fresh(Context(spec))
    assert result.status == "fail" and "failed" in result.evidence and "broker down" in result.evidence
    write_status(spec, status(pid=dead_pid()))
    result = events_fresh(Context(spec))
    assert result.status == "fail" and "is not running" in result.evidence  # its last report said running
    write_status(spec, status(heartbeat_at=time.time() - 45))
    assert "main loop last turned 45s ago: it is hung" in events_fresh(Context(spec)).evidence
    write_status(spec, status(lag=None, lag_measured_at=time.time() - 1))
    with pytest.raises(CheckUnavailable, match="could not measure its lag"):
        events_fresh(Context(spec))  # unknown is not zero: not a pass


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_job_alive_fails_with_the_evidence_of_each_way_a_job_is_gone_or_stuck(spec: PipelineSpec) -> None:
    assert "never reported" in job_alive(Context(spec)).evidence
    now = time.time()
    cases = {
        "dead pid": (status(pid=dead_pid()), "is not running (last report 1s ago, state running)"),
        "stale heartbeat": (status(heartbeat_at=now - 300), "main loop last turned 5 min ago: it is hung"),
        "failed": (status(state="failed", error="KafkaFatal: PRODUCER_FENCED"), "is failed (pid"),
        "retrying": (status(state="retrying", error="_TRANSPORT: Broker transport failure (retry)"),
                     "cannot reach Kafka and is retrying: _TRANSPORT"),
        "crash loop": (status(state="crash_loop", restarts=7,
                              error="crash loop: 5 restarts without progress; last error: error: boom"),
                       "crash_loop (pid"),
        "restarting": (status(state="restarting", restarts=1, error="exited with code 1, restart 1 in 1s"),
                       "restarted 1 time(s)"),
        "lag while idle": (status(lag=1204, committed_at=now - 300), "1,204 records waiting and last commit 5 min ago"),
        "never committed": (status(lag=50, committed_at=None, started_at=now - 120),
                            "50 records waiting and no commit since start 2 min ago"),
    }  # fmt: skip
    for name, (reported, evidence) in cases.items():
        write_status(spec, reported)
        result = job_alive(Context(spec))
        assert result.status == "fail" and evidence in result.evidence, (name, result)
    # the last case written was "never committed"; the crash loop's evidence reaches events_fresh too
    write_status(spec, cases["crash loop"][0])
    assert "crash loop: 5 restarts without progress; last error: error: boom" in events_fresh(Context(spec)).evidence


def test_job_alive_never_passes_when_the_checklist_cannot_reach_the_broker(tmp_path: Path) -> None:
    spec = local_spec(tmp_path, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    write_status(spec, status(committed_at=time.time() - 1))  # the job's own last word: all well
    result = evaluate(spec, select(("job_alive",)), timeout=2)
    assert result.exit_code == 2 and result.unevaluated == ("job_alive",)
    assert "Kafka is not reachable" in result.checks[0].evidence


def test_data_quality_runs_great_expectations_on_both_sides(spec: PipelineSpec, tmp_path: Path) -> None:
    assert data_quality(Context(spec)).status == "fail"  # no batch run yet
    tables = output_tables(orders_rows())
    write_batch(spec, tables)
    write_changelog(spec, tables)
    result = data_quality(Context(spec))
    assert result.status == "pass", result
    assert "batch run 20240430T020000-test01" in result.evidence and "9 + 9 expectations pass" in result.evidence
    # a later (still before the snapshot) stream version turns one revenue negative; the batch side stays right
    write_changelog(spec, output_tables(orders_rows(), negative_revenue=True), offset=2_000, op="u")
    result = data_quality(Context(spec))
    assert result.status == "fail"
    assert "stream daily_revenue: revenue >= 0 failed (1 row(s))" in result.evidence
    failures = result.evidence.split(" (batch run")[0]
    assert failures == "stream daily_revenue: revenue >= 0 failed (1 row(s))"
    assert not list(tmp_path.rglob("great_expectations.yml")) and not list(Path.cwd().glob("gx"))


def test_expectations_are_what_each_output_declares() -> None:
    """A ledger may hold negative amounts and an alert output may be empty: only declared rules apply."""
    import pyarrow as pa

    from migrate.checklist.quality import validate
    from migrate.spec import ExpectSpec

    empty = pa.table({"id": pa.array([], pa.int64()), "amount": pa.array([], pa.decimal128(12, 2))})
    assert validate("empty_ok", empty, ["id"], ExpectSpec(not_empty=False)).failures == ()
    assert validate("empty_not_ok", empty, ["id"], ExpectSpec()).failures == ("row count > 0 failed (observed 0)",)
    refunds = pa.table({"id": [1, 2], "amount": pa.array([5, -3], pa.decimal128(12, 2))})
    assert validate("refunds", refunds, ["id"], ExpectSpec()).failures == ()
    assert validate("money", refunds, ["id"], ExpectSpec(non_negative=("amount",))).failures == (
        "amount >= 0 failed (1 row(s))",
    )
    assert validate("typo", refunds, ["id"], ExpectSpec(non_negative=("amt",))).failures == (
        "expect.non_negative names amt, which the output does not have",
    )


def test_unreachable_connect_and_kafka_mean_could_not_evaluate_and_say_where(tmp_path: Path) -> None:
    connect_url = f"http://127.0.0.1:{free_port()}"
    bootstrap = f"127.0.0.1:{free_port()}"
    spec = local_spec(tmp_path, cdc={"connect_url": connect_url}, kafka={"bootstrap_servers": bootstrap})
    started = time.monotonic()
    result = evaluate(spec, select(("connector_running", "consumer_lag", "dead_letters_empty", "parity")), timeout=2)
    assert time.monotonic() - started < 30
    assert result.exit_code == 2 and result.verdict == "NO-GO"
    assert result.unevaluated == ("connector_running", "consumer_lag", "dead_letters_empty")
    by_name = {c.name: c for c in result.checks}
    assert connect_url in by_name["connector_running"].evidence
    assert bootstrap in by_name["consumer_lag"].evidence and by_name["consumer_lag"].status == "skipped"
    assert by_name["consumer_lag"].threshold == "<= 1,000 records behind the change topics"
    assert by_name["parity"].status == "fail"  # evaluated: no history


def test_cli_json_contract_and_exit_code(spec: PipelineSpec, tmp_path: Path) -> None:
    build_history(spec.history_path, "CCC", last_batch_run=write_batch(spec, output_tables(orders_rows())).run_id)
    spec_file = tmp_path / "dualrun.yaml"
    data = json.loads(spec.model_dump_json())
    spec_file.write_text(json.dumps(data))  # JSON is YAML
    runner = CliRunner()
    result = runner.invoke(cli, ["checklist", "--spec", str(spec_file), "--format", "json", "--check", "parity"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["verdict"] == "GO"
    assert payload["checks"] == [{"name": "parity", "status": "pass", "threshold": payload["checks"][0]["threshold"],
                                  "evidence": "orders_enriched streak 3, daily_revenue streak 3"}]  # fmt: skip
    text = runner.invoke(cli, ["checklist", "--spec", str(spec_file), "--check", "parity", "--check", "noise_baseline"])
    assert text.exit_code == 0 and text.output.splitlines()[0].startswith("GO")
    assert "parity" in text.output and "noise_baseline" in text.output


def _changelog(spec: PipelineSpec, output: str, rows: list[tuple[int, int | None]]) -> None:
    """dualrun's own job's changelog of `output`: (order_id, __pos_order) in processing order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = spec.changelog_path / output
    folder.mkdir(parents=True, exist_ok=True)
    segment = len(list(folder.iterdir()))
    table = pa.table({
        "order_id": [r[0] for r in rows], "__op": ["u"] * len(rows),
        "__pos_order": pa.array([r[1] for r in rows], pa.int64()),
        "__processed_at": pa.array(range(segment * 1000, segment * 1000 + len(rows)), pa.int64()).cast(
            pa.timestamp("us")),
    })  # fmt: skip
    pq.write_table(table, folder / f"seg-{segment}.parquet")


def test_positions_checks_pass_for_dualruns_own_changelogs_and_fail_with_evidence(spec: PipelineSpec) -> None:
    from migrate.checklist.positions import outputs_carry_positions, positions_monotone

    assert outputs_carry_positions(Context(spec)).status == "warn"  # no records yet
    spec = spec.model_copy(update={"outputs": {"orders_enriched": spec.outputs["orders_enriched"]}})
    _changelog(spec, "orders_enriched", [(1, 100), (2, 110), (1, 120), (1, 120)])  # a tie is not reordering
    assert outputs_carry_positions(Context(spec)).status == "pass"
    assert positions_monotone(Context(spec)).status == "pass"
    _changelog(spec, "orders_enriched", [(2, 90), (3, None)])
    carry = outputs_carry_positions(Context(spec))
    assert carry.status == "fail" and "orders_enriched 1 of 6 records without a position" in carry.evidence
    assert "'order_id': '3'" in carry.evidence
    monotone = positions_monotone(Context(spec))  # key 2 went 110 -> 90; no batch run: nothing straddles it
    assert monotone.status == "warn" and "orders_enriched 1 key(s)" in monotone.evidence


def test_an_unreachable_broker_leaves_the_external_job_checks_unevaluated(tmp_path: Path) -> None:
    # The user's own job is seen only through Kafka: no answer is "could not evaluate" (exit 2), never a fail.
    import copy

    from migrate.checklist import job_alive
    from migrate.spec import parse_spec
    from tests.unit.migrate.spec.test_load import LEDGER

    raw = copy.deepcopy(LEDGER)
    raw["kafka"] = {**raw["kafka"], "bootstrap_servers": f"127.0.0.1:{free_port()}"}
    external = parse_spec({**raw, "state_dir": str(tmp_path)}, "test.yaml")
    assert external.is_external
    for check in (job_alive, events_fresh):
        with pytest.raises(CheckUnavailable, match="Kafka is not reachable"):
            check(Context(external, timeout=2))


def test_parity_fails_while_the_warehouses_latest_batch_run_was_never_reconciled(spec: PipelineSpec) -> None:
    """The stream was behind the newest batch run: `reconcile --spec` recorded nothing for it, so the
    clean streak of OLDER batch runs must not pass parity."""
    build_history(spec.history_path, "CCC")  # three clean batch runs, then a newer one never judged
    result = parity(Context(spec))
    assert result.status == "fail" and "no batch run in the warehouse" in result.evidence
    newest = write_batch(spec, output_tables(orders_rows()), run_id="20240501T020000-newest").run_id
    result = parity(Context(spec))
    assert result.status == "fail", result.evidence
    assert f"orders_enriched batch run {newest} not reconciled yet (the stream was behind?)" in result.evidence
    assert f"daily_revenue batch run {newest} not reconciled yet" in result.evidence
    build_history(spec.history_path, "C", last_batch_run=newest)  # reconciled at last
    result = parity(Context(spec))
    assert result.status == "pass", result.evidence
    assert result.evidence == "orders_enriched streak 4, daily_revenue streak 4"


def test_parity_counts_each_sink_as_a_side_and_a_sink_difference_blocks_go(spec: PipelineSpec) -> None:
    from migrate.spec import OutputSinkSpec

    outputs = dict(spec.outputs)
    outputs["orders_enriched"] = outputs["orders_enriched"].model_copy(update={"sink": OutputSinkSpec(table="oe")})
    spec = spec.model_copy(update={"outputs": outputs})
    latest = write_batch(spec, output_tables(orders_rows())).run_id
    # batch vs stream clean three times; the sink never compared
    build_history(spec.history_path, "CCC", last_batch_run=latest)
    result = parity(Context(spec))
    assert result.status == "fail" and "orders_enriched@sink never reconciled" in result.evidence
    build_history(spec.history_path, "CCC", sinks="CCD", last_batch_run=latest)
    result = parity(Context(spec))
    assert result.status == "fail", result.evidence
    assert "orders_enriched@sink latest run has 2 unexplained differences" in result.evidence
    assert "orders_enriched streak 6" in result.evidence  # batch vs stream alone would pass
    build_history(spec.history_path, "CCC", sinks="CCC", last_batch_run=latest)
    assert parity(Context(spec)).status == "pass"
    assert parity(Context(spec)).evidence.endswith("orders_enriched@sink streak 3")
    # the sink behind its read point in the latest run
    build_history(spec.history_path, "C", sinks="-", last_batch_run=latest)
    result = parity(Context(spec))
    assert result.status == "fail" and "orders_enriched@sink not compared in the latest run" in result.evidence
