"""The Connect worker's written properties: config providers always; on the secured stack a REST
listener on HTTPS whose own client (calls to other workers, forwards to the leader) trusts the CA."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from migrate.services.connect import Connect, write_secrets
from migrate.services.properties import read_properties, write_properties
from migrate.services.security import SecureStack
from migrate.stackconfig import StackConfig

PROVIDER = "org.apache.kafka.common.config.provider.FileConfigProvider"


def written(connect: Connect, tmp_path: Path) -> dict[str, str]:
    """The settings as the worker reads them back from its properties file."""
    write_properties(connect.properties, connect.settings())
    return read_properties(connect.properties)


def test_a_plaintext_worker_resolves_file_references_and_the_stack_writes_the_secrets(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, db_password="pg=p:w#d", debezium_password="dbz pw")
    props = written(Connect(config, None), tmp_path)
    assert props["config.providers"] == "file" and props["config.providers.file.class"] == PROVIDER
    assert props["listeners"].startswith("http://") and not any(k.startswith("listeners.https.") for k in props)
    path = write_secrets(config)
    assert path == config.connect_secrets_file == tmp_path / "connect" / "secrets.properties"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_properties(path) == {"connection.password": "pg=p:w#d", "database.password": "dbz pw"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> StackConfig:
    state = tmp_path_factory.mktemp("state")
    SecureStack(state).enable("127.0.0.1:9092", "https://127.0.0.1:8083")
    return StackConfig(state_dir=state, secure=True)


def test_a_secured_worker_calls_other_workers_over_https_trusting_the_ca(secured: StackConfig, tmp_path: Path) -> None:
    connect = Connect(secured, None)
    props = written(connect, tmp_path)
    material = SecureStack(secured.state_dir)
    password = material.passwords()["keystore"]
    port = secured.ports.connect
    # Other workers reach this one at its advertised https listener, named as in its certificate's SAN.
    assert props["listeners"] == f"https://127.0.0.1:{port}" and props["rest.advertised.listener"] == "https"
    assert (props["rest.advertised.host.name"], props["rest.advertised.port"]) == ("127.0.0.1", str(port))
    # Kafka's SSLUtils reads listeners.https.* all or nothing for the REST server and its client alike:
    # the truststore and hostname verification must be there, not only in the worker's ssl.* (Kafka's).
    assert props["listeners.https.ssl.truststore.location"] == str(material.truststore)
    assert props["listeners.https.ssl.truststore.type"] == "PKCS12"
    assert props["listeners.https.ssl.truststore.password"] == password
    assert props["listeners.https.ssl.endpoint.identification.algorithm"] == "https"
    assert props["listeners.https.ssl.keystore.location"] == str(material.keystore)
    assert props["ssl.truststore.location"] == str(material.ca)  # the worker's Kafka clients: the PEM CA
    assert props["config.providers"] == "file"
    assert oct(material.truststore.stat().st_mode & 0o777) == "0o600"


@pytest.mark.skipif(shutil.which("keytool") is None, reason="keytool comes with Java")
def test_the_truststore_holds_the_local_ca_as_a_trusted_certificate(secured: StackConfig) -> None:
    material = SecureStack(secured.state_dir)
    listed = subprocess.run(
        ["keytool", "-list", "-v", "-keystore", str(material.truststore), "-storetype", "PKCS12",
         "-storepass:env", "STOREPASS"],
        capture_output=True, text=True, env={"STOREPASS": material.passwords()["keystore"], "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "Entry type: trustedCertEntry" in listed.stdout and "CN=dualrun-local-ca" in listed.stdout
