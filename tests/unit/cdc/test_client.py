"""Kafka client settings: credentials reach the client's config and nothing printable."""

from __future__ import annotations

import pytest

from cdc.client import MASK, KafkaSettings, is_secret, settings
from cdc.errors import CdcError

SECURE = KafkaSettings(
    "broker:9093",
    {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "dualrun",
     "ssl.ca.location": "/etc/kafka/ca.pem"},
    {"sasl.password": "s3cr3t-Pw"},
)  # fmt: skip


def test_the_client_config_carries_the_credentials_and_the_clients_own_properties() -> None:
    config = SECURE.config(**{"group.id": "g"})
    assert config["sasl.password"] == "s3cr3t-Pw"
    assert config["bootstrap.servers"] == "broker:9093"
    assert config["group.id"] == "g"
    assert config["security.protocol"] == "SASL_SSL"


def test_nothing_printable_holds_a_secret() -> None:
    for text in (repr(SECURE), str(SECURE), str(SECURE.to_dict()), str(SECURE.masked_config(**{"group.id": "g"}))):
        assert "s3cr3t-Pw" not in text
    assert SECURE.to_dict()["properties"]["sasl.password"] == MASK
    assert SECURE.scrub("SASL authentication error for s3cr3t-Pw") == f"SASL authentication error for {MASK}"


def test_a_secret_is_refused_as_a_plain_property() -> None:
    with pytest.raises(CdcError, match="sasl.password is a secret"):
        KafkaSettings("b:1", {"sasl.password": "x"})


@pytest.mark.parametrize(
    ("name", "secret"),
    [("sasl.password", True), ("ssl.key.password", True), ("ssl.key.pem", True),
     ("sasl.oauthbearer.client.secret", True), ("sasl.username", False), ("ssl.ca.location", False),
     ("sasl.jaas.config", True), ("producer.override.sasl.jaas.config", True), ("database.password", True),
     ("sasl.oauthbearer.token", True), ("gcp.credentials", True), ("sasl.oauthbearer.token.endpoint.url", False)],
)  # fmt: skip
def test_secret_property_names(name: str, secret: bool) -> None:
    assert is_secret(name) is secret


def test_a_bare_bootstrap_string_is_a_plaintext_cluster() -> None:
    plain = settings("127.0.0.1:9092")
    assert plain.config() == {"bootstrap.servers": "127.0.0.1:9092"}
    assert not plain.secured and SECURE.secured


def test_java_properties_for_schema_history_and_connect() -> None:
    java = KafkaSettings(
        "b:1",
        {**SECURE.properties, "ssl.endpoint.identification.algorithm": "none"},
        SECURE.secrets,
    ).java_properties()
    assert java["security.protocol"] == "SASL_SSL"
    assert java["sasl.mechanism"] == "SCRAM-SHA-256"
    assert java["ssl.truststore.type"] == "PEM"
    assert java["ssl.truststore.location"] == "/etc/kafka/ca.pem"
    assert java["ssl.endpoint.identification.algorithm"] == ""
    assert java["sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="dualrun" password="s3cr3t-Pw";'
    )


def test_a_property_without_a_java_counterpart_is_refused() -> None:
    with pytest.raises(CdcError, match="ssl.certificate.location has no Java client counterpart"):
        KafkaSettings("b:1", {"ssl.certificate.location": "/c.pem"}).java_properties()
