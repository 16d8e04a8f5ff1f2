"""A Kafka Connect distributed worker with the Debezium plugins on its plugin path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from migrate.artifacts import Artifacts
from migrate.errors import StackError
from migrate.process import ManagedProcess, wait_until
from migrate.services.base import ServiceStatus, claim_port
from migrate.services.kafka import java, jvm_args
from migrate.services.monitoring import jmx_agent
from migrate.services.properties import write_properties
from migrate.services.security import SecureStack
from migrate.stackconfig import StackConfig

DEBEZIUM_CLASSES = (
    "io.debezium.connector.mariadb.MariaDbConnector",
    "io.debezium.connector.mysql.MySqlConnector",
    "io.debezium.connector.postgresql.PostgresConnector",
    "io.debezium.connector.jdbc.JdbcSinkConnector",  # `stack up --with sink`
)


def probe_plugins(url: str, **http: Any) -> dict[str, str] | None:
    """Debezium connector classes Connect offers, with versions; None until all of them load.
    `http`: `requests` options (`auth`, `verify`) of a secured worker (`StackConfig.connect_http`)."""
    try:
        response = requests.get(f"{url}/connector-plugins", timeout=2, **http)
        response.raise_for_status()
    except requests.RequestException:
        return None
    plugins = {p["class"]: p.get("version", "") for p in response.json()}
    return plugins if all(cls in plugins for cls in DEBEZIUM_CLASSES) else None


def write_secrets(config: StackConfig) -> Path:
    """(Re)write `config.connect_secrets_file`, readable by its owner only (the worker runs as the same user)."""
    path = config.connect_secrets_file
    write_properties(path, {"connection.password": config.db_password, "database.password": config.debezium_password})
    return path


class Connect:
    """Connect stores its configs, offsets and status in Kafka topics named after the stack."""

    name = "connect"

    def __init__(self, config: StackConfig, artifacts: Artifacts | None, *, monitored: bool = False) -> None:
        self.config = config
        self.artifacts = artifacts
        self.monitored = monitored  # load the JMX exporter agent (`stack up --monitoring`)
        self.port = config.ports.connect
        self.home = config.state_dir / "connect"
        self.properties = self.home / "worker.properties"
        self.process = ManagedProcess(
            "connect", self.home / "connect.pid", self.home / "connect.log", str(self.properties)
        )

    def settings(self) -> dict[str, object]:
        return {
            "bootstrap.servers": self.config.bootstrap_servers,
            "group.id": "dualrun-connect",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            # Schemas in every message let consumers decode DECIMAL scale and temporal types.
            "key.converter.schemas.enable": "true",
            "value.converter.schemas.enable": "true",
            "offset.storage.topic": "dualrun-connect-offsets",
            "config.storage.topic": "dualrun-connect-configs",
            "status.storage.topic": "dualrun-connect-status",
            "offset.storage.replication.factor": 1,
            "config.storage.replication.factor": 1,
            "status.storage.replication.factor": 1,
            "offset.flush.interval.ms": 1000,
            "listeners": f"http://127.0.0.1:{self.port}",
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": self.port,
            "plugin.path": self.artifacts.plugin_path if self.artifacts else "",
            "plugin.discovery": "hybrid_warn",
            "topic.creation.enable": "true",
            # Connectors may override their clients' settings (Kafka's default since 3.0, said
            # explicitly): a sink reading an exactly-once topic sets consumer.override.isolation.level.
            "connector.client.config.override.policy": "All",
            # Joins take about half the session timeout; keep restarts quick on one node.
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 3000,
            "scheduled.rebalance.max.delay.ms": 0,
            # Connector configs may say ${file:PATH:KEY}: the secret stays in the file (the stack's is
            # `StackConfig.connect_secrets_file`), never in Connect's config topic nor on its REST API.
            "config.providers": "file",
            "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
            **self.security(),
        }

    def security(self) -> dict[str, object]:
        """A secured stack's client settings for the worker as user `connect`, repeated for the
        producers, consumers and admin clients it makes for connectors (they do not inherit them)."""
        if not self.config.secure:
            return {}
        java = self.config.kafka("connect").java_properties()
        material = SecureStack(self.config.state_dir)
        return {
            **material.connect_rest_settings(self.port),
            **{f"{prefix}{k}": v for prefix in ("", "producer.", "consumer.", "admin.") for k, v in java.items()},
        }

    def start(self) -> None:
        if self.process.running():
            write_secrets(self.config)
            if "config.providers=file" not in self.properties.read_text():
                raise StackError(
                    f"Connect on port {self.port} was started without config.providers=file (an older dualrun), "
                    "so it cannot resolve the ${file:...} passwords; restart it: `dualrun stack down` then `stack up`"
                )
            return
        if self.artifacts is None:
            raise StackError("the Connect and Debezium jars are missing; run `dualrun stack up`")
        claim_port("connect", self.port, "--connect-port")
        agent: list[str] = []
        if self.monitored:
            claim_port("Connect's JMX exporter", self.config.ports.connect_jmx, "DUALRUN_CONNECT_JMX_PORT")
            agent = jmx_agent(self.artifacts.jmx_agent, self.config.ports.connect_jmx)
        write_secrets(self.config)
        login: list[str] = []
        if self.config.secure:
            material = SecureStack(self.config.state_dir)
            material.connect_files(self.config.bootstrap_servers, self.config.debezium_password)
            login = material.connect_jvm_args()
        write_properties(self.properties, self.settings())
        self.process.start(
            [java(), *agent, *login, *jvm_args("1536m", self.home), "-cp", self.artifacts.kafka_classpath,
             "org.apache.kafka.connect.cli.ConnectDistributed", str(self.properties)]
        )  # fmt: skip
        wait_until(
            lambda: probe_plugins(self.config.connect_url, **self.config.connect_http()),
            timeout=120, what=f"Kafka Connect with the Debezium plugins on {self.config.connect_url}",
            process=self.process,
        )  # fmt: skip

    def stop(self) -> bool:
        return self.process.stop(timeout=60)

    def status(self) -> ServiceStatus:
        pid = self.process.pid()
        http = self.config.connect_http() if pid else {}
        plugins = probe_plugins(self.config.connect_url, **http) if pid else None
        version, detail = None, "not running" if pid is None else "REST API not answering"
        if plugins is not None:
            try:
                version = requests.get(self.config.connect_url, timeout=2, **http).json().get("version")
            except requests.RequestException:
                version = None
            debezium = plugins[DEBEZIUM_CLASSES[0]]
            detail = f"Debezium {debezium}: mariadb, mysql, postgres and jdbc sink plugins loaded"
        return ServiceStatus(self.name, self.port, pid is not None, plugins is not None, version, pid, detail)
