"""dualrun's exporter across a broker outage: every scrape during it answers, with the group's lag
`up` 0 and a failure counted; the exporter never dies (librdkafka 2.16 can abort on an assertion,
`rd_kafka_enq_once_del_source_return`, when the broker comes back: only the lag worker process
dies, and is started again); once the broker is back the lag is measured again."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import orjson
import pytest
from confluent_kafka import Consumer, Producer

from cdc.topics import TopicAdmin, quiet_logger
from tests.faults.conftest import ROOT, FaultStack, kill9

pytestmark = [pytest.mark.faults, pytest.mark.integration]

T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _poll(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
    return found


def _committed_group(bootstrap: str) -> str:
    """A group that committed 10 of a topic's 30 records: lag 20."""
    topic, group = f"exporter-outage-{uuid.uuid4().hex[:8]}", f"dualrun-exporter-{uuid.uuid4().hex[:8]}"
    TopicAdmin(bootstrap).create(topic, partitions=1)
    producer = Producer({"bootstrap.servers": bootstrap}, logger=quiet_logger())
    for i in range(30):
        producer.produce(topic, value=orjson.dumps({"n": i}))
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False}, logger=quiet_logger())  # fmt: skip
    consumer.subscribe([topic])
    read = 0
    deadline = time.monotonic() + 60
    while read < 10 and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            read += 1
            if read == 10:
                consumer.commit(message=message, asynchronous=False)
    consumer.close()
    assert read == 10
    return group


def test_the_exporter_outlives_a_broker_outage_and_measures_again(fault_stack: FaultStack, tmp_path: Path) -> None:
    bootstrap, ports = fault_stack.config.bootstrap_servers, fault_stack.config.ports
    group = _committed_group(bootstrap)
    (tmp_path / "stream").mkdir()
    consumer = {"group.id": group, "bootstrap.servers": bootstrap}
    (tmp_path / "stream" / f"{group}.status.json").write_text(orjson.dumps({"consumer": consumer}).decode())
    port = _free_port()
    log = (tmp_path / "exporter.log").open("w")
    exporter = subprocess.Popen([sys.executable, "-m", "migrate.exporter", "--state-dir", str(tmp_path),
                                 "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

    def scrape() -> str | None:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
        except OSError:
            return None

    up, down = f'dualrun_group_lag_up{{group="{group}"}} 1.0', f'dualrun_group_lag_up{{group="{group}"}} 0.0'
    try:
        _poll(lambda: (text := scrape()) and up in text or None, 60, "the exporter measuring the group's lag")
        assert f'dualrun_group_lag_records_total{{group="{group}"}} 20.0' in (scrape() or "")
        kill9(fault_stack.kafka.process, ports.kafka, ports.controller)
        killed = time.monotonic()
        outage: list[str] = []
        while time.monotonic() - killed < 45:  # past librdkafka's own request and socket timeouts
            text = scrape()
            assert exporter.poll() is None, f"the exporter died: {(tmp_path / 'exporter.log').read_text()[-2000:]}"
            assert text is not None, "a scrape during the outage got no answer"
            outage.append(text)
        assert all(down in text for text in outage), outage[-1]
        failures = [line for line in outage[-1].splitlines() if line.startswith("dualrun_group_lag_failures_total")]
        assert failures and float(failures[0].split()[-1]) >= len(outage), failures
        fault_stack.kafka.start()
        _poll(lambda: (text := scrape()) and up in text or None, 90, "the lag measured again after the outage")
        assert exporter.poll() is None
        assert "not measured" in (tmp_path / "exporter.log").read_text()  # each failure is a log line
    finally:
        fault_stack.kafka.start()
        exporter.terminate()
        exporter.wait(30)
        log.close()
