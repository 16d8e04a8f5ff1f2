"""docker-compose.yml must describe the same topology as `dualrun stack up` (no Docker here)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from migrate.artifacts import stack_dir
from migrate.services.connect import Connect
from migrate.services.kafka import Kafka
from migrate.services.monitoring import data_dir, prometheus_config
from migrate.services.postgres import server_settings
from migrate.stackconfig import StackConfig

ROOT = Path(__file__).parents[2]


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def pinned(name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    props = ET.parse(stack_dir() / "pom.xml").getroot().find("m:properties", ns)
    assert props is not None
    value = props.find(f"m:{name}", ns)
    assert value is not None and value.text
    return value.text


def host_ports(service: dict[str, Any]) -> set[int]:
    return {int(p.split(":")[-1]) for p in service.get("ports", []) if p.startswith("127.0.0.1:")}


def test_same_services_on_the_same_loopback_ports() -> None:
    services = compose()["services"]
    assert set(services) == {"mariadb", "postgres", "kafka", "connect", "prometheus", "grafana"}
    ports = StackConfig().ports
    assert host_ports(services["prometheus"]) == {ports.prometheus}
    assert host_ports(services["mariadb"]) == {ports.mariadb}
    assert host_ports(services["postgres"]) == {ports.postgres}
    assert host_ports(services["kafka"]) == {ports.kafka}
    assert host_ports(services["connect"]) == {ports.connect}
    for service in services.values():
        assert all(p.startswith("127.0.0.1:") for p in service["ports"]), "publish on loopback only"
        assert "healthcheck" in service


def test_versions_match_the_pinned_artifacts() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{pinned('kafka.version')}"
    assert services["connect"]["image"].endswith(f"/debezium/connect:{pinned('debezium.version')}")
    assert re.match(r"mariadb:10\.11", services["mariadb"]["image"])
    assert services["postgres"]["image"] == "postgres:15"  # Debian bookworm's postgresql package


def test_mariadb_has_row_binlog_and_gtids_like_the_local_stack() -> None:
    flags = set(compose()["services"]["mariadb"]["command"])
    for setting in ("binlog-format=ROW", "binlog-row-image=FULL", "gtid-strict-mode=ON", "server-id=1"):
        assert f"--{setting}" in flags
    local = (stack_dir() / "mariadb" / "schema.sql").name
    mounts = " ".join(compose()["services"]["mariadb"]["volumes"])
    assert f"stack/mariadb/{local}" in mounts and "stack/mariadb/users.sql" in mounts


def test_postgres_has_logical_decoding_and_the_local_schema_like_the_local_stack(tmp_path: Path) -> None:
    service = compose()["services"]["postgres"]
    command = service["command"]
    flags = dict(arg.split("=", 1) for arg in command if arg != "-c")
    assert command[::2] == ["-c"] * len(flags)
    local = server_settings(StackConfig(), tmp_path)
    for key in ("wal_level", "max_replication_slots", "max_wal_senders"):
        assert flags[key] == local[key]
    assert flags["timezone"] == local["timezone"].strip("'")
    env = service["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == (StackConfig().db_user, StackConfig().database)
    mounts = " ".join(service["volumes"])
    assert "stack/postgres/schema.sql" in mounts and "stack/postgres/users.sql" in mounts
    assert {"mariadb", "postgres"} <= set(compose()["services"]["connect"]["depends_on"])


def test_kafka_is_kraft_with_the_local_stack_settings() -> None:
    env = compose()["services"]["kafka"]["environment"]
    local = Kafka(StackConfig(), None).settings()
    assert env["KAFKA_PROCESS_ROLES"] == local["process.roles"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == local["auto.create.topics.enable"]
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr", "group.initial.rebalance.delay.ms", "num.partitions"):  # fmt: skip
        assert str(env["KAFKA_" + key.replace(".", "_").upper()]) == str(local[key])


def test_connect_uses_the_same_group_topics_and_converters() -> None:
    env = compose()["services"]["connect"]["environment"]
    local = Connect(StackConfig(), None).settings()
    assert env["GROUP_ID"] == local["group.id"]
    assert env["CONFIG_STORAGE_TOPIC"] == local["config.storage.topic"]
    assert env["OFFSET_STORAGE_TOPIC"] == local["offset.storage.topic"]
    assert env["STATUS_STORAGE_TOPIC"] == local["status.storage.topic"]
    assert env["KEY_CONVERTER"] == local["key.converter"]
    assert env["VALUE_CONVERTER"] == local["value.converter"]
    assert env["CONNECT_VALUE_CONVERTER_SCHEMAS_ENABLE"] == local["value.converter.schemas.enable"]
    assert env["CONNECT_KEY_CONVERTER_SCHEMAS_ENABLE"] == local["key.converter.schemas.enable"]
    assert env["CONNECT_SESSION_TIMEOUT_MS"] == local["session.timeout.ms"]


def test_monitoring_is_an_opt_in_profile_with_the_local_scrape_jobs_and_rules(tmp_path: Path) -> None:
    services = compose()["services"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    assert services["prometheus"]["image"] == "prom/prometheus:v2.42.0"  # Debian bookworm's package
    scraped = yaml.safe_load((ROOT / "stack" / "monitoring" / "prometheus.yml").read_text())
    local = prometheus_config(StackConfig(state_dir=tmp_path), tmp_path / "alerts.yml")
    assert {job["job_name"] for job in scraped["scrape_configs"]} == {
        job["job_name"] for job in local["scrape_configs"] if job["job_name"] != "alertmanager"
    }
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "./migrate/data/monitoring/alerts.yml:/etc/prometheus/alerts.yml" in mounts
    assert scraped["rule_files"] == ["/etc/prometheus/alerts.yml"]
    # The broker and Connect load the agent only when asked: the default `docker compose up` is unchanged.
    assert services["kafka"]["environment"]["KAFKA_OPTS"] == services["connect"]["environment"]["KAFKA_OPTS"]
    assert services["kafka"]["environment"]["KAFKA_OPTS"] == "${DUALRUN_JMX_AGENT:-}"


def test_the_grafana_dashboard_reads_only_metrics_dualrun_or_its_jmx_rules_produce() -> None:
    import json

    dashboard = json.loads((data_dir() / "grafana" / "dualrun.json").read_text())
    mounts = " ".join(compose()["services"]["grafana"]["volumes"])
    assert "./migrate/data/monitoring/grafana:/var/lib/grafana/dashboards" in mounts
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    ours = "\n".join((ROOT / "migrate" / name).read_text() for name in ("metrics.py", "exporter.py"))
    jmx_rules = (data_dir() / "jmx-exporter.yml").read_text().lower()
    for expr in exprs:
        for name in re.findall(r"\bdualrun_[a-z_]+", expr):
            assert f'"{name.removesuffix("_total")}"' in ours, f"{name}: no dualrun code exports it"
        for name in re.findall(r"\bkafka_[a-z_]+", expr):
            # JMX rule names end in a captured attribute (e.g. kafka_server_replicamanager_$1).
            assert name.removesuffix("_total").rsplit("_", 1)[1] in jmx_rules, f"{name}: no JMX rule exports it"


def test_connect_runs_the_sink_like_the_local_stack() -> None:
    """`--with sink` loads debezium-connector-jdbc at the pom's Debezium version (stack/pom.xml's `sink`
    profile, what `dualrun stack fetch` installs); the compose image is that same Debezium release,
    which ships the JDBC sink, and its worker lets a sink override its consumer's isolation level."""
    services = compose()["services"]
    connect = services["connect"]
    pom = (stack_dir() / "pom.xml").read_text()
    sink_profile = pom[pom.index("<id>sink</id>") : pom.index("</profile>", pom.index("<id>sink</id>"))]
    assert "<artifactId>debezium-connector-jdbc</artifactId><version>${debezium.version}</version>" in sink_profile
    assert connect["image"] == f"quay.io/debezium/connect:{pinned('debezium.version')}"
    policy = Connect(StackConfig(), None).settings()["connector.client.config.override.policy"]
    assert connect["environment"]["CONNECT_CONNECTOR_CLIENT_CONFIG_OVERRIDE_POLICY"] == policy
    assert "JdbcSinkConnector" in " ".join(connect["healthcheck"]["test"])  # healthy only with the sink plugin
    # The sink writes into the postgres service, which Connect waits for.
    assert connect["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_the_jmx_agent_the_compose_file_names_is_the_pinned_one() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    agents = set(re.findall(r"jmx_prometheus_javaagent-([0-9.]+)\.jar", text))
    assert agents == {pinned("jmx.exporter.version")}
    assert "/opt/dualrun-monitoring/jmx-exporter.yml" in text
    mounts = " ".join(" ".join(s.get("volumes", [])) for s in compose()["services"].values())
    assert "/opt/dualrun-monitoring" in mounts, "the JMX rules file the agent reads must be mounted"


def test_connect_resolves_file_references_like_the_local_stack() -> None:
    env = compose()["services"]["connect"]["environment"]
    local = Connect(StackConfig(), None).settings()
    assert env["CONNECT_CONFIG_PROVIDERS"] == local["config.providers"] == "file"
    assert env["CONNECT_CONFIG_PROVIDERS_FILE_CLASS"] == local["config.providers.file.class"]


# The local-only defaults the README documents (its "local-only defaults" paragraph and the
# monitoring note): each may appear only as the default of an overridable variable.
DOCUMENTED_DEFAULTS = {"DUALRUN_DB_PASSWORD": "dualrun", "DUALRUN_ROOT_PASSWORD": "dualrun-root"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|JAAS|_KEY$", re.IGNORECASE)


def _settings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (path, scalar) of the document, lists and mappings walked."""
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _settings(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [item for i, value in enumerate(node) for item in _settings(value, f"{path}[{i}]")]
    return [(path, str(node))]


def test_no_secret_literal_but_the_documented_local_defaults() -> None:
    services = compose()["services"]
    assert {"kafka", "connect", "mariadb", "postgres", "prometheus", "grafana"} <= set(services)
    secrets = [(path, value) for path, value in _settings(services) if SECRET_NAME.search(path.rsplit(".", 1)[-1])]
    assert secrets, "the databases need passwords: the walk found none, so it checks nothing"
    for path, value in secrets:
        found = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", value)
        assert found, f"{path}: a literal secret; use ${{VARIABLE:-documented default}}"
        variable, default = found.groups()
        assert DOCUMENTED_DEFAULTS.get(variable) == default, f"{path}: {variable} default {default!r} is not documented"
    readme = (ROOT / "README.md").read_text()
    for variable, default in DOCUMENTED_DEFAULTS.items():
        assert variable in readme and f"`{default}`" in readme, f"README does not document {variable}={default}"
    # Nothing else in the file (commands, healthchecks, comments) spells a password out.
    literal = re.compile(r"(?i)password[\"']?\s*(=|:(?!-))\s*(?!\$\{)\S")  # `:-` opens a variable's default
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    assert not [line for line in lines if literal.search(line)], "a password given literally"
