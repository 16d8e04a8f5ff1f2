"""The security posture of the Kafka dualrun reads and of Connect's REST API, as evidence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource

from cdc.client import holds_secret
from cdc.errors import ConnectError, ConnectorNotFound
from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.errors import CheckUnavailable

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def client_findings(properties: dict[str, str], connect_url: str, connect_user: str | None) -> list[str]:
    """What the spec's client settings leave open, one phrase each (empty: nothing).

    >>> client_findings({"security.protocol": "SASL_SSL", "ssl.endpoint.identification.algorithm": "none"},
    ...                 "https://connect:8443", "ops")
    ['TLS hostname verification off (ssl.endpoint.identification.algorithm none)']
    """
    found = []
    protocol = properties.get("security.protocol", "PLAINTEXT").upper()
    if protocol == "PLAINTEXT":
        found.append("dualrun's clients use a plaintext listener (security.protocol PLAINTEXT: no TLS, no login)")
    elif protocol == "SASL_PLAINTEXT":
        found.append("SASL without TLS (security.protocol SASL_PLAINTEXT): traffic is not encrypted")
    if protocol in ("SSL", "SASL_SSL"):
        if properties.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
            found.append("TLS hostname verification off (ssl.endpoint.identification.algorithm none)")
        if properties.get("enable.ssl.certificate.verification", "true").lower() == "false":
            found.append("TLS certificate verification off (enable.ssl.certificate.verification false)")
    parts = urlsplit(connect_url)
    if parts.hostname not in LOCAL_HOSTS and (parts.scheme != "https" or connect_user is None):
        found.append(f"Connect's REST API at {connect_url} without {'TLS' if parts.scheme != 'https' else 'login'}")
    return found


def clear_secrets(config: Mapping[str, Any]) -> list[str]:
    """The properties of a connector config that hold a secret in clear, by name only (never a value):
    Connect keeps the config in its config topic and shows it on GET /connectors/<name>/config.
    The rule is `cdc.client.holds_secret` (the one `redact` masks by): a secret name, whatever its
    prefix, or a URL carrying a password; a config provider reference (`${file:PATH:KEY}`) holds none.

    >>> clear_secrets({"database.password": "pw", "connection.password": "${file:/s:connection.password}",
    ...                "producer.override.sasl.jaas.config": "x", "client.secret": "", "topic.prefix": "p"})
    ['database.password', 'producer.override.sasl.jaas.config']
    """
    return sorted(key for key, value in config.items() if holds_secret(key, value))


def broker_findings(configs: dict[str, Any]) -> list[str]:
    """What the broker's own configuration leaves open (from DescribeConfigs of one broker).

    >>> broker_findings({"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    ...                  "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093", "authorizer.class.name": ""})
    ['broker listener PLAINTEXT is plaintext', 'no authorizer on the broker: no ACLs, every client may do anything']
    """
    found = []
    mapping = str(configs.get("listener.security.protocol.map") or "").split(",")
    protocols = dict(entry.split(":", 1) for entry in mapping if ":" in entry)
    listeners = [item.split("://", 1)[0] for item in str(configs.get("listeners") or "").split(",") if "://" in item]
    controller = set(str(configs.get("controller.listener.names") or "CONTROLLER").split(","))
    for name in listeners:
        if name not in controller and protocols.get(name, name).upper() in ("PLAINTEXT", "SASL_PLAINTEXT"):
            found.append(f"broker listener {name} is {protocols.get(name, name).lower().replace('_', ' ')}")
    if not str(configs.get("authorizer.class.name") or "").strip():
        found.append("no authorizer on the broker: no ACLs, every client may do anything")
    elif str(configs.get("allow.everyone.if.no.acl.found") or "false").lower() == "true":
        found.append("allow.everyone.if.no.acl.found true: a resource without ACLs is open to all")
    return found


def first_broker(brokers: Mapping[int, Any], bootstrap_servers: str) -> str:
    """The lowest broker id of a cluster's metadata, as text; CheckUnavailable when it lists none."""
    if not brokers:
        raise CheckUnavailable(f"Kafka at {bootstrap_servers} listed no brokers in its metadata; is the cluster up?")
    return str(min(brokers))


def kafka_security(ctx: Context) -> CheckResult:
    """Kafka and Connect as the pipeline reaches them are secured: TLS with verification, SASL, an
    authorizer with ACLs, no plaintext listener in use; Connect's REST API behind TLS and a login
    unless it is local. Evidence only (warn), never a NO-GO on its own: a lab stack is plaintext.

    Example: `SASL_SSL (SCRAM-SHA-256) as user dualrun, hostname verified; broker: authorizer
    StandardAuthorizer, no plaintext listener` passes; `dualrun's clients use a plaintext listener
    ...; no authorizer on the broker ...` warns.
    """
    r = ctx.begin("kafka_security", "TLS + SASL, hostname verified, an authorizer with ACLs, no plaintext listener")
    properties = dict(ctx.spec.kafka.properties)
    found = client_findings(properties, ctx.spec.cdc.connect_url, ctx.spec.cdc.connect_user)
    with ctx.kafka() as admin:
        brokers = admin.admin.list_topics(timeout=ctx.timeout).brokers
        resource = ConfigResource(ConfigResource.Type.BROKER, first_broker(brokers, ctx.spec.kafka.bootstrap_servers))
        try:
            entries = admin.admin.describe_configs([resource])[resource].result(timeout=ctx.timeout)
            configs = {key: entry.value for key, entry in entries.items()}
        except KafkaException as exc:
            configs = None
            found.append(f"broker configuration not readable ({exc.args[0].str()})")
    if configs is not None:
        found += broker_findings(configs)
    if found:
        return r.warned("; ".join(found))
    protocol = properties.get("security.protocol", "PLAINTEXT").upper()
    mechanism = properties.get("sasl.mechanism") or properties.get("sasl.mechanisms") or "-"
    user = properties.get("sasl.username", "?")
    authorizer = str((configs or {}).get("authorizer.class.name") or "?").rsplit(".", 1)[-1]
    return r.passed(
        f"{protocol} ({mechanism}) as user {user}, hostname verified; broker: authorizer {authorizer}, "
        "no plaintext listener"
    )


def connector_secrets(ctx: Context) -> CheckResult:
    """No connector the pipeline uses (the source's `cdc.connector`, each output's sink) holds a
    password, secret or JAAS line in clear in its config; each is a `${file:...}` reference (the
    worker's FileConfigProvider) instead. Names the connector and the property, never the value.
    Evidence (warn), as the rest of the security posture, never a NO-GO on its own.

    Example: `2 connector config(s) hold no secret in clear (shop, shop-orders-oe-sink)` passes;
    `connector shop-orders-oe-sink: connection.password in clear ...; fix: ...` warns.
    """
    from migrate.sink import connector_name

    r = ctx.begin("connector_secrets", "no password, secret or JAAS line in clear in a connector config")
    names = [ctx.spec.cdc.connector, *(connector_name(ctx.spec, o) for o, out in ctx.spec.outputs.items() if out.sink)]
    found, seen = [], []
    for name in dict.fromkeys(names):
        try:
            config = ctx.connect.config(name)
        except ConnectorNotFound:
            continue  # not registered (yet): connector_running and sink_isolation say so
        except ConnectError as exc:  # unreachable, 401/403, 5xx: this check only, not the checklist
            raise CheckUnavailable(str(exc)) from exc  # the client scrubs the passwords it knows
        seen.append(name)
        found += [f"connector {name}: {key} in clear" for key in clear_secrets(config)]
    if not seen:
        return r.skip(f"no connector of the pipeline registered on {ctx.spec.cdc.connect_url}")
    if found:
        return r.warned(
            "; ".join(found) + " (Connect's config topic and GET /connectors/<name>/config show it); fix: put it in "
            "a properties file on the worker (config.providers=file) and give the file: cdc.password_file, "
            "cdc.kafka_secrets_file, outputs.<name>.sink.password_file"
        )
    return r.passed(f"{len(seen)} connector config(s) hold no secret in clear ({', '.join(seen)})")
