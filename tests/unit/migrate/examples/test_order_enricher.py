"""The OrderEnricher's Python side without Java: its command line, its spec and the build stamp."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from migrate.errors import DualrunError, SpecError
from migrate.examples.order_enricher.build import PROJECT, EnricherBuild, source_digest
from migrate.examples.order_enricher.runner import SPEC, EnricherJob, EnricherSettings
from migrate.spec import load_spec


def test_the_command_line_carries_every_setting_with_exactly_once_and_caches_off_by_default() -> None:
    argv = EnricherSettings("127.0.0.1:9092", application_id="app-1", defect="drop-deletes").argv()
    pairs = dict(zip(argv[::2], argv[1::2], strict=True))
    assert pairs["--bootstrap-servers"] == "127.0.0.1:9092"
    assert pairs["--application-id"] == "app-1"
    assert pairs["--processing-guarantee"] == "exactly_once_v2"
    assert pairs["--cache-max-bytes"] == "0"
    assert (pairs["--gold-above"], pairs["--silver-above"], pairs["--alert-above"]) == ("200", "100", "500")
    assert pairs["--defect"] == "drop-deletes"
    assert "--commit-interval-ms" not in pairs


def test_an_unknown_defect_is_refused_with_the_known_ones() -> None:
    with pytest.raises(DualrunError, match="unknown OrderEnricher defect 'nope'; choose one of tier-boundary"):
        EnricherSettings("k:9092", defect="nope")


def test_the_maven_project_ships_inside_the_package() -> None:
    assert (PROJECT / "pom.xml").is_file()
    sources = {p.name for p in (PROJECT / "src" / "main" / "java").rglob("*.java")}
    assert {"OrderEnricher.java", "EnricherTopology.java", "Debezium.java"} <= sources
    pyproject = (Path(__file__).parents[4] / "pyproject.toml").read_text()
    assert '"examples/order_enricher/src/**/*"' in pyproject


def test_the_build_stamp_changes_with_main_sources_and_not_with_tests(tmp_path: Path) -> None:
    project = tmp_path / "order_enricher"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target", "__pycache__"))
    before = source_digest(project)
    test = next((project / "src" / "test").rglob("*.java"))
    test.write_text(test.read_text() + "\n// a test edit\n")
    assert source_digest(project) == before
    topology = next((project / "src" / "main").rglob("EnricherTopology.java"))
    topology.write_text(topology.read_text().replace('"GOLD"', '"PLATINUM"'))
    assert source_digest(project) != before


def test_each_job_keeps_its_pid_log_and_kafka_streams_state_under_its_application_id(tmp_path: Path) -> None:
    job = EnricherJob(tmp_path, EnricherSettings("k:9092", application_id="enricher-a"))
    assert job.log_file == tmp_path / "stream" / "kstreams-enricher-a.log"
    assert job.process.marker == f"--state-dir {tmp_path / 'kstreams' / 'enricher-a'}"
    assert not job.running()
    # `dualrun stack down` finds streaming jobs by pid files under STATE/stream and `--state-dir STATE`.
    assert job.process.marker.startswith(f"--state-dir {tmp_path}")
    assert EnricherBuild(tmp_path / "lib").classpath == f"{tmp_path}/lib/order-enricher.jar:{tmp_path}/lib/deps/*"


def test_the_example_spec_describes_the_job_it_runs() -> None:
    spec = load_spec(SPEC)
    assert spec.is_external and spec.stream.group == "order-enricher"
    settings = EnricherSettings.for_spec(spec, defect="tier-boundary")
    assert (settings.application_id, settings.orders_topic, settings.customers_topic) == (
        "order-enricher", "dbserver1.shop.orders", "dbserver1.shop.customers",
    )  # fmt: skip
    assert (settings.enriched_topic, settings.alerts_topic, settings.revenue_topic) == (
        "kstreams-orders-enriched", "kstreams-order-alerts", "kstreams-daily-revenue",
    )  # fmt: skip
    assert settings.defect == "tier-boundary"
    # A defect run is a variant: its own application.id and topics, never the correct job's.
    variant = EnricherSettings.for_spec(spec.variant("drop-deletes"), "drop-deletes")
    assert variant.application_id == "order-enricher-drop-deletes"
    assert variant.enriched_topic == "kstreams-orders-enriched-drop-deletes"


def test_the_specs_stream_exactly_once_picks_the_processing_guarantee() -> None:
    spec = load_spec(SPEC)
    assert EnricherSettings.for_spec(spec).processing_guarantee == "exactly_once_v2"
    at_least_once = EnricherSettings.for_spec(spec.with_changes(stream={"exactly_once": False}))
    argv = dataclasses.replace(at_least_once, session_timeout_ms=6000).argv()
    pairs = dict(zip(argv[::2], argv[1::2], strict=True))
    assert pairs["--processing-guarantee"] == "at_least_once"
    assert pairs["--session-timeout-ms"] == "6000"


def test_the_jobs_thresholds_are_the_batch_sqls() -> None:
    spec = load_spec(SPEC)
    settings = EnricherSettings("k:9092")
    enriched = spec.outputs["orders_enriched"].batch.sql_text()
    assert f"o.amount > {settings.gold_above} THEN 'GOLD'" in enriched
    assert f"o.amount > {settings.silver_above} THEN 'SILVER'" in enriched
    assert f"amount > {settings.alert_above}" in spec.outputs["order_alerts"].batch.sql_text()
    assert "status <> 'CANCELLED'" in spec.outputs["daily_revenue"].batch.sql_text()


def test_a_spec_without_the_outputs_the_job_writes_is_refused_naming_the_output() -> None:
    spec = load_spec(SPEC)
    data = spec.model_dump()
    del data["outputs"]["order_alerts"]
    trimmed = spec.model_validate({**data, "origin": "mine.yaml"})
    with pytest.raises(SpecError, match=r"mine.yaml: outputs.order_alerts.stream.topic is needed"):
        EnricherSettings.for_spec(trimmed)


def test_a_secured_clusters_settings_reach_the_job_in_a_private_file_not_its_command_line(tmp_path: Path) -> None:
    import stat

    from migrate.services.properties import java_escape, read_properties

    jaas = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="stream" password="pw\\x";'
    secured = {"security.protocol": "SASL_SSL", "sasl.jaas.config": jaas}
    job = EnricherJob(tmp_path, EnricherSettings("k:9092", application_id="enricher-s", client_properties=secured))
    assert "pw" not in " ".join(job.settings.argv()) and "pw" not in repr(job.settings)
    written = job._client_file()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    # Written with the one Java properties escaper: Properties.load gives the JAAS line back as given.
    assert read_properties(written) == secured
    assert written.read_text().splitlines()[1] == f"sasl.jaas.config={java_escape(jaas)}"
