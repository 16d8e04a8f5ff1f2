"""The secured stack's material: private files, broker settings, users and least-privilege ACLs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from migrate.services.security import PASSWORD_KEYS, REST_EXTENSION, SecureStack, acls
from migrate.stack import switch_security
from migrate.stackconfig import StackConfig


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> SecureStack:
    secure = SecureStack(tmp_path_factory.mktemp("state"))
    secure.enable("127.0.0.1:9092", "https://127.0.0.1:8083")
    secure.connect_files("127.0.0.1:9092", "db-secret")
    return secure


def test_secrets_are_private_and_the_spec_snippet_holds_none(material: SecureStack) -> None:
    assert stat.S_IMODE(material.home.stat().st_mode) == 0o700
    for name in ("users.json", "client.properties", "debezium.properties", "kafka.yaml", "ca.key", "broker.p12",
                 "connect-rest.password", "connect-jaas.conf"):  # fmt: skip
        assert stat.S_IMODE((material.home / name).stat().st_mode) == 0o600, name
    passwords = material.passwords()
    assert set(passwords) == set(PASSWORD_KEYS) and len(set(passwords.values())) == len(passwords)
    snippet = (material.home / "kafka.yaml").read_text()
    assert not any(secret in snippet for secret in passwords.values())
    assert "sasl.password_env: DUALRUN_KAFKA_PASSWORD" in snippet
    assert f"sasl.password={passwords['dualrun']}" in (material.home / "client.properties").read_text()
    assert not (material.home / "broker.key").exists()  # only inside the keystore


def test_enabling_again_keeps_the_users_and_the_ca(material: SecureStack) -> None:
    before, ca = material.passwords(), material.ca.read_bytes()
    material.enable("127.0.0.1:9092", "https://127.0.0.1:8083")
    assert material.passwords() == before and material.ca.read_bytes() == ca


def test_a_users_file_from_before_the_rest_login_keeps_its_passwords(tmp_path: Path) -> None:
    old = SecureStack(tmp_path)
    old.home.mkdir()
    kept = {key: f"old-{key}" for key in PASSWORD_KEYS if key != "connect-rest"}
    old.users_file.write_text(json.dumps(kept))
    old.ca.write_text("x")  # no new certificates: only the users file matters here
    old.keystore.write_text("x")
    old.truststore.write_text("x")
    old.enable("127.0.0.1:9092", "https://127.0.0.1:8083")
    passwords = old.passwords()
    assert {k: passwords[k] for k in kept} == kept and len(passwords["connect-rest"]) >= 24


def test_connect_rest_api_on_https_with_basic_auth_and_debeziums_secrets_in_a_file(material: SecureStack) -> None:
    settings = material.connect_rest_settings(8083)
    assert settings["listeners"] == "https://127.0.0.1:8083" and settings["rest.extension.classes"] == REST_EXTENSION
    assert settings["listeners.https.ssl.keystore.location"] == material.keystore
    user, password = material.connect_auth()
    assert (material.home / "connect-rest.password").read_text() == f"{user}: {password}\n"
    jaas = (material.home / "connect-jaas.conf").read_text()
    assert jaas.startswith("KafkaConnect {") and "PropertyFileLoginModule required" in jaas and password not in jaas
    assert material.connect_jvm_args() == [f"-Djava.security.auth.login.config={material.home / 'connect-jaas.conf'}"]
    secrets = (material.home / "debezium.properties").read_text().splitlines()
    assert secrets[0].startswith("sasl.jaas.config=") and secrets[1] == "database.password=db-secret"
    snippet = (material.home / "kafka.yaml").read_text()
    assert "connect_url: https://127.0.0.1:8083" in snippet
    assert "connect_password_env: DUALRUN_CONNECT_PASSWORD" in snippet
    assert password not in snippet


def test_broker_settings_sasl_ssl_mtls_controller_and_authorizer(material: SecureStack) -> None:
    settings = material.broker_settings(9092, 9093)
    assert settings["listeners"] == "SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert settings["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:SSL"
    assert settings["listener.name.controller.ssl.client.auth"] == "required"
    assert settings["allow.everyone.if.no.acl.found"] == "false"
    assert str(settings["authorizer.class.name"]).endswith("StandardAuthorizer")
    assert material.scram_arguments()[0].startswith("--add-scram=SCRAM-SHA-256=[name=admin,password=")


def test_only_the_admin_is_unrestricted_and_dualrun_only_reads() -> None:
    bindings = acls()
    assert "User:admin" not in {b.principal for b in bindings}
    dualrun = {b.operation.name for b in bindings if b.principal == "User:dualrun"}
    assert dualrun == {"READ", "DESCRIBE", "DESCRIBE_CONFIGS"}
    alls = {(b.principal, b.name) for b in bindings if b.operation.name == "ALL"}
    assert all(name != "*" for _, name in alls)


def test_switching_needs_a_stopped_stack_and_is_remembered(tmp_path: Path) -> None:
    config = StackConfig.from_env(tmp_path / "state")
    assert not config.secure and config.kafka().config() == {"bootstrap.servers": config.bootstrap_servers}
    secured = switch_security(config, True)
    assert secured.secure and StackConfig.from_env(tmp_path / "state").secure
    assert secured.kafka("stream").properties["sasl.username"] == "stream"
    assert not switch_security(secured, False).secure and not StackConfig.from_env(tmp_path / "state").secure


def test_the_secured_stacks_connect_url_is_https_with_its_login(tmp_path: Path) -> None:
    config = StackConfig.from_env(tmp_path / "state")
    assert config.connect_url.startswith("http://") and config.connect_http() == {}
    secured = switch_security(config, True)
    assert secured.connect_url == f"https://127.0.0.1:{secured.ports.connect}"
    http = secured.connect_http()
    assert http["verify"] == str(secured.state_dir / "secure" / "ca.pem") and http["auth"][0] == "dualrun"
    client = secured.connect_client()
    assert client.session.auth == http["auth"] and client.session.verify == http["verify"]
    assert secured.connect_client("https://elsewhere:8083").session.auth is None  # the stack's login stays home


def test_connect_may_read_the_output_topics_for_sinks_and_commit_in_connect_groups_only() -> None:
    """A JDBC sink connector consumes an output topic in group `connect-<connector>` as `connect`."""
    granted = {(b.restype.name, b.name, b.resource_pattern_type.name, b.operation.name)
               for b in acls() if b.principal == "User:connect"}  # fmt: skip
    for name in ("orders-enriched", "order-alerts", "daily-revenue"):
        assert {("TOPIC", name, "PREFIXED", o) for o in ("READ", "DESCRIBE")} <= granted
        assert ("TOPIC", name, "PREFIXED", "WRITE") not in granted  # only the stream job writes outputs
    assert {("GROUP", "connect-", "PREFIXED", o) for o in ("READ", "DESCRIBE")} <= granted
    assert not any(kind == "GROUP" and name == "*" for kind, name, _, _ in granted)
