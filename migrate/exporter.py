"""dualrun's exporter: the Prometheus endpoint for what no long-running process of dualrun serves.

`python -m migrate.exporter --state-dir DIR --port PORT` (started by `dualrun stack up --monitoring`)
serves, computed at each scrape:
- consumer-group lag of every streaming job that reported itself under `DIR/stream/`: the group's
  committed offsets (AdminClient) against each partition's high watermark, so lag is known even
  while the job is down (Kafka has no lag metric of its own); on a secured stack (`stack up
  --secure`) as its `dualrun` user. The AdminClients live in a worker process (`LagWorker`): a
  broker outage can trip an assertion inside librdkafka (seen with 2.16: `rd_kafka_enq_once_del_source_return`),
  which aborts only the worker. A failed measurement (broker down, refused, worker died) is
  `dualrun_group_lag_up 0`, a count and a log line, and is tried again at the next scrape;
- the Prometheus text files one-shot commands leave in `DIR/monitoring/textfile/` (parity per output
  from `dualrun reconcile --spec`, the output tap's counts), like node_exporter's textfile collector.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from cdc import client
from cdc.client import Kafka, KafkaSettings
from cdc.progress import committed_offsets
from migrate.errors import DualrunError
from migrate.metrics import TEXTFILE_DIR, monitoring_dir
from migrate.stackconfig import StackConfig

log = logging.getLogger("dualrun.exporter")

TIMEOUT_S = 5.0  # per broker round trip; a scrape must answer well within Prometheus' scrape timeout


def lag_admin(kafka: Kafka, timeout: float = TIMEOUT_S) -> AdminClient:
    """An AdminClient for `group_lag`, to keep for the process' life: a client dropped while its
    requests are in flight (a future timed out during a broker outage) may be destroyed from
    librdkafka's own thread, which aborts the process."""
    return client.admin(kafka, {"socket.timeout.ms": int(timeout * 1000)})


def group_lag(
    kafka: Kafka, group: str, timeout: float = TIMEOUT_S, admin: AdminClient | None = None
) -> dict[tuple[str, int], int]:
    """Records behind per (topic, partition) the group has committed on: high watermark - committed
    offset. `admin`: a kept client (`lag_admin`) instead of a new one. Raises KafkaException when the
    broker refuses (e.g. a transaction is committing the group's offsets: require_stable, KIP-851),
    TimeoutError when it does not answer within `timeout` seconds per request."""
    admin = admin or lag_admin(kafka, timeout)
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


class LagWorkerError(DualrunError):
    """The lag worker process failed a request: an error it reported, no answer in time, or it died.
    The lag could not be measured, as a check that could not reach its system: exit 2."""

    exit_code = 2


def _serve_lag(conn: Connection, timeout: float) -> None:
    """The worker's loop: (settings, group) in, ("ok", lag) or ("error", text) out; one kept client per broker list."""
    admins: dict[str, AdminClient] = {}
    while True:
        try:
            settings, group = conn.recv()
        except EOFError:  # the exporter is gone
            return
        try:
            admin = admins.get(settings.bootstrap_servers) or admins.setdefault(
                settings.bootstrap_servers, lag_admin(settings, timeout)
            )
            conn.send(("ok", group_lag(settings, group, timeout, admin)))
        except Exception as exc:  # noqa: BLE001 - reported to the exporter, which logs it
            reason = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
            conn.send(("error", settings.scrub(f"{type(exc).__name__}: {reason or 'no answer'}")))


class LagWorker:
    """A child process that measures group lag, started on first use and again after it dies."""

    def __init__(self, timeout: float = TIMEOUT_S) -> None:
        self.timeout = timeout
        self.context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self.process: Any = None
        self.conn: Connection | None = None
        self.lock = threading.Lock()  # scrapes may overlap (one thread per HTTP request)

    def _alive(self) -> Connection:
        if self.process is None or not self.process.is_alive() or self.conn is None:
            self.close()
            parent, child = self.context.Pipe()
            self.process = self.context.Process(target=_serve_lag, args=(child, self.timeout), daemon=True)
            self.process.start()
            child.close()
            self.conn = parent
        return self.conn

    def measure(self, settings: KafkaSettings, group: str) -> dict[tuple[str, int], int]:
        """Lag per (topic, partition); LagWorkerError when the worker reports an error, does not answer
        within two request timeouts (it is then ended) or dies."""
        with self.lock:
            conn = self._alive()
            try:
                conn.send((settings, group))
                if not conn.poll(2 * self.timeout + 5):
                    self.close()
                    raise LagWorkerError("no answer from the lag worker in time; it was restarted")
                answer = conn.recv()
            except (EOFError, OSError):
                code = self.process.exitcode if self.process is not None else None
                self.close()
                raise LagWorkerError(f"the lag worker died (exit code {code}); it starts again") from None
        if answer[0] != "ok":
            raise LagWorkerError(answer[1])
        lag: dict[tuple[str, int], int] = answer[1]
        return lag

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.process is not None:
            if self.process.is_alive():
                self.process.kill()
            self.process.join(5)
            self.process = None


class GroupLagCollector(Collector):
    """Lag of the consumer group of each streaming job that wrote a status file under `state_dir/stream`.

    Measured in a `LagWorker` process (one kept AdminClient per bootstrap list); on a secured stack
    as the stack's `dualrun` user. A failure is counted (`dualrun_group_lag_failures_total`) and logged,
    never raised: the next scrape tries again.
    """

    def __init__(self, state_dir: Path, timeout: float = TIMEOUT_S) -> None:
        self.state_dir = state_dir
        self.timeout = timeout
        self.worker = LagWorker(timeout)
        self.failures: Counter[str] = Counter()

    def settings(self, bootstrap: str) -> KafkaSettings:
        """The secured stack's `dualrun` client settings for its brokers; plaintext otherwise."""
        stack = StackConfig.from_env(self.state_dir)
        if stack.secure:
            from migrate.services.security import SecureStack

            return SecureStack(self.state_dir).client(bootstrap, "dualrun")
        return KafkaSettings(bootstrap)

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

    def measure(self, group: str, bootstrap: str) -> dict[tuple[str, int], int] | None:
        """The group's lag per partition, or None (counted and logged) when it cannot be measured."""
        try:
            return self.worker.measure(self.settings(bootstrap), group)
        except Exception as exc:  # noqa: BLE001 - whatever fails, the exporter must keep serving
            self.failures[group] += 1
            log.warning("lag of group %s on %s not measured (%s); next scrape retries", group, bootstrap, exc)
            return None

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
        failed = CounterMetricFamily(
            "dualrun_group_lag_failures",
            "Scrapes at which the group's lag could not be measured (broker down, refused, timed out).",
            labels=["group"],
        )
        for group, bootstrap in self.jobs().items():
            partitions = self.measure(group, bootstrap)
            failed.add_metric([group], self.failures[group])
            if partitions is None:
                ok.add_metric([group], 0)
                continue
            ok.add_metric([group], 1)
            for (topic, partition), behind in sorted(partitions.items()):
                lag.add_metric([group, topic, str(partition)], behind)
            total.add_metric([group], sum(partitions.values()))
        yield from (lag, total, ok, failed)


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = serve(args.state_dir.absolute(), args.port)
    while not stop.wait(1.0):
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
