"""dualrun's Prometheus metrics: what the streaming job serves, and what one-shot commands leave behind.

Long-running processes (the streaming job) serve their metrics over HTTP. One-shot commands
(`dualrun reconcile`, the output tap) write a Prometheus text file under
`<state_dir>/monitoring/textfile/`, which dualrun's exporter (`migrate.exporter`) serves, the way
node_exporter's textfile collector does: Prometheus only pulls, and a Pushgateway would keep a dead
command's last push forever and hide when it ran. Each file carries its own timestamp metric.

Metric names follow Prometheus conventions: `_total` counters, `_seconds` and `_records` units.
Every metric here is labelled with the consumer group (`group`) or the spec and output
(`spec`, `output`) it describes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from comparators.result import Reconciliation
    from migrate.sink import SinkParity
    from migrate.spec import PipelineSpec
    from migrate.stream.status import StreamStatus
    from migrate.stream.tap import TapRun

MONITORING_DIR = "monitoring"  # under a state dir; `dualrun stack up --monitoring` creates it
TEXTFILE_DIR = "textfile"  # *.prom files one-shot commands write, served by the exporter
TARGETS_DIR = "targets"  # Prometheus file_sd target files of the running streaming jobs
STREAM_JOB = "dualrun-stream"  # the Prometheus `job` label of streaming job endpoints
VERDICTS = ("clean", "differences")  # comparators' Reconciliation.verdict values


def monitoring_dir(state_dir: Path) -> Path:
    return state_dir / MONITORING_DIR


class StreamCollector(Collector):
    """The streaming job's metrics, taken from its latest self-report (`StreamStatus`) at scrape time.

    `status` returns the latest report (None before the first one); `max_lag` and `max_age`
    are the spec's `checklist.max_consumer_lag` (records) and `max_event_age_seconds`, exported
    so alert rules compare against each spec's own thresholds.
    """

    def __init__(self, group: str, status: Callable[[], StreamStatus | None], max_lag: int, max_age: float) -> None:
        self.group, self.status, self.max_lag, self.max_age = group, status, max_lag, max_age

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        status = self.status()
        if status is None:
            return
        now, labels, group = time.time(), ["group"], [self.group]

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=labels)
            family.add_metric(group, value)
            return family

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric(group, value)
            return family

        yield counter("dualrun_stream_events_in", "Change events read from the Debezium topics.", status.events_in)
        yield counter("dualrun_stream_events_out", "Output changes the job committed.", status.events_out)
        yield counter("dualrun_stream_dead_letters", "Events sent to the dead-letter topic.", status.dead_letters)
        yield counter("dualrun_stream_transactions", "Kafka transactions committed.", status.transactions)
        yield counter("dualrun_stream_restarts", "Times the supervisor restarted the job.", status.restarts)
        if status.lag is not None:
            yield gauge(
                "dualrun_stream_lag_records",
                "Input records the group has not committed (committed offsets vs high watermarks).",
                status.lag,
            )
            yield gauge(
                "dualrun_stream_lag_seconds",
                "While records wait: seconds since the source commit of the "
                "newest event the job committed; 0 when caught up.",
                lag_seconds(status, now),
            )
        if status.committed_at is not None:
            yield gauge(
                "dualrun_stream_last_commit_age_seconds",
                "Seconds since the job last committed a transaction (its committed position's age).",
                max(0.0, now - status.committed_at),
            )
        if status.last_event_ts_ms is not None:
            yield gauge(
                "dualrun_stream_committed_position_age_seconds",
                "Seconds since the source commit of the newest event the job committed (its committed position).",
                max(0.0, now - status.last_event_ts_ms / 1000),
            )
            yield gauge(
                "dualrun_stream_last_event_timestamp_seconds",
                "Source commit time of the newest event the job committed.",
                status.last_event_ts_ms / 1000,
            )
        yield gauge("dualrun_stream_max_lag_records", "The spec's checklist.max_consumer_lag.", self.max_lag)
        yield gauge("dualrun_stream_max_event_age_seconds", "The spec's checklist.max_event_age_seconds.", self.max_age)
        state = GaugeMetricFamily("dualrun_stream_state", "1 for the job's current state.", labels=["group", "state"])
        state.add_metric([self.group, status.state], 1)
        yield state


def lag_seconds(status: StreamStatus, now: float) -> float:
    """0 when nothing waits; else how old the job's view of the source is (now - newest committed
    event's source timestamp, or - when it has committed none - since the job started).

    >>> from migrate.stream.status import StreamStatus
    >>> lag_seconds(StreamStatus(1, "running", 0, 100.0, True, lag=5, last_event_ts_ms=90_000), 120.0)
    30.0
    >>> lag_seconds(StreamStatus(1, "running", 0, 100.0, True, lag=0, last_event_ts_ms=90_000), 120.0)
    0.0
    """
    if not status.lag:
        return 0.0
    since = status.last_event_ts_ms / 1000 if status.last_event_ts_ms is not None else status.started_at
    return max(0.0, now - since)


@dataclass(frozen=True)
class MetricsEndpoint:
    """A streaming job's metrics server; `target` is its file_sd registration (None: not registered)."""

    server: WSGIServer
    target: Path | None

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving, and unregister so that Prometheus stops scraping a job that ended cleanly."""
        if self.target is not None:
            self.target.unlink(missing_ok=True)
        self.server.shutdown()
        self.server.server_close()


def serve_stream_metrics(
    spec: PipelineSpec, status: Callable[[], StreamStatus | None], port: int | None
) -> MetricsEndpoint | None:
    """Serve the job's metrics on 127.0.0.1:`port` (0: any free port) and register the endpoint
    with the stack's Prometheus: a file_sd target file under `<state_dir>/monitoring/targets`.

    With `port` None, serves only when that folder exists (a stack started with `--monitoring`), on a
    free port. Returns None when not serving.
    """
    from prometheus_client import start_http_server

    targets = monitoring_dir(spec.path(".")) / TARGETS_DIR
    if port is None and not targets.is_dir():
        return None
    registry = CollectorRegistry()
    limits = spec.checklist
    registry.register(StreamCollector(spec.stream.group, status, limits.max_consumer_lag, limits.max_event_age_seconds))
    server, _ = start_http_server(port or 0, addr="127.0.0.1", registry=registry)
    if not targets.is_dir():
        return MetricsEndpoint(server, None)
    target = targets / f"stream-{spec.stream.group}.json"
    entry = [
        {"targets": [f"127.0.0.1:{server.server_port}"], "labels": {"group": spec.stream.group, "spec": spec.name}}
    ]
    _atomic_write(target, json.dumps(entry) + "\n")
    return MetricsEndpoint(server, target)


def write_parity(
    spec: PipelineSpec,
    results: dict[str, Reconciliation],
    streaks: dict[str, int],
    not_compared: Mapping[str, str] | None = None,
) -> Path:
    """After `reconcile --spec` recorded its runs: parity per output, for the exporter to serve.

    One file per spec (`reconcile-<spec>.prom`), replaced whole on every reconciliation.
    `not_compared` maps each output that could not be compared to why ("stream_behind",
    "no_positions", ...): its verdict series says so instead of keeping an older clean.
    """
    registry = CollectorRegistry()
    labels = ["spec", "output"]
    unexplained = Gauge(
        "dualrun_parity_unexplained_rows",
        "Rows with unexplained differences in the latest reconciliation.",
        labels,
        registry=registry,
    )
    explained = Gauge(
        "dualrun_parity_explained_rows",
        "Rows that differ within tolerance or are in flight.",
        labels,
        registry=registry,
    )
    streak = Gauge(
        "dualrun_parity_streak",
        "Clean batch runs in a row, newest first, each judged by its latest reconciliation.",
        labels,
        registry=registry,
    )
    verdict = Gauge(
        "dualrun_parity_verdict", "1 for the latest reconciliation's verdict.", [*labels, "verdict"], registry=registry
    )
    when = Gauge(
        "dualrun_parity_last_run_timestamp_seconds", "When the latest reconciliation ran.", labels, registry=registry
    )
    now = time.time()
    for output, result in results.items():
        unexplained.labels(spec.name, output).set(result.unexplained)
        explained.labels(spec.name, output).set(result.within_tolerance_rows + result.in_flight_rows)
        streak.labels(spec.name, output).set(streaks.get(output, 0))
        for name in VERDICTS:
            verdict.labels(spec.name, output, name).set(1 if result.verdict == name else 0)
        when.labels(spec.name, output).set(now)
    for output, cause in (not_compared or {}).items():
        if output in results:
            continue
        for name in (*VERDICTS, cause):
            verdict.labels(spec.name, output, name).set(1 if name == cause else 0)
        streak.labels(spec.name, output).set(streaks.get(output, 0))
        when.labels(spec.name, output).set(now)
    return _write_textfile(spec, f"reconcile-{spec.name}", registry)


def write_tap(spec: PipelineSpec, run: TapRun) -> Path:
    """After the output tap read a topic: what it read and could not decode, and how far it got."""
    registry = CollectorRegistry()
    labels = ["spec", "output", "topic"]
    values = [spec.name, run.output, run.topic]
    Gauge("dualrun_tap_records_read", "Records the latest tap call read.", labels, registry=registry).labels(
        *values
    ).set(run.records_read)
    Gauge(
        "dualrun_tap_undecodable_records",
        "Records the latest tap call could not decode (its dead letters).",
        labels,
        registry=registry,
    ).labels(*values).set(run.undecodable)
    Gauge(
        "dualrun_tap_complete",
        "1 when the latest tap call reached the topic's end taken at its start.",
        labels,
        registry=registry,
    ).labels(*values).set(1 if run.complete else 0)
    Gauge(
        "dualrun_tap_last_run_timestamp_seconds", "When the latest tap call ended.", labels, registry=registry
    ).labels(*values).set(time.time())
    return _write_textfile(spec, f"tap-{spec.name}-{run.output}", registry)


def _write_textfile(spec: PipelineSpec, name: str, registry: CollectorRegistry) -> Path:
    folder = monitoring_dir(spec.path(".")) / TEXTFILE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.prom"
    write_to_textfile(str(path), registry)  # a temporary file renamed into place: never read half-written
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def publish_parity(
    spec: PipelineSpec,
    results: Mapping[str, Reconciliation],
    causes: Mapping[str, str] | None = None,
    sinks: Mapping[str, SinkParity] | None = None,
) -> Path:
    """Parity per output after a reconciliation recorded its runs, for the exporter to serve; streaks
    come from the run history. Every output of the spec is published: one not in `results` says why
    (`causes`, else "stream_behind"), so a monitor never keeps showing an older clean.

    `sinks` (output -> its sink's parity), from a caller that compares sinks: every output with a sink
    gets its own side, `<output>@sink`, with its verdict, or why not ("sink_behind", else
    "stream_behind"); None publishes no sink side.
    """
    from comparators import history as run_history
    from migrate.sink import side_output

    published = dict(results)
    why = {out: "stream_behind" for out in spec.outputs if out not in results}
    why.update({out: c for out, c in (causes or {}).items() if out not in results})
    if sinks is not None:
        for output in (name for name, out in spec.outputs.items() if out.sink is not None):
            parity = sinks.get(output)
            if parity is not None and parity.reconciliation is not None:
                published[side_output(output)] = parity.reconciliation
            else:  # never compared: the sink behind its read point, or the stream not yet past the batch
                why[side_output(output)] = parity.verdict if parity is not None else "stream_behind"
    streaks = {out: run_history.parity_streak(spec.history_path, f"{spec.name}/{out}") for out in [*published, *why]}
    return write_parity(spec, published, streaks, why)
