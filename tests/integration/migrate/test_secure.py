"""`dualrun stack up --secure` on the real services: SASL_SSL (SCRAM-SHA-256), a mutual-TLS controller,
ACLs, and Connect's REST API on HTTPS with basic auth. The demo runs clean on it; Kafka and Connect
clients without credentials, with a wrong password or without the CA are refused in one line each; no
secret lands in a file under the state dir but those meant to hold it, nor in Connect's config topic.

The secured stack has its own state dir and ports (the session's ports + DUALRUN_SECURE_PORT_OFFSET,
default 10) so it runs beside the plaintext stack of the other integration tests.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest
import requests
import yaml

from migrate.services.properties import read_properties
from migrate.spec import example_spec_path
from migrate.stackconfig import StackConfig

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[3]
OFFSET = int(os.environ.get("DUALRUN_SECURE_PORT_OFFSET") or 10)
PORTS = {"MARIADB": 3306, "KAFKA": 9092, "CONTROLLER": 9093, "CONNECT": 8083, "POSTGRES": 5432}
# The files that hold a Kafka secret on purpose (all mode 0600).
SECRET_HOLDERS = (
    "secure/users.json", "secure/client.properties", "secure/debezium.properties", "secure/broker.p12",
    "kafka/server.properties", "connect/worker.properties", "secure/connect-rest.password",
)  # fmt: skip
# The Kafka Streams job's settings, written when it starts (0600 too: test_the_kafka_streams_demo_...).
KSTREAMS_SETTINGS = "kstreams/order-enricher.client.properties"


def _env(home: Path) -> dict[str, str]:
    # A CA bundle in the environment (as on many machines) must not displace Connect's CA (cdc.connect_ca).
    env = {**os.environ, "DUALRUN_HOME": str(home), "REQUESTS_CA_BUNDLE": certifi.where()}
    for name, default in PORTS.items():
        env[f"DUALRUN_{name}_PORT"] = str(int(os.environ.get(f"DUALRUN_{name}_PORT") or default) + OFFSET)
    return env


def dualrun(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "migrate.cli", *args], env=env or _env(home), cwd=ROOT,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def secure_home() -> Iterator[Path]:
    home = Path(os.environ.get("DUALRUN_HOME") or ROOT / ".dualrun").absolute().with_name(".dualrun-secure")
    up = dualrun(home, "stack", "up", "--secure")
    assert up.returncode == 0, up.stderr[-2000:]
    assert "secured: client settings in" in up.stdout
    try:
        yield home
    finally:
        dualrun(home, "stack", "down")


def passwords(home: Path) -> dict[str, str]:
    return {k: str(v) for k, v in json.loads((home / "secure" / "users.json").read_text()).items()}


def connect_url(home: Path) -> str:
    return f"https://127.0.0.1:{_env(home)['DUALRUN_CONNECT_PORT']}"


def user_spec(home: Path, tmp_path: Path, properties: dict[str, str], connect: dict[str, str] | None = None) -> Path:
    """The example spec as a user writes it for the secured stack (not `local`): Kafka settings explicit,
    Connect's login (`connect_user`, ...) as given."""
    env = _env(home)
    raw = yaml.safe_load(example_spec_path().read_text())
    raw.pop("local")
    raw["state_dir"] = str(tmp_path / "state")
    raw["source"]["url"] = f"mysql+pymysql://dualrun@127.0.0.1:{env['DUALRUN_MARIADB_PORT']}/shop"
    raw["cdc"].update(connect_url=connect_url(home), **(connect or {}))
    raw["kafka"] = {"bootstrap_servers": f"127.0.0.1:{env['DUALRUN_KAFKA_PORT']}", "properties": properties}
    for output in raw["outputs"].values():
        output["batch"]["sql_file"] = str(example_spec_path().parent / output["batch"]["sql_file"])
    path = tmp_path / "dualrun.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def assert_refused(done: Any, case: str, prefix: str, expected: str, secret: str) -> None:
    """A usage error (exit 2) in one line starting with `prefix` and saying `expected`; no secret, no traceback."""
    assert done.returncode == 2, (case, done.stdout[-500:], done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), (case, done.stderr)
    assert expected in lines[0], (case, lines[0])
    assert secret not in done.stderr and "Traceback" not in done.stderr


