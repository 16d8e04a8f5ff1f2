"""Apache Kafka in KRaft mode: one combined broker and controller, from the pinned Maven jars."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from cdc import client
from migrate.artifacts import Artifacts, stack_dir
from migrate.errors import MissingTool, StackError
from migrate.process import ManagedProcess, wait_until
from migrate.services.base import ServiceStatus, claim_port
from migrate.services.monitoring import jmx_agent
from migrate.services.properties import write_properties
from migrate.services.security import SecureStack, apply_acls
from migrate.stackconfig import StackConfig

JAVA_HINT = "Java 17+ not found: install it with `apt-get install openjdk-17-jre-headless`"


def java() -> str:
    found = shutil.which("java")
    if found is None:
        raise MissingTool(JAVA_HINT)
    return found


def jvm_args(heap: str, log_dir: Path) -> list[str]:
    return [
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={stack_dir() / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={log_dir}",
    ]


def probe_broker(bootstrap: client.Kafka, timeout: float = 2.0) -> int | None:
    """Number of brokers in the cluster metadata, or None while it does not answer."""
    admin = client.admin(bootstrap, {"socket.timeout.ms": int(timeout * 1000)})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return None
    return len(metadata.brokers) or None


class Kafka:
    """Single-node KRaft cluster; storage is formatted on the first start only."""

    name = "kafka"

    def __init__(self, config: StackConfig, artifacts: Artifacts | None, *, monitored: bool = False) -> None:
        self.config = config
        self.artifacts = artifacts
        self.monitored = monitored  # load the JMX exporter agent (`stack up --monitoring`)
        self.port = config.ports.kafka
        self.home = config.state_dir / "kafka"
        self.properties = self.home / "server.properties"
        self.process = ManagedProcess("kafka", self.home / "kafka.pid", self.home / "kafka.log", str(self.properties))

    def settings(self) -> dict[str, object]:
        ports = self.config.ports
        security = self.security()
        return {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@127.0.0.1:{ports.controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{ports.kafka},CONTROLLER://127.0.0.1:{ports.controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{ports.kafka}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": self.data,
            "num.partitions": 1,
            # One broker: internal topics cannot have more replicas than that.
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            # No reason to make a lone consumer wait for more members to join.
            "group.initial.rebalance.delay.ms": 0,
            "log.retention.hours": 168,
            # Every topic is created on purpose, with its cleanup policy (Connect's offsets
            # topic must be compacted; a racing auto-create would make it 'delete').
            "auto.create.topics.enable": "false",
            **(security.broker_settings(ports.kafka, ports.controller) if security else {}),
        }

    def security(self) -> SecureStack | None:
        """The secured stack's material; None on a plaintext stack. A secured stack keeps its own data
        folder: its users are created when the storage is formatted (KIP-900)."""
        return SecureStack(self.config.state_dir) if self.config.secure else None

    @property
    def data(self) -> Path:
        return self.home / ("data-secure" if self.config.secure else "data")

    def start(self) -> None:
        if self.process.running():
            if self.config.secure:
                apply_acls(self.config.kafka("admin"))  # the ACLs this version of dualrun wants
            return
        if self.artifacts is None:
            raise StackError("Kafka's jars are missing; run `dualrun stack up` to fetch them")
        claim_port("kafka", self.port, "--kafka-port")
        claim_port("kafka controller", self.config.ports.controller, "--controller-port")
        if self.monitored:
            claim_port("the broker's JMX exporter", self.config.ports.kafka_jmx, "DUALRUN_KAFKA_JMX_PORT")
        write_properties(self.properties, self.settings())
        base = [java(), *jvm_args("512m", self.home), "-cp", self.artifacts.kafka_classpath]
        if not (self.data / "meta.properties").exists():
            self.format_storage(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        agent = jmx_agent(self.artifacts.jmx_agent, self.config.ports.kafka_jmx) if self.monitored else []
        self.process.start([*base[:1], *agent, *base[1:], "kafka.Kafka", str(self.properties)])
        wait_until(
            lambda: probe_broker(self.config.kafka("admin")),
            timeout=90, what=f"the Kafka broker on {self.config.bootstrap_servers}", process=self.process,
        )  # fmt: skip
        if self.config.secure:
            apply_acls(self.config.kafka("admin"))

    def format_storage(self, cluster_id: str) -> None:
        """Format KRaft storage once, before the first start."""
        assert self.artifacts is not None
        security = self.security()
        base = [java(), *jvm_args("256m", self.home), "-cp", self.artifacts.kafka_classpath]
        fmt = subprocess.run(
            # `--cluster-id=` form: a base64 id may start with '-', which argparse would take for a flag.
            [*base, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(self.properties),
             *(security.scram_arguments() if security else [])],
            capture_output=True, text=True,
        )  # fmt: skip
        if fmt.returncode != 0:
            detail = " ".join(fmt.stderr.split())[-300:]
            if security:
                for secret in security.passwords().values():
                    detail = detail.replace(secret, "********")
            raise StackError(f"formatting Kafka storage failed: {detail} (config {self.properties})")

    def stop(self) -> bool:
        return self.process.stop(timeout=60)

    def status(self) -> ServiceStatus:
        pid = self.process.pid()
        brokers = probe_broker(self.config.kafka("admin")) if pid else None
        version = self.artifacts.jar_version("kafka-clients") if self.artifacts else None
        detail = f"KRaft, {brokers} broker(s) in metadata" if brokers else "not answering"
        if brokers and self.config.secure:
            detail += "; SASL_SSL (SCRAM-SHA-256), mTLS controller, ACLs"
        if pid is None:
            detail = "not running"
        return ServiceStatus(self.name, self.port, pid is not None, brokers is not None, version, pid, detail)
