"""`dualrun stack up --monitoring` on the real stack: Prometheus scrapes the broker, Connect and the
streaming job, and alerts reach Alertmanager when a connector is paused and when parity breaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from cdc.connect import ConnectClient
from migrate.commands.run import stream_jobs
from migrate.process import port_open
from migrate.stack import DEFAULT, MONITORING, Stack
from migrate.stackconfig import StackConfig

pytestmark = pytest.mark.integration

T = TypeVar("T")


def poll(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def monitored(stack: StackConfig) -> Iterator[StackConfig]:
    """The session's stack with monitoring: a 1 s scrape/evaluation interval and every `for:` 0s.

    A broker or Connect worker started without the JMX agent (by an earlier test) is restarted with it.
    """
    saved = {k: os.environ.get(k) for k in ("DUALRUN_MONITORING_INTERVAL", "DUALRUN_ALERT_FOR")}
    os.environ.update(DUALRUN_MONITORING_INTERVAL="1s", DUALRUN_ALERT_FOR="0s")
    try:
        watched = Stack(stack, (*DEFAULT, *MONITORING))
        services = {s.name: s for s in watched.services()}
        services["prometheus"].stop()  # started afresh below with this test's interval and `for:`
        for name, port in (("connect", stack.ports.connect_jmx), ("kafka", stack.ports.kafka_jmx)):
            if not port_open(port):
                services["connect"].stop()
                services[name].stop()
        watched.up()
        yield stack
    finally:
        for job in stream_jobs(stack.state_dir):
            job.stop(timeout=60)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def query(config: StackConfig, promql: str) -> list[dict[str, Any]]:
    response = requests.get(f"{config.prometheus_url}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def firing(config: StackConfig, alertname: str, **labels: str) -> dict[str, Any] | None:
    """The alert as Alertmanager lists it (active, not silenced), or None."""
    response = requests.get(f"{config.alertmanager_url}/api/v2/alerts", params={"active": "true"}, timeout=5)
    response.raise_for_status()
    for alert in response.json():
        have = alert["labels"]
        if have.get("alertname") == alertname and all(have.get(k) == v for k, v in labels.items()):
            return dict(alert)
    return None


def test_prometheus_scrapes_the_broker_connect_and_the_exporter(monitored: StackConfig) -> None:
    def all_up() -> list[str] | None:
        up = {r["metric"]["job"]: r["value"][1] for r in query(monitored, "up")}
        wanted = ("kafka", "connect", "dualrun-exporter", "alertmanager")
        return sorted(up) if all(up.get(job) == "1" for job in wanted) else None

    poll(all_up, 60, "Prometheus to scrape the broker, Connect, the exporter and Alertmanager")
    broker = poll(lambda: query(monitored, "kafka_server_replicamanager_underreplicatedpartitions") or None, 30,
                  "a broker metric from the JMX agent")  # fmt: skip
    assert broker[0]["value"][1] == "0"  # one broker, replication factor 1: nothing under-replicated
    rules = requests.get(f"{monitored.prometheus_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    names = {rule["name"] for group in rules for rule in group["rules"]}
    assert {"ConnectorNotRunning", "ParityBroken", "KafkaUnderReplicatedPartitions", "ConsumerLagHigh"} <= names
    page = requests.get(f"{monitored.prometheus_url}/consoles/dualrun.html", timeout=10)
    assert page.status_code == 200 and "Parity per output" in page.text


def test_the_job_is_scraped_and_alerts_fire_for_a_defect_and_a_paused_connector(
    monitored: StackConfig, tmp_path: Path
) -> None:
    # The demo with a defective transform: the job registers its endpoint, reconcile finds differences.
    done = subprocess.run(
        [sys.executable, "-m", "migrate.cli", "demo", "--state-dir", str(monitored.state_dir), "--events", "300",
         "--rate", "300", "--inject-defect", "drop-deletes", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]  # 1: differences found
    result = json.loads(done.stdout)
    broken = sorted(name for name, out in result["reconciliation"]["outputs"].items() if out["verdict"] != "clean")
    assert broken, result["reconciliation"]
    spec = result["spec"]

    # The streaming job's own endpoint, found through its file_sd target.
    events = poll(lambda: query(monitored, 'dualrun_stream_events_in_total{job="dualrun-stream"} > 0') or None, 60,
                  "Prometheus to scrape the streaming job's events counter")  # fmt: skip
    group = events[0]["metric"]["group"]
    poll(lambda: query(monitored, f'dualrun_group_lag_records_total{{group="{group}"}}') or None, 30,
         "the exporter's consumer-group lag of the job")  # fmt: skip

    # Parity broken: one alert per output with unexplained rows, with the output named.
    alert = poll(lambda: firing(monitored, "ParityBroken", spec=spec, output=broken[0]), 60,
                 f"ParityBroken for {spec}/{broken[0]} in Alertmanager")  # fmt: skip
    assert alert["status"]["state"] == "active"
    assert firing(monitored, "ParityBroken", spec=spec) is not None

    # A paused connector: its state comes from Connect's JMX metrics.
    connect = ConnectClient(monitored.connect_url)
    connector = next(name for name in connect.connectors() if connect.status(name).state == "RUNNING")
    assert firing(monitored, "ConnectorNotRunning", connector=connector) is None
    requests.put(f"{monitored.connect_url}/connectors/{connector}/pause", timeout=10).raise_for_status()
    try:
        alert = poll(lambda: firing(monitored, "ConnectorNotRunning", connector=connector), 90,
                     f"ConnectorNotRunning for the paused {connector} in Alertmanager")  # fmt: skip
        assert alert["labels"]["status"] == "paused"
    finally:
        requests.put(f"{monitored.connect_url}/connectors/{connector}/resume", timeout=10).raise_for_status()


def test_monitoring_starts_in_a_private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0700 state dir (as `mktemp -d` makes, root or not): Prometheus, Alertmanager and the exporter
    run as the invoking user, so they can enter it and read what they need there."""
    import socket

    from migrate.services.monitoring import Alertmanager, Exporter, Prometheus
    from migrate.stackconfig import Ports

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    monkeypatch.setenv("DUALRUN_MONITORING_INTERVAL", "1s")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    ports = Ports(prometheus=free_port(), alertmanager=free_port(), exporter=free_port())
    config = StackConfig(state_dir=private / "state", ports=ports)
    services = (Exporter(config), Alertmanager(config), Prometheus(config))
    try:
        for service in services:
            service.start()  # waits until ready; raises when it cannot start
        assert all(service.status().healthy for service in services)

        def scraped() -> set[str] | None:
            response = requests.get(f"{config.prometheus_url}/api/v1/targets", timeout=5)
            up = {t["labels"]["job"] for t in response.json()["data"]["activeTargets"] if t["health"] == "up"}
            return up if {"prometheus", "alertmanager", "dualrun-exporter"} <= up else None

        poll(scraped, 60, "Prometheus scraping itself, Alertmanager and the exporter")
        rules = requests.get(f"{config.prometheus_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert rules, "the shipped alert rules were not loaded"
    finally:
        for service in reversed(services):
            service.stop()
