"""`dualrun stack` against the real services."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.cli import cli
from migrate.stack import MONITORING, Stack
from migrate.stackconfig import StackConfig

pytestmark = pytest.mark.integration


def test_status_json_reports_every_service_healthy_with_versions(postgres_stack: StackConfig) -> None:
    stack = postgres_stack
    result = CliRunner().invoke(cli, ["stack", "status", "--json", "--state-dir", str(stack.state_dir)])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["healthy"] is True
    # The monitoring test may have added its services to this shared stack: they come last.
    services = [s for s in status["services"] if s["name"] not in MONITORING]
    assert [s["name"] for s in status["services"]][: len(services)] == [s["name"] for s in services]
    by_name = {s["name"]: s for s in services}
    assert list(by_name) == ["mariadb", "postgres", "kafka", "connect"]
    assert all(s["required"] for s in services), "asked for with --with postgres, so required"
    assert by_name["mariadb"]["version"].startswith("10.11")
    assert "binlog ROW" in by_name["mariadb"]["detail"]
    assert by_name["postgres"]["version"].startswith("15.")
    assert by_name["postgres"]["detail"].startswith("wal_level logical")
    assert by_name["kafka"]["version"].startswith("4.")
    assert by_name["connect"]["version"] == by_name["kafka"]["version"]
    assert "Debezium 3." in by_name["connect"]["detail"]
    ports = stack.ports
    assert {s["port"] for s in services} == {ports.mariadb, ports.postgres, ports.kafka, ports.connect}


def test_up_is_idempotent(stack: StackConfig) -> None:
    before = [s.pid for s in Stack(stack).status().services]
    timings = Stack(stack).up()
    assert [s.pid for s in Stack(stack).status().services] == before
    # What an earlier `up` started (PostgreSQL, if a test asked for it) stays part of the stack.
    assert set(timings) == {"artifacts", *Stack(stack).recorded()} >= {"artifacts", "mariadb", "kafka", "connect"}


def test_a_taken_port_is_one_clear_line_and_exit_2(stack: StackConfig, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["stack", "up", "--state-dir", str(tmp_path), "--mariadb-port", "3399", "--postgres-port", "5499",
         "--kafka-port", str(stack.ports.kafka)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: port {stack.ports.kafka} needed by kafka is already in use by another process; "
        "stop that process or choose another port with --kafka-port"
    ]
    assert not (tmp_path / "mariadb").exists(), "nothing may start when a port is taken"
    assert not (tmp_path / "postgres").exists()


def test_down_stops_only_what_its_state_dir_started(stack: StackConfig, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["stack", "down", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0 and "nothing was running" in result.output
    assert Stack(stack).status().healthy


def test_missing_maven_says_how_to_install_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python3")
    env = {**os.environ, "PATH": str(bin_dir)}
    ports = ["--mariadb-port", "3398", "--postgres-port", "5498", "--kafka-port", "9192", "--controller-port", "9193",
             "--connect-port", "8183"]  # fmt: skip
    proc = subprocess.run(
        [str(bin_dir / "python3"), "-m", "migrate.cli", "stack", "up", "--state-dir", str(tmp_path / "s"), *ports],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: Maven (mvn) not found: install it with `apt-get install maven`"
    assert "Traceback" not in proc.stderr
    assert shutil.which("mvn") is not None  # the real machine has it; only this PATH lacks it


def test_kafka_storage_formats_with_a_cluster_id_that_starts_with_a_dash(stack: StackConfig, tmp_path: Path) -> None:
    # base64url ids start with '-' about once in 64 formats; argparse once took that for a flag.
    from migrate.services.kafka import Kafka
    from migrate.services.properties import write_properties

    kafka = Kafka(StackConfig(state_dir=tmp_path), Stack(stack)._artifacts())
    write_properties(kafka.properties, kafka.settings())
    kafka.format_storage("-AbCdEfGhIjKlMnOpQrStU")
    assert "cluster.id=-AbCdEfGhIjKlMnOpQrStU" in (tmp_path / "kafka" / "data" / "meta.properties").read_text()
