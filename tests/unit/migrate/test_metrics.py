"""dualrun's Prometheus metrics: the job's collector, the one-shot commands' text files, and the
exporter that serves those files (the exporter's group lag is shown on the real broker in
tests/integration/migrate/test_monitoring.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from comparators import FrameSource, reconcile
from migrate.exporter import GroupLagCollector, TextfileCollector
from migrate.metrics import (
    TEXTFILE_DIR,
    StreamCollector,
    monitoring_dir,
    serve_stream_metrics,
    write_parity,
    write_tap,
)
from migrate.spec import PipelineSpec
from migrate.stream.status import StreamStatus
from migrate.stream.tap import TapRun
from tests.unit.report.builders import local_spec


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_job_collector_reports_counts_lag_and_commit_age_from_the_latest_status() -> None:
    now = time.time()
    status = StreamStatus(pid=1, state="running", updated_at=now, started_at=now - 100, exactly_once=True,
                          events_in=120, events_out=90, dead_letters=2, lag=7, committed_at=now - 4,
                          last_event_ts_ms=int((now - 30) * 1000))  # fmt: skip
    registry = CollectorRegistry()
    registry.register(StreamCollector("g1", lambda: status, max_lag=1000, max_age=60.0))
    got = samples(registry)
    g = (("group", "g1"),)
    assert got[("dualrun_stream_events_in_total", g)] == 120
    assert got[("dualrun_stream_events_out_total", g)] == 90
    assert got[("dualrun_stream_dead_letters_total", g)] == 2
    assert got[("dualrun_stream_lag_records", g)] == 7
    assert 29 <= got[("dualrun_stream_lag_seconds", g)] <= 35
    assert 3 <= got[("dualrun_stream_last_commit_age_seconds", g)] <= 9
    assert 29 <= got[("dualrun_stream_committed_position_age_seconds", g)] <= 35
    assert got[("dualrun_stream_max_lag_records", g)] == 1000
    assert got[("dualrun_stream_state", (("group", "g1"), ("state", "running")))] == 1


def test_before_its_first_status_the_job_exports_nothing() -> None:
    registry = CollectorRegistry()
    registry.register(StreamCollector("g1", lambda: None, max_lag=1, max_age=1.0))
    assert samples(registry) == {}


def parity_spec(tmp_path: Path, name: str) -> PipelineSpec:
    return local_spec(tmp_path).model_copy(update={"name": name})


def test_parity_text_files_of_two_specs_are_served_merged_with_each_outputs_verdict(tmp_path: Path) -> None:
    left = FrameSource(pa.table({"id": [1, 2, 3], "v": [10, 20, 30]}), name="batch")
    right = FrameSource(pa.table({"id": [1, 2], "v": [10, 21]}), name="stream")
    clean = reconcile(left, left, ["id"])
    broken = reconcile(left, right, ["id"])
    write_parity(parity_spec(tmp_path, "shop"), {"daily": broken, "orders": clean}, {"daily": 0, "orders": 4})
    write_parity(parity_spec(tmp_path, "shop-defect"), {"daily": clean}, {"daily": 1})
    registry = CollectorRegistry()
    registry.register(TextfileCollector(monitoring_dir(tmp_path) / TEXTFILE_DIR))
    got = samples(registry)

    def value(metric: str, spec: str, output: str, **more: str) -> float:
        return got[(metric, tuple(sorted({"spec": spec, "output": output, **more}.items())))]

    assert value("dualrun_parity_unexplained_rows", "shop", "daily") == broken.unexplained == 2
    assert value("dualrun_parity_unexplained_rows", "shop", "orders") == 0
    assert value("dualrun_parity_unexplained_rows", "shop-defect", "daily") == 0
    assert value("dualrun_parity_streak", "shop", "orders") == 4
    assert value("dualrun_parity_verdict", "shop", "daily", verdict="differences") == 1
    assert value("dualrun_parity_verdict", "shop", "daily", verdict="clean") == 0
    assert abs(value("dualrun_parity_last_run_timestamp_seconds", "shop", "daily") - time.time()) < 60
    files = {labels: v for (name, labels), v in got.items() if name == "dualrun_textfile_scrape_error"}
    assert set(files.values()) == {0} and len(files) == 2


def test_an_output_not_compared_says_why_instead_of_keeping_an_older_clean(tmp_path: Path) -> None:
    spec = parity_spec(tmp_path, "shop")
    side = FrameSource(pa.table({"id": [1], "v": [10]}), name="batch")
    write_parity(spec, {"daily": reconcile(side, side, ["id"])}, {"daily": 3})
    write_parity(spec, {}, {"daily": 3}, {"daily": "stream_behind"})
    registry = CollectorRegistry()
    registry.register(TextfileCollector(monitoring_dir(tmp_path) / TEXTFILE_DIR))
    got = samples(registry)
    verdicts = {dict(labels)["verdict"]: v for (name, labels), v in got.items() if name == "dualrun_parity_verdict"}
    assert verdicts == {"clean": 0, "differences": 0, "stream_behind": 1}
    assert not [name for name, _ in got if name == "dualrun_parity_unexplained_rows"]


def test_a_broken_text_file_is_reported_not_served(tmp_path: Path) -> None:
    folder = monitoring_dir(tmp_path) / TEXTFILE_DIR
    folder.mkdir(parents=True)
    (folder / "bad.prom").write_text("dualrun_x{unclosed 1\n")
    registry = CollectorRegistry()
    registry.register(TextfileCollector(folder))
    assert samples(registry) == {("dualrun_textfile_scrape_error", (("file", "bad.prom"),)): 1}


def test_the_exporter_finds_each_jobs_group_and_broker_in_its_status_file(tmp_path: Path) -> None:
    (tmp_path / "stream").mkdir()
    consumer = {"group.id": "dualrun-shop", "bootstrap.servers": "127.0.0.1:1"}
    (tmp_path / "stream" / "dualrun-shop.status.json").write_text(json.dumps({"consumer": consumer}))
    (tmp_path / "stream" / "torn.status.json").write_text("{")
    assert GroupLagCollector(tmp_path).jobs() == {"dualrun-shop": "127.0.0.1:1"}


def test_the_job_registers_its_endpoint_only_with_a_monitored_stack(tmp_path: Path) -> None:
    spec = local_spec(tmp_path)
    assert serve_stream_metrics(spec, lambda: None, None) is None  # no --monitoring, no --metrics-port
    targets = monitoring_dir(spec.path(".")) / "targets"
    targets.mkdir(parents=True)
    now = time.time()
    status = StreamStatus(pid=1, state="running", updated_at=now, started_at=now, exactly_once=True, events_in=5)
    endpoint = serve_stream_metrics(spec, lambda: status, None)
    assert endpoint is not None and endpoint.target is not None and endpoint.target.parent == targets
    try:
        entry = json.loads(endpoint.target.read_text())
        assert entry == [{"targets": [f"127.0.0.1:{endpoint.port}"], "labels": {"group": spec.stream.group,
                                                                               "spec": spec.name}}]  # fmt: skip
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=5).read().decode()
        assert f'dualrun_stream_events_in_total{{group="{spec.stream.group}"}} 5.0' in scraped
    finally:
        endpoint.close()
    assert not endpoint.target.exists()  # a job that ended cleanly is no longer scraped


def test_the_tap_leaves_what_it_read_and_could_not_decode(tmp_path: Path) -> None:
    spec = local_spec(tmp_path)
    write_tap(spec, TapRun("orders", "shop.orders", 40, 3, True, {0: 43}, 0.5))
    registry = CollectorRegistry()
    registry.register(TextfileCollector(monitoring_dir(spec.path(".")) / TEXTFILE_DIR))
    got = samples(registry)
    labels = tuple(sorted({"spec": spec.name, "output": "orders", "topic": "shop.orders"}.items()))
    assert got[("dualrun_tap_records_read", labels)] == 40
    assert got[("dualrun_tap_undecodable_records", labels)] == 3
    assert got[("dualrun_tap_complete", labels)] == 1


def test_a_broker_that_does_not_answer_is_a_metric_and_a_log_line_never_a_failed_scrape(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "stream").mkdir()
    consumer = {"group.id": "dualrun-down", "bootstrap.servers": "127.0.0.1:1"}  # nothing listens there
    (tmp_path / "stream" / "dualrun-down.status.json").write_text(json.dumps({"consumer": consumer}))
    collector = GroupLagCollector(tmp_path, timeout=0.5)
    registry = CollectorRegistry()
    registry.register(collector)
    with caplog.at_level("WARNING", logger="dualrun.exporter"):
        first, second = samples(registry), samples(registry)
    group = (("group", "dualrun-down"),)
    assert first[("dualrun_group_lag_up", group)] == 0 and first[("dualrun_group_lag_failures_total", group)] == 1
    assert second[("dualrun_group_lag_failures_total", group)] == 2  # tried again at the next scrape
    line = caplog.records[0].getMessage()  # TimeoutError or librdkafka's own timeout, whichever comes first
    assert line.startswith("lag of group dualrun-down on 127.0.0.1:1 not measured (") and "next scrape retries" in line
    # librdkafka may abort the process that holds the clients: only the worker dies, and comes back.
    worker = collector.worker.process
    assert worker is not None and worker.is_alive()
    os.kill(worker.pid, signal.SIGABRT)
    worker.join(10)
    third = samples(registry)
    assert third[("dualrun_group_lag_failures_total", group)] == 3 and collector.worker.process.is_alive()
    assert collector.worker.process.pid != worker.pid
    collector.worker.close()


def test_on_a_secured_stack_the_exporter_logs_in_as_dualrun(tmp_path: Path) -> None:
    from migrate.stack import switch_security
    from migrate.stackconfig import StackConfig

    collector = GroupLagCollector(tmp_path)
    assert not collector.settings("127.0.0.1:9092").secured
    switch_security(StackConfig.from_env(tmp_path), True)
    settings = collector.settings("127.0.0.1:9092")
    assert settings.properties["sasl.username"] == "dualrun" and settings.secrets["sasl.password"]


def test_a_sink_is_published_as_its_own_output_with_its_verdict_or_why_not(tmp_path: Path) -> None:
    """reconcile --spec publishes `<output>@sink` next to the output: a sink difference reaches
    ParityBroken like any output's, a sink behind its read point ParityNotEvaluated."""
    from datetime import UTC, datetime

    from cdc.position import Position
    from migrate.asof import SpecReconciliation, _publish
    from migrate.batch import BatchRun
    from migrate.progress import StreamProgress
    from migrate.sink import SinkAlignment, SinkParity
    from migrate.spec import OutputSinkSpec
    from tests.unit.report.builders import pipeline_run, sink_run

    base = parity_spec(tmp_path, "shop")
    outputs = {k: v for k, v in base.outputs.items() if k in ("orders_enriched", "daily_revenue")}
    outputs["orders_enriched"] = outputs["orders_enriched"].model_copy(update={"sink": OutputSinkSpec(table="oe")})
    spec = base.model_copy(update={"outputs": outputs})
    at = Position.binlog_snapshot("mysql-bin.000003", 9000)
    run = BatchRun("r1", datetime(2024, 4, 30, tzinfo=UTC), datetime(2024, 4, 30, tzinfo=UTC), at)
    aligned = SinkAlignment("s", "connect-s", "t", ((0, 3),), ((0, 3),), 0.5)
    broken = SinkParity("orders_enriched", "oe", aligned, sink_run(True, 3))
    result = SpecReconciliation("shop", run, StreamProgress(True, at, at, 0, 0.0, "running"),
                                pipeline_run(False, "0-1-1"), sinks={"orders_enriched": broken})  # fmt: skip
    assert result.verdict == "differences"  # batch vs stream clean, the sink not
    _publish(spec, result)
    registry = CollectorRegistry()
    registry.register(TextfileCollector(monitoring_dir(tmp_path) / TEXTFILE_DIR))
    got = samples(registry)
    sink = (("output", "orders_enriched@sink"), ("spec", "shop"))
    assert got[("dualrun_parity_unexplained_rows", sink)] == 2
    assert got[("dualrun_parity_unexplained_rows", (("output", "orders_enriched"), ("spec", "shop")))] == 0
    assert got[("dualrun_parity_verdict", (*sink, ("verdict", "differences")))] == 1

    behind = SinkParity("orders_enriched", "oe", SinkAlignment("s", "connect-s", "t", ((0, 3),), ((0, 1),), 9), None)
    _publish(spec, dataclasses.replace(result, sinks={"orders_enriched": behind}))
    got = samples(registry)
    verdicts = {dict(labels)["verdict"]: v for (name, labels), v in got.items()
                if name == "dualrun_parity_verdict" and dict(labels)["output"] == "orders_enriched@sink"}  # fmt: skip
    assert verdicts == {"clean": 0, "differences": 0, "sink_behind": 1}
    assert ("dualrun_parity_unexplained_rows", sink) not in got  # never an older number for a sink not compared

    # The one publisher: a caller that compares no sink (bracket) publishes no sink side; one that
    # compares sinks but got none for an output says why.
    from migrate.metrics import publish_parity

    publish_parity(spec, result.outputs)
    assert not [labels for _, labels in samples(registry) if ("output", "orders_enriched@sink") in labels]
    publish_parity(spec, result.outputs, sinks={})
    got = samples(registry)
    assert got[("dualrun_parity_verdict", (*sink, ("verdict", "stream_behind")))] == 1


def test_a_lag_worker_failure_is_a_dualrun_error_with_exit_2() -> None:
    """The lag could not be measured (nothing listens on port 1): one line, caught by the CLI's one handler."""
    from cdc.client import KafkaSettings
    from migrate.errors import DualrunError
    from migrate.exporter import LagWorker, LagWorkerError

    worker = LagWorker(timeout=0.5)
    try:
        with pytest.raises(LagWorkerError) as caught:
            worker.measure(KafkaSettings("127.0.0.1:1"), "dualrun-nobody")
    finally:
        worker.close()
    assert isinstance(caught.value, DualrunError) and caught.value.exit_code == 2
    assert "\n" not in str(caught.value) and str(caught.value)
