"""The Debezium connector a spec describes: `cdc.ConnectorSettings` from the spec, registered.

The spec's `cdc.position_header` (default `dbz.source`) adds the position-header SMT (see
`cdc.connector.position_transforms`); null registers the connector without it.
"""

from __future__ import annotations

from cdc.connector import ConnectorSettings, file_reference
from migrate.errors import DualrunError, SpecError
from migrate.spec import PipelineSpec

DEFAULT_PORTS = {"mariadb": 3306, "mysql": 3306, "postgres": 5432}


def connector_settings(spec: PipelineSpec) -> ConnectorSettings:
    """The connector for the spec's source: host, port and database from `source.url`, the rest
    from `cdc` (user, password from `cdc.password_env`, tables, topic prefix, server id, header)."""
    from sqlalchemy.engine import make_url

    url = make_url(spec.source.url)
    optional: dict[str, object] = {"server_id": spec.cdc.server_id} if spec.cdc.server_id is not None else {}
    databases: tuple[str, ...] = (url.database or "",)
    if spec.source.kind == "postgres":
        # There `database.table` names schema.table; the database is the URL's. pgoutput, the
        # publication and a slot named after the connector: see cdc.connector.ConnectorSettings.
        databases = tuple(dict.fromkeys(t.split(".", 1)[0] for t in spec.cdc.tables))
        optional.update(pg_database=url.database or "", publication=spec.cdc.publication)
    if spec.cdc.password_file is not None:
        optional["password_ref"] = file_reference(spec.cdc.password_file, "database.password")
    return ConnectorSettings(
        name=spec.cdc.connector, kind=spec.source.kind, hostname=url.host or "127.0.0.1",
        port=url.port or DEFAULT_PORTS.get(spec.source.kind, 3306), user=spec.cdc.user,
        password=spec.cdc.password(), databases=databases, tables=spec.cdc.tables,
        bootstrap_servers=spec.kafka.bootstrap_servers, topic_prefix=spec.cdc.topic_prefix,
        position_header=spec.cdc.position_header, kafka_properties=schema_history_properties(spec),
        **optional,  # type: ignore[arg-type]
    )  # fmt: skip


def schema_history_properties(spec: PipelineSpec) -> dict[str, str]:
    """Debezium's schema-history client settings in Java form; the JAAS line (the password) by
    reference to `cdc.kafka_secrets_file`.

    Raises SpecError when Debezium logs in to Kafka with SASL and no `cdc.kafka_secrets_file` is
    set: the password would be stored in Connect's config topic and shown by its REST API."""
    java = spec.debezium_kafka().java_properties()
    if "sasl.jaas.config" in java:
        if spec.cdc.kafka_secrets_file is None:
            raise SpecError(
                "cdc.kafka_secrets_file: not set, so Debezium's SASL password would be stored in clear in Connect's "
                "config topic; write `sasl.jaas.config=...` to a file on the Connect worker (FileConfigProvider "
                "enabled) and name it there"
            )
        java["sasl.jaas.config"] = file_reference(spec.cdc.kafka_secrets_file, "sasl.jaas.config")
    return java


def ensure_connector(spec: PipelineSpec, timeout: float = 90) -> None:
    """Register (idempotently) and wait until the connector and its task run."""
    client = spec.cdc.connect_client(secrets=(spec.cdc.password(),))
    settings = connector_settings(spec)
    client.put(settings.name, settings.to_config())
    status = client.wait_settled(settings.name, timeout)
    if status.failed:
        raise DualrunError(f"connector {settings.name} failed: {status.reason}")
    if not status.running:
        raise DualrunError(f"connector {settings.name} did not start within {timeout:.0f}s ({status.state})")
