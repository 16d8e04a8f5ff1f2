"""The output reader (the tap of a bring-your-own pipeline) against a broker that is down when it starts:
it waits the outage out (retrying with backoff) and reads everything once the broker is back; down for
longer than its wait, it gives up with one line and exit 2, as the checklist does for an unreachable system."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from cdc.topics import TopicAdmin, quiet_logger
from migrate.errors import KafkaUnavailable
from migrate.stream.tap import TapRun, tap_output
from tests.faults.conftest import FaultStack, kill9

pytestmark = [pytest.mark.faults, pytest.mark.integration]

RECORDS = 500


def _output_topic(bootstrap: str) -> str:
    """A foreign job's output topic with RECORDS committed JSON records (key {"id": i}, value {"id", "n"})."""
    topic = f"tap-outage-{uuid.uuid4().hex[:8]}"
    TopicAdmin(bootstrap).create(topic, partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True}, logger=quiet_logger())
    for i in range(RECORDS):
        producer.produce(topic, key=orjson.dumps({"id": i}), value=orjson.dumps({"id": i, "n": i * 10}))
    assert producer.flush(30) == 0, "records not delivered"
    return topic


def test_the_tap_waits_out_a_broker_down_at_its_start_and_reads_everything(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    bootstrap = fault_stack.config.bootstrap_servers
    ports = fault_stack.config.ports
    topic = _output_topic(bootstrap)
    kill9(fault_stack.kafka.process, ports.kafka, ports.controller)
    try:
        # Down for longer than the wait: one line naming the broker and what to do; nothing read, exit 2.
        started = time.monotonic()
        with pytest.raises(KafkaUnavailable) as gave_up:
            tap_output(bootstrap, topic, tmp_path / "short", ["id"], timeout=2, broker_wait_s=4)
        waited = time.monotonic() - started
        message = str(gave_up.value)
        assert gave_up.value.exit_code == 2 and "\n" not in message, message
        assert message.startswith(f"Kafka at {bootstrap} did not answer for"), message
        assert "dualrun stack status" in message and topic in message, message
        assert 2 <= waited < 4 + 15, f"gave up after {waited:.1f}s, wait was 4 s"

        # Down when the read starts, back within its wait: it reads as if nothing happened.
        result: list[TapRun | BaseException] = []

        def read() -> None:
            try:
                result.append(tap_output(bootstrap, topic, tmp_path / "long", ["id"], timeout=5, broker_wait_s=120))
            except BaseException as exc:  # surfaced below
                result.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(6)  # the outage the reader starts in: it must be retrying, not finished
        assert reader.is_alive(), f"the reader did not wait for the broker: {result}"
    finally:
        fault_stack.kafka.start()  # returns once the broker answers
    back = time.monotonic()
    reader.join(150)
    assert not reader.is_alive(), "the reader never finished after the broker came back"
    run = result[0]
    assert isinstance(run, TapRun), f"the reader failed: {run!r}"
    assert run.complete and run.records_read == RECORDS and run.undecodable == 0, run.to_dict()
    print(f"tap: broker back -> read {RECORDS} records in {time.monotonic() - back:.1f}s")
