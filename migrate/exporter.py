"""dualrun's exporter: the Prometheus endpoint for what no long-running process of dualrun serves.

`python -m migrate.exporter --state-dir DIR --port PORT` (started by `dualrun stack up --monitoring`)
serves, computed at each scrape:
- consumer-group lag of every streaming job that reported itself under `DIR/stream/`: the group's
  committed offsets (AdminClient) against each partition's high watermark, so lag is known even
  while the job is down (Kafka has no lag metric of its own);
- the Prometheus text files one-shot commands leave in `DIR/monitoring/textfile/` (parity per output
  from `dualrun reconcile --spec`, the output tap's counts), like node_exporter's textfile collector.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from cdc import client
from cdc.client import Kafka
from cdc.progress import committed_offsets
from migrate.metrics import TEXTFILE_DIR, monitoring_dir

TIMEOUT_S = 5.0  # per broker round trip; a scrape must answer well within Prometheus' scrape timeout


def group_lag(bootstrap_servers: Kafka, group: str, timeout: float = TIMEOUT_S) -> dict[tuple[str, int], int]:
    """Records behind per (topic, partition) the group has committed on: high watermark - committed
    offset. Raises KafkaException when the broker cannot answer (e.g. a transaction is committing
    the group's offsets: require_stable, KIP-851)."""
    admin = client.admin(bootstrap_servers, {"socket.timeout.ms": int(timeout * 1000)})
    committed = committed_offsets(admin, group, timeout)
    if not committed:
        return {}
    request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in committed}
    futures = admin.list_offsets(request, request_timeout=timeout)
    lag = {}
    for tp, future in futures.items():
        high = future.result(timeout=timeout).offset
        lag[(tp.topic, tp.partition)] = max(0, high - committed[(tp.topic, tp.partition)])
    return lag


class GroupLagCollector(Collector):
    """Lag of the consumer group of each streaming job that wrote a status file under `state_dir/stream`."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def jobs(self) -> dict[str, str]:
        """Consumer group -> bootstrap servers, from the jobs' self-reports (`migrate.stream.status`)."""
        found = {}
        for path in sorted((self.state_dir / "stream").glob("*.status.json")):
            try:
                consumer = json.loads(path.read_text()).get("consumer") or {}
            except (OSError, ValueError):
                continue
            if consumer.get("group.id") and consumer.get("bootstrap.servers"):
                found[consumer["group.id"]] = consumer["bootstrap.servers"]
        return found

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "dualrun_group_lag_records",
            "Records the group has not committed, per partition "
            "(high watermark - committed offset, via the AdminClient).",
            labels=["group", "topic", "partition"],
        )
        total = GaugeMetricFamily(
            "dualrun_group_lag_records_total",
            "Records the group has not committed, over every partition it committed on.",
            labels=["group"],
        )
        ok = GaugeMetricFamily(
            "dualrun_group_lag_up", "1 when the group's lag could be measured at this scrape.", labels=["group"]
        )
        for group, bootstrap in self.jobs().items():
            try:
                partitions = group_lag(bootstrap, group)
            except KafkaException:
                ok.add_metric([group], 0)
                continue
            ok.add_metric([group], 1)
            for (topic, partition), behind in sorted(partitions.items()):
                lag.add_metric([group, topic, str(partition)], behind)
            total.add_metric([group], sum(partitions.values()))
        yield from (lag, total, ok)


class TextfileCollector(Collector):
    """Every `*.prom` file under `folder`, families of one name merged across files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        mtime = GaugeMetricFamily(
            "dualrun_textfile_mtime_seconds", "When each text file was last written.", labels=["file"]
        )
        failed = GaugeMetricFamily(
            "dualrun_textfile_scrape_error", "1 if a text file could not be parsed.", labels=["file"]
        )
        for path in sorted(self.folder.glob("*.prom")):
            try:
                text, written = path.read_text(), path.stat().st_mtime
                parsed = list(text_string_to_metric_families(text))
            except (OSError, ValueError):
                failed.add_metric([path.name], 1)
                continue
            failed.add_metric([path.name], 0)
            mtime.add_metric([path.name], written)
            for family in parsed:
                known = families.setdefault(family.name, family)
                if known is not family:
                    known.samples.extend(family.samples)
        yield from families.values()
        yield from (mtime, failed)


def serve(state_dir: Path, port: int) -> threading.Event:
    """Serve on 127.0.0.1:`port` in a background thread; returns an event that SIGTERM sets."""
    registry = CollectorRegistry()
    registry.register(GroupLagCollector(state_dir))
    registry.register(TextfileCollector(monitoring_dir(state_dir) / TEXTFILE_DIR))
    start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migrate.exporter", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args: Any = parser.parse_args(argv)
    stop = serve(args.state_dir.absolute(), args.port)
    while not stop.wait(1.0):
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
