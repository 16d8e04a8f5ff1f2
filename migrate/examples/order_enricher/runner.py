"""Run the OrderEnricher as a subprocess: start, wait until Kafka Streams is RUNNING, stop, clean up.

Its pid file and log sit beside dualrun's own streaming jobs, STATE/stream/kstreams-<application.id>.*,
so `dualrun stack down` stops it too; its Kafka Streams state (RocksDB) is STATE/kstreams/<application.id>.
Several jobs (a defect variant beside the correct one) and several state directories share nothing.
Readiness is the job's own log line `order-enricher: state RUNNING`, printed by its state listener once
the group has assigned it its partitions: polled, no fixed sleeps.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from migrate.errors import DualrunError, MissingTool, SpecError, StackError
from migrate.examples.order_enricher.build import MAIN_CLASS, ensure_enricher
from migrate.process import ManagedProcess, wait_until
from migrate.services.properties import write_properties
from migrate.spec import PipelineSpec

LOG_PREFIX = "order-enricher: "
RUNNING = LOG_PREFIX + "state RUNNING"
FAILED = LOG_PREFIX + "failed:"
# OrderEnricher's --defect values, each with the difference a dual run must find.
DEFECTS = {
    "tier-boundary": "loyalty tier thresholds compared with >= instead of >",
    "drop-deletes": "deleted orders are ignored, so they stay in every output",
    "ignore-customer-changes": "a KStream-KTable join: a customer change never revisits existing orders",
}
SPEC = Path(__file__).with_name("spec.yaml")
OUTPUTS = {"enriched_topic": "orders_enriched", "alerts_topic": "order_alerts", "revenue_topic": "daily_revenue"}


@dataclass(frozen=True)
class EnricherSettings:
    """The job's command line. Thresholds are the batch SQL's; topics default to the local stack's."""

    bootstrap_servers: str
    application_id: str = "order-enricher"
    orders_topic: str = "dbserver1.shop.orders"
    customers_topic: str = "dbserver1.shop.customers"
    enriched_topic: str = "orders-enriched"
    alerts_topic: str = "order-alerts"
    revenue_topic: str = "daily-revenue"
    gold_above: str = "200"
    silver_above: str = "100"
    alert_above: str = "500"
    # exactly_once_v2 commits input offsets with the outputs; caches off keep every version's position.
    processing_guarantee: str = "exactly_once_v2"
    cache_max_bytes: int = 0
    commit_interval_ms: int | None = None
    # The consumer's session.timeout.ms: how long a restarted job's first rebalance waits for its killed or
    # closed predecessor (Kafka Streams sends no LeaveGroup); None keeps Kafka's 45 s.
    session_timeout_ms: int | None = None
    defect: str | None = None
    # A secured cluster's Java client settings, password included (`KafkaSettings.java_properties`):
    # written to a 0600 file the job reads (--client-properties), never put on its command line.
    client_properties: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.defect is not None and self.defect not in DEFECTS:
            raise DualrunError(f"unknown OrderEnricher defect {self.defect!r}; choose one of {', '.join(DEFECTS)}")

    @classmethod
    def for_spec(cls, spec: PipelineSpec, defect: str | None = None) -> EnricherSettings:
        """The job a spec describes: application.id = stream.group, the change topics of its `orders` and
        `customers` tables, and the topics of its orders_enriched, order_alerts and daily_revenue outputs;
        `stream.exactly_once: false` runs it at_least_once (else exactly_once_v2)."""
        tables = {table.split(".", 1)[1]: table for table in spec.cdc.tables}
        missing = [name for name in ("orders", "customers") if name not in tables]
        if missing:
            raise SpecError(f"{spec.origin}: cdc.tables has no {missing[0]} table for the OrderEnricher to read")
        topics: dict[str, str] = {}
        for argument, output in OUTPUTS.items():
            topic = spec.outputs[output].stream.topic if output in spec.outputs else None
            if topic is None:
                raise SpecError(f"{spec.origin}: outputs.{output}.stream.topic is needed for the OrderEnricher")
            topics[argument] = topic
        return cls(
            spec.kafka.bootstrap_servers, application_id=spec.stream.group,
            orders_topic=spec.cdc.topic(tables["orders"]), customers_topic=spec.cdc.topic(tables["customers"]),
            enriched_topic=topics["enriched_topic"], alerts_topic=topics["alerts_topic"],
            revenue_topic=topics["revenue_topic"], defect=defect,
            processing_guarantee="exactly_once_v2" if spec.stream.exactly_once else "at_least_once",
            client_properties=spec.stream_kafka().java_properties(),
        )  # fmt: skip

    def argv(self) -> list[str]:
        args = {
            "bootstrap-servers": self.bootstrap_servers, "application-id": self.application_id,
            "orders-topic": self.orders_topic, "customers-topic": self.customers_topic,
            "enriched-topic": self.enriched_topic, "alerts-topic": self.alerts_topic,
            "revenue-topic": self.revenue_topic, "gold-above": self.gold_above, "silver-above": self.silver_above,
            "alert-above": self.alert_above, "processing-guarantee": self.processing_guarantee,
            "cache-max-bytes": str(self.cache_max_bytes),
        }  # fmt: skip
        if self.commit_interval_ms is not None:
            args["commit-interval-ms"] = str(self.commit_interval_ms)
        if self.session_timeout_ms is not None:
            args["session-timeout-ms"] = str(self.session_timeout_ms)
        if self.defect is not None:
            args["defect"] = self.defect
        return [part for name, value in args.items() for part in (f"--{name}", value)]


