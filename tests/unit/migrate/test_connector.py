"""The connector a spec describes (migrate.connector): Debezium's Kafka password stays out of Connect's config."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.connector import schema_history_properties
from migrate.errors import SpecError
from tests.unit.report.builders import local_spec

SASL = {
    "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "debezium",
    "sasl.password_env": "DUALRUN_TEST_DEBEZIUM_KAFKA_PASSWORD",
}  # fmt: skip


def test_a_sasl_login_without_a_secrets_file_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUALRUN_TEST_DEBEZIUM_KAFKA_PASSWORD", "s3cr3t-Pw")
    spec = local_spec(tmp_path, cdc={"kafka_properties": SASL})
    with pytest.raises(SpecError, match="cdc.kafka_secrets_file: not set") as refused:
        schema_history_properties(spec)
    assert "s3cr3t-Pw" not in str(refused.value) and "\n" not in str(refused.value)
    secured = local_spec(tmp_path, cdc={"kafka_properties": SASL, "kafka_secrets_file": "/etc/connect/dbz.properties"})
    java = schema_history_properties(secured)
    assert java["sasl.jaas.config"] == "${file:/etc/connect/dbz.properties:sasl.jaas.config}"
    assert not any("s3cr3t-Pw" in v for v in java.values())


def test_a_password_file_sends_a_reference_never_the_database_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdc.connector import file_reference
    from migrate.connector import connector_settings
    from migrate.stackconfig import StackConfig

    monkeypatch.setenv(local_spec(tmp_path).cdc.password_env, "s3cr3t-Db")
    # The local stack's worker holds the password in its own secrets file; a user's own Connect
    # without cdc.password_file gets the password itself (the connector_secrets check flags that).
    stack = connector_settings(local_spec(tmp_path)).to_config()
    assert stack["database.password"] == file_reference(
        StackConfig.from_env().connect_secrets_file, "database.password"
    )
    own_connect = {"connect_url": "http://connect.example:18083", "password_file": None}
    plain = connector_settings(local_spec(tmp_path, cdc=own_connect))
    assert plain.to_config()["database.password"] == plain.password
    spec = local_spec(tmp_path, cdc={"password_file": "/etc/connect/dbz.properties"})
    config = connector_settings(spec).to_config()
    assert config["database.password"] == "${file:/etc/connect/dbz.properties:database.password}"
    assert plain.password == "s3cr3t-Db" and not any("s3cr3t-Db" in value for value in config.values())