def test_the_secured_stacks_files_are_private(secure_home: Path) -> None:
    for name in (*SECRET_HOLDERS, "secure/ca.key", "secure/kafka.yaml", "secure/connect-jaas.conf"):
        mode = stat.S_IMODE((secure_home / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
    assert stat.S_IMODE((secure_home / "secure").stat().st_mode) == 0o700
    snippet = yaml.safe_load((secure_home / "secure" / "kafka.yaml").read_text())
    assert snippet["kafka"]["properties"]["sasl.password_env"] == "DUALRUN_KAFKA_PASSWORD"
    assert not set(passwords(secure_home).values()) & {str(v) for v in snippet["kafka"]["properties"].values()}
    config = StackConfig.from_env(secure_home)
    assert config.secure


def test_the_demo_runs_clean_on_the_secured_stack_and_no_secret_leaks(secure_home: Path) -> None:
    done = dualrun(secure_home, "demo", "--state-dir", str(secure_home), "--events", "600", "--rate", "300", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    reconciliation = json.loads(done.stdout)["reconciliation"]
    assert reconciliation["verdict"] == "clean", reconciliation
    checklist = dualrun(secure_home, "checklist", "--state-dir", str(secure_home), "--format", "json",
                        "--check", "kafka_security", "--check", "exactly_once")  # fmt: skip
    checks = {c["name"]: c for c in json.loads(checklist.stdout)["checks"]}
    assert checks["kafka_security"]["status"] == "pass", checks["kafka_security"]
    assert "SASL_SSL (SCRAM-SHA-256) as user dualrun" in checks["kafka_security"]["evidence"]
    assert checks["exactly_once"]["status"] == "pass", checks["exactly_once"]
    # The streaming job ran as `stream`, and its status file shows its settings with the password masked.
    status = json.loads((secure_home / "stream" / "dualrun-stream.status.json").read_text())
    assert status["consumer"]["sasl.username"] == "stream" and status["consumer"]["sasl.password"] == "********"
    # Connect's REST API answers on HTTPS with basic auth only; Debezium's database password reaches
    # Connect as a FileConfigProvider reference, so neither its config topic nor its REST API holds it.
    ca, login = str(secure_home / "secure" / "ca.pem"), ("dualrun", passwords(secure_home)["connect-rest"])
    config = requests.get(f"{connect_url(secure_home)}/connectors/dualrun-shop/config", auth=login, verify=ca,
                          timeout=10).json()  # fmt: skip
    secrets_file = secure_home / "secure" / "debezium.properties"
    assert config["database.password"] == f"${{file:{secrets_file}:database.password}}", config["database.password"]
    database_password = os.environ.get("DUALRUN_DEBEZIUM_PASSWORD") or "debezium"
    assert f"database.password={database_password}\n" in secrets_file.read_text()  # what Connect resolves
    segments = (secure_home / "kafka").glob("data-secure/dualrun-connect-configs-*/*.log")
    stored = b"".join(segment.read_bytes() for segment in segments)
    assert b'"database.password":"${file:' in stored
    assert f'"database.password":"{database_password}"'.encode() not in stored
    assert requests.get(connect_url(secure_home), verify=ca, timeout=10).status_code == 401
    leaks = {
        f"{path.relative_to(secure_home)}: {user}"
        for path in secure_home.rglob("*")
        if path.is_file() and path.relative_to(secure_home).parts[0] != "lib"
        and str(path.relative_to(secure_home)) not in (*SECRET_HOLDERS, KSTREAMS_SETTINGS)
        for user, secret in passwords(secure_home).items()
        if secret.encode() in path.read_bytes()
    }  # fmt: skip
    assert not leaks, sorted(leaks)


def test_the_exporter_measures_lag_on_the_secured_stack(secure_home: Path) -> None:
    """After the demo: the exporter logs in as `dualrun` (bare bootstrap servers would be refused)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from migrate.exporter import GroupLagCollector

    collector = GroupLagCollector(secure_home)
    assert collector.jobs(), "the demo's streaming job left no status file"
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    for group in collector.jobs():
        assert f'dualrun_group_lag_up{{group="{group}"}} 1.0' in text, text
        assert f'dualrun_group_lag_records_total{{group="{group}"}}' in text, text


def test_the_kafka_streams_demo_runs_clean_on_the_secured_stack(secure_home: Path) -> None:
    """The Java job gets the `stream` user's settings in a 0600 file (--client-properties), not on its command line."""
    done = dualrun(secure_home, "demo", "--stream", "kafka-streams", "--state-dir", str(secure_home),
                   "--events", "600", "--rate", "300", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["reconciliation"]["verdict"] == "clean", done.stdout[-2000:]
    settings = secure_home / KSTREAMS_SETTINGS
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert 'username="stream"' in read_properties(settings)["sasl.jaas.config"]  # escaped in the file: `\=`
    log = (secure_home / "stream" / "kstreams-order-enricher.log").read_text()
    assert not any(secret in log for secret in passwords(secure_home).values())


@pytest.mark.parametrize(
    ("case", "properties", "expected"),
    [
        ("no credentials", {}, "closed the connection of a client without credentials (PLAINTEXT)"),
        ("wrong password", {"sasl.password_env": "SECURE_TEST_PASSWORD"},
         "refused the credentials of user 'dualrun' (SASL authentication failed)"),
        ("no CA", {"sasl.password_env": "SECURE_TEST_GOOD_PASSWORD", "ssl.ca.location": ""},
         "TLS handshake failed, the broker's certificate could not be verified; set ssl.ca.location"),
    ],
)  # fmt: skip
def test_a_refused_client_says_why_in_one_line(
    secure_home: Path, tmp_path: Path, case: str, properties: dict[str, str], expected: str
) -> None:
    secured = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "dualrun",
               "ssl.ca.location": str(secure_home / "secure" / "ca.pem")}  # fmt: skip
    wanted = {**secured, **properties} if properties else {}
    wanted = {k: v for k, v in wanted.items() if v != ""}
    env = {**_env(secure_home), "SECURE_TEST_PASSWORD": "not-the-password",
           "SECURE_TEST_GOOD_PASSWORD": passwords(secure_home)["dualrun"]}  # fmt: skip
    spec = user_spec(secure_home, tmp_path, wanted)
    done = dualrun(secure_home, "run", "stream", "--spec", str(spec), env=env, timeout=120)
    assert_refused(done, case, "error: Kafka at 127.0.0.1:", expected, passwords(secure_home)["dualrun"])


@pytest.mark.parametrize(
    ("case", "connect", "expected"),
    [
        ("no credentials", {"connect_ca": "CA"}, "wants a login (HTTP 401) and none was given; set cdc.connect_user"),
        ("wrong password",
         {"connect_ca": "CA", "connect_user": "dualrun", "connect_password_env": "SECURE_TEST_PASSWORD"},
         "refused the credentials (HTTP 401); check cdc.connect_user"),
        ("no CA", {"connect_user": "dualrun", "connect_password_env": "SECURE_TEST_GOOD_PASSWORD"},
         "TLS handshake failed (certificate verify failed"),
    ],
)  # fmt: skip
def test_connect_refuses_a_client_and_says_why_in_one_line(
    secure_home: Path, tmp_path: Path, case: str, connect: dict[str, str], expected: str
) -> None:
    ca = str(secure_home / "secure" / "ca.pem")
    connect = {k: ca if v == "CA" else v for k, v in connect.items()}
    good = passwords(secure_home)["connect-rest"]
    env = {**_env(secure_home), "SECURE_TEST_PASSWORD": "not-the-password", "SECURE_TEST_GOOD_PASSWORD": good}
    env.setdefault("DUALRUN_DEBEZIUM_PASSWORD", "debezium")  # the stack's default (a user spec has no default)
    spec = user_spec(secure_home, tmp_path, {}, connect)  # Connect is asked first: Kafka's settings do not matter
    done = dualrun(secure_home, "cdc", "register", "--spec", str(spec), env=env, timeout=120)
    assert_refused(done, case, f"error: Kafka Connect at {connect_url(secure_home)}", expected, good)


def test_a_sink_reads_an_output_topic_as_connect_on_the_secured_stack(secure_home: Path, tmp_path: Path) -> None:
    """`connect` may read the pipeline's output topics and commit in its `connect-<sink>` group: the JDBC
    sink registered with `dualrun cdc register-sink` runs and writes the record into PostgreSQL."""
    import time
    import uuid

    import psycopg

    from cdc import client
    from cdc.connect import ConnectClient
    from cdc.topics import TopicAdmin
    from migrate.stackconfig import StackConfig

    up = dualrun(secure_home, "stack", "up", "--secure", "--with", "postgres")
    assert up.returncode == 0, up.stderr[-2000:]
    env = {**_env(secure_home), "SECURE_TEST_GOOD_PASSWORD": passwords(secure_home)["dualrun"],
           "SECURE_TEST_CONNECT_PASSWORD": passwords(secure_home)["connect-rest"]}  # fmt: skip
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("DUALRUN_")})
    try:
        config = StackConfig.from_env(secure_home)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    env["SECURE_TEST_SINK_PASSWORD"] = config.db_password
    suffix = uuid.uuid4().hex[:8]
    topic, table = f"orders-enriched-{suffix}", f"secure_sink_{suffix}"
    TopicAdmin(config.kafka("admin")).create(topic, partitions=1)
    key = {"schema": {"type": "struct", "fields": [{"field": "order_id", "type": "int64"}]}, "payload": {"order_id": 7}}
    value = {"schema": {"type": "struct", "fields": [{"field": "order_id", "type": "int64"},
                                                     {"field": "status", "type": "string", "optional": True}]},
             "payload": {"order_id": 7, "status": "paid"}}  # fmt: skip
    producer = client.producer(config.kafka("admin"))
    producer.produce(topic, key=json.dumps(key).encode(), value=json.dumps(value).encode())
    assert producer.flush(30) == 0
    ca = str(secure_home / "secure" / "ca.pem")
    kafka = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "dualrun",
             "ssl.ca.location": ca, "sasl.password_env": "SECURE_TEST_GOOD_PASSWORD"}  # fmt: skip
    connect = {"connect_ca": ca, "connect_user": "dualrun", "connect_password_env": "SECURE_TEST_CONNECT_PASSWORD"}
    path = user_spec(secure_home, tmp_path, kafka, connect)
    raw = yaml.safe_load(path.read_text())
    raw["outputs"]["orders_enriched"]["stream"]["topic"] = topic
    raw["outputs"]["orders_enriched"]["sink"] = {"table": table, "url": config.postgres_url(password=False),
                                                 "password_env": "SECURE_TEST_SINK_PASSWORD"}  # fmt: skip
    path.write_text(yaml.safe_dump(raw))
    done = dualrun(secure_home, "cdc", "register-sink", "--spec", str(path), env=env, timeout=180)
    name = f"shop-orders-{table.replace('_', '-')}-sink"
    connect_client = ConnectClient(connect_url(secure_home), auth=("dualrun", env["SECURE_TEST_CONNECT_PASSWORD"]),
                                   verify=ca)  # fmt: skip
    try:
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
        assert f"connector {name} registered:" in done.stdout and "Traceback" not in done.stderr
        rows: list[Any] = []
        deadline = time.monotonic() + 90
        while not rows and time.monotonic() < deadline:
            status = connect_client.status(name)
            assert not status.failed, status.reason
            time.sleep(1)
            with psycopg.connect(config.postgres_url().replace("postgresql+psycopg", "postgresql")) as con:
                exists = con.execute("SELECT to_regclass(%s)", [table]).fetchone()
                if exists and exists[0]:
                    rows = con.execute(f'SELECT order_id, status FROM "{table}"').fetchall()
        assert rows == [(7, "paid")]
    finally:
        connect_client.delete(name)
