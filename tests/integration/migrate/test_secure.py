"""`dualrun stack up --secure` on the real services: SASL_SSL (SCRAM-SHA-256), a mutual-TLS controller
and ACLs. The demo runs clean on it; clients without credentials, with a wrong password or without the
CA are refused in one line each; no secret lands in a file under the state dir but those meant to hold it.

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

import pytest
import yaml

from migrate.spec import example_spec_path
from migrate.stackconfig import StackConfig

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[3]
OFFSET = int(os.environ.get("DUALRUN_SECURE_PORT_OFFSET") or 10)
PORTS = {"MARIADB": 3306, "KAFKA": 9092, "CONTROLLER": 9093, "CONNECT": 8083, "POSTGRES": 5432}
# The files that hold a Kafka secret on purpose (all mode 0600).
SECRET_HOLDERS = (
    "secure/users.json", "secure/client.properties", "secure/debezium.properties", "secure/broker.p12",
    "kafka/server.properties", "connect/worker.properties",
)  # fmt: skip


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "DUALRUN_HOME": str(home)}
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


def user_spec(home: Path, tmp_path: Path, properties: dict[str, str]) -> Path:
    """The example spec as a user writes it for the secured stack (not `local`): Kafka settings explicit."""
    env = _env(home)
    raw = yaml.safe_load(example_spec_path().read_text())
    raw.pop("local")
    raw["state_dir"] = str(tmp_path / "state")
    raw["source"]["url"] = f"mysql+pymysql://dualrun@127.0.0.1:{env['DUALRUN_MARIADB_PORT']}/shop"
    raw["cdc"]["connect_url"] = f"http://127.0.0.1:{env['DUALRUN_CONNECT_PORT']}"
    raw["kafka"] = {"bootstrap_servers": f"127.0.0.1:{env['DUALRUN_KAFKA_PORT']}", "properties": properties}
    for output in raw["outputs"].values():
        output["batch"]["sql_file"] = str(example_spec_path().parent / output["batch"]["sql_file"])
    path = tmp_path / "dualrun.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_secured_stacks_files_are_private(secure_home: Path) -> None:
    for name in (*SECRET_HOLDERS, "secure/ca.key", "secure/kafka.yaml"):
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
    leaks = {
        f"{path.relative_to(secure_home)}: {user}"
        for path in secure_home.rglob("*")
        if path.is_file() and path.relative_to(secure_home).parts[0] != "lib"
        and str(path.relative_to(secure_home)) not in SECRET_HOLDERS
        for user, secret in passwords(secure_home).items()
        if secret.encode() in path.read_bytes()
    }  # fmt: skip
    assert not leaks, sorted(leaks)


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
    assert done.returncode == 2, (case, done.stdout[-500:], done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Kafka at 127.0.0.1:"), (case, done.stderr)
    assert expected in lines[0], (case, lines[0])
    assert "Traceback" not in done.stderr
    assert passwords(secure_home)["dualrun"] not in done.stderr
