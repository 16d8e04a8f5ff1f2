"""kafka_security: each opening of the posture is named as evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.checklist.security import broker_findings, clear_secrets, client_findings, first_broker
from migrate.errors import CheckUnavailable

SECURED = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "ssl.ca.location": "/ca.pem"}


@pytest.mark.parametrize(
    ("properties", "url", "user", "finding"),
    [
        ({}, "http://127.0.0.1:8083", None, "plaintext listener (security.protocol PLAINTEXT"),
        ({"security.protocol": "SASL_PLAINTEXT"}, "http://127.0.0.1:8083", None, "SASL without TLS"),
        ({**SECURED, "ssl.endpoint.identification.algorithm": "none"}, "http://localhost:8083", None,
         "TLS hostname verification off"),
        ({**SECURED, "enable.ssl.certificate.verification": "false"}, "http://127.0.0.1:8083", None,
         "TLS certificate verification off"),
        (SECURED, "http://connect:8083", None, "Connect's REST API at http://connect:8083 without TLS"),
        (SECURED, "https://connect:8443", None, "Connect's REST API at https://connect:8443 without login"),
    ],
)  # fmt: skip
def test_client_findings(properties: dict[str, str], url: str, user: str | None, finding: str) -> None:
    found = client_findings(properties, url, user)
    assert len(found) == 1 and finding in found[0], found


def test_a_secured_client_has_no_finding() -> None:
    assert client_findings(SECURED, "https://connect:8443", "ops") == []


def test_broker_findings() -> None:
    secured = {
        "listeners": "SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        "controller.listener.names": "CONTROLLER",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
    }
    assert broker_findings(secured) == []
    assert broker_findings({**secured, "allow.everyone.if.no.acl.found": "true"}) == [
        "allow.everyone.if.no.acl.found true: a resource without ACLs is open to all"
    ]
    mixed = {
        **secured,
        "listeners": f"{secured['listeners']},INTERNAL://127.0.0.1:9094",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL,INTERNAL:PLAINTEXT",
    }
    assert broker_findings(mixed) == ["broker listener INTERNAL is plaintext"]


def test_a_cluster_listing_no_brokers_leaves_the_check_unavailable_not_a_crash() -> None:
    assert first_broker({3: "b3", 1: "b1"}, "k:9092") == "1"
    with pytest.raises(CheckUnavailable, match="k:9092 listed no brokers"):
        first_broker({}, "k:9092")


# Connector configs as Connect's REST API returns them (our client masks clear secrets as ********).
SOURCE = {"connector.class": "io.debezium.connector.mariadb.MariaDbConnector", "database.user": "debezium",
          "database.password": "********", "topic.prefix": "dbserver1",
          "schema.history.internal.producer.sasl.jaas.config": "${file:/etc/connect/dbz.properties:sasl.jaas.config}",
          "schema.history.internal.consumer.sasl.jaas.config": "********"}  # fmt: skip
SINK = {"connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector", "connection.username": "app",
        "connection.password": "${file:/etc/connect/sink.properties:connection.password}",
        "consumer.override.isolation.level": "read_committed"}  # fmt: skip


@pytest.mark.parametrize(
    ("config", "flagged"),
    [
        (SOURCE, ["database.password", "schema.history.internal.consumer.sasl.jaas.config"]),
        (SINK, []),
        ({**SINK, "connection.password": "hunter2"}, ["connection.password"]),
        (
            {"aws.secret": "x", "api.Secret": "y", "sasl.jaas.config": "z", "ssl.truststore.password": "w"},
            ["api.Secret", "aws.secret", "sasl.jaas.config", "ssl.truststore.password"],
        ),
        # Not a reference: no provider, or text around it; empty: nothing held.
        (
            {"a.password": "${nocolon}", "b.password": "pre${file:/x:y}", "c.password": "", "d.password": None},
            ["a.password", "b.password"],
        ),
        # Names that merely contain the words are not credentials by this rule.
        ({"password.encoder.note": "x", "secret.manager.region": "eu", "database.user": "u"}, []),
    ],
    ids=["source", "sink-reference", "sink-clear", "endings", "not-references", "not-endings"],
)
def test_clear_secrets_names_the_properties(config: dict[str, object], flagged: list[str]) -> None:
    assert clear_secrets(config) == flagged


@pytest.mark.parametrize(("status", "reason"), [(401, "HTTP 401"), (403, "HTTP 403"), (500, "HTTP 500")])
def test_connect_refusing_leaves_connector_secrets_unevaluated_not_the_checklist_aborted(
    tmp_path: Path, status: int, reason: str
) -> None:
    """A real HTTP server answering every request with `status`: the check is not evaluated (with
    Connect's answer, its password scrubbed); the checks after it still run."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from migrate.checklist.registry import evaluate, select
    from tests.unit.report.builders import local_spec

    spec = local_spec(tmp_path)
    secret = spec.source.password()

    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps({"error_code": status, "message": f"config has database.password={secret}"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        checked = local_spec(tmp_path, cdc={"connect_url": url})
        result = evaluate(checked, select(("connector_secrets", "sink_isolation")), timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert [c.name for c in result.checks] == ["connector_secrets", "sink_isolation"]
    assert result.unevaluated[0] == "connector_secrets"
    evidence = result.checks[0].evidence
    assert evidence.startswith("could not evaluate: ") and reason in evidence and url in evidence
    assert secret and secret not in evidence