class EnricherJob:
    """One OrderEnricher process for a state directory and application.id."""

    def __init__(self, state_dir: Path, settings: EnricherSettings) -> None:
        self.state_dir = state_dir.absolute()
        self.settings = settings
        self.home = self.state_dir / "kstreams" / settings.application_id
        jobs = self.state_dir / "stream"
        # The command line names this job's own Kafka Streams state dir: a recycled pid is never ours. That
        # also starts with `--state-dir STATE`, the marker by which `stack down` finds streaming jobs.
        self.process = ManagedProcess(
            f"order-enricher {settings.application_id}", jobs / f"kstreams-{settings.application_id}.pid",
            jobs / f"kstreams-{settings.application_id}.log", f"--state-dir {self.home}",
        )  # fmt: skip

    @property
    def log_file(self) -> Path:
        return self.process.log_file

    def running(self) -> bool:
        return self.process.running()

    def start(self, timeout: float = 180) -> int:
        """Build if needed, start the job, and return its pid once Kafka Streams reports RUNNING.

        Raises StackError when the job exits or reports a failure first, or after `timeout` seconds.
        """
        if (pid := self.process.pid()) is not None:
            return pid
        java = shutil.which("java")
        if java is None:
            raise MissingTool("Java not found: install it with `apt-get install openjdk-17-jdk-headless`")
        build = ensure_enricher(self.state_dir)
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        argv = [java, "-Xms64m", "-Xmx384m", "-cp", build.classpath, MAIN_CLASS, *self.settings.argv(),
                "--state-dir", str(self.home)]  # fmt: skip
        if self.settings.client_properties:
            argv += ["--client-properties", str(self._client_file())]
        pid = self.process.start(argv)
        wait_until(lambda: self._ready(offset), timeout=timeout, what="the OrderEnricher to run", process=self.process)
        return pid

    def _client_file(self) -> Path:
        """The job's client settings in a file only its owner reads (it holds the SASL password)."""
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home.parent / f"{self.settings.application_id}.client.properties"
        write_properties(path, dict(self.settings.client_properties))
        return path

    def _ready(self, offset: int) -> bool | None:
        with self.log_file.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        failure = next((line for line in text.splitlines() if line.startswith(FAILED)), None)
        if failure is not None:
            raise StackError(f"the OrderEnricher failed: {failure[len(FAILED) :].strip()} (log: {self.log_file})")
        return True if RUNNING in text else None

    def stop(self, timeout: float = 45) -> bool:
        """SIGTERM (Kafka Streams closes cleanly and commits), SIGKILL after `timeout`. True if it was running."""
        return self.process.stop(timeout)

    def kill(self) -> bool:
        """SIGKILL: no close, no commit, no producer flush, the local state left as it was. True if it ran."""
        return self.process.kill()

    def cleanup(self) -> None:
        """Stop the job and delete its local state; its Kafka topics are left to the caller."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
