"""kafka.properties: librdkafka settings for every client, secrets from the environment only."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from migrate.spec import PipelineSpec, SpecError
from tests.unit.migrate.spec.test_load import LEDGER


def spec_with(kafka: dict[str, Any], **cdc: Any) -> PipelineSpec:
    data = copy.deepcopy(LEDGER)
    data["kafka"] = {"bootstrap_servers": "kafka:9093", **kafka}
    data["cdc"].update(cdc)
    return PipelineSpec.model_validate(data)


SECURE = {
    "properties": {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "dualrun",
        "sasl.password_env": "LEDGER_KAFKA_PASSWORD", "ssl.ca.location": "/etc/kafka/ca.pem",
        "enable.ssl.certificate.verification": True, "socket.keepalive.enable": True,
    }
}  # fmt: skip


def test_secrets_come_from_the_variable_the_property_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_KAFKA_PASSWORD", "pw-from-env")
    settings = spec_with(SECURE).kafka.client()
    assert settings.secrets == {"sasl.password": "pw-from-env"}
    assert settings.properties["sasl.username"] == "dualrun"
    assert settings.properties["enable.ssl.certificate.verification"] == "true"
    assert "sasl.password_env" not in settings.config()


def test_an_unset_variable_names_the_property_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_KAFKA_PASSWORD", raising=False)
    with pytest.raises(SpecError, match=r"kafka.properties.sasl.password_env: environment variable "
                                        r"LEDGER_KAFKA_PASSWORD is not set"):  # fmt: skip
        spec_with(SECURE).kafka.client()


@pytest.mark.parametrize("key", ["sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret"])
def test_a_literal_secret_in_the_spec_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match=f"{key}: secrets never live in the spec.*`{key}_env: NAME`"):
        spec_with({"properties": {key: "hunter2"}})


def test_the_spec_dump_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_KAFKA_PASSWORD", "pw-from-env")
    spec = spec_with(SECURE)
    spec.kafka.client()
    assert "pw-from-env" not in spec.model_dump_json()
    assert "pw-from-env" not in repr(spec)


def test_connect_basic_auth_takes_user_and_password_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_CONNECT_PASSWORD", "connect-pw")
    spec = spec_with({}, connect_url="https://connect:8443", connect_user="ops",
                     connect_password_env="LEDGER_CONNECT_PASSWORD", connect_ca="/etc/connect/ca.pem")  # fmt: skip
    client = spec.cdc.connect_client()
    assert client.session.auth == ("ops", "connect-pw")
    assert client.session.verify == "/etc/connect/ca.pem"
    assert client._scrub("refused connect-pw") == "refused ********"
    with pytest.raises(ValueError, match="give both connect_user and connect_password_env"):
        spec_with({}, connect_user="ops")
