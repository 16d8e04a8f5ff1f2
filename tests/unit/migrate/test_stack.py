"""Which services a stack runs and holds to being healthy, without starting any."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate.errors import StackError
from migrate.stack import DEFAULT, MONITORING, RECORD, Stack, needed_services
from migrate.stackconfig import Ports, StackConfig

# Ports nothing listens on: status() probes only processes this state dir started (none here).
PORTS = Ports(mariadb=1, kafka=2, controller=3, connect=4, postgres=5, prometheus=6, alertmanager=7, kafka_jmx=8,
              connect_jmx=9, exporter=10)  # fmt: skip


def test_the_default_stack_has_no_postgres_and_a_mariadb_spec_needs_none() -> None:
    assert DEFAULT == ("mariadb", "kafka", "connect")
    assert needed_services("mariadb") == DEFAULT
    assert needed_services("postgres") == ("postgres", "kafka", "connect")


def test_status_of_a_stack_never_started_requires_the_default_services_only(tmp_path: Path) -> None:
    status = Stack(StackConfig(state_dir=tmp_path, ports=PORTS)).status()
    by_name = {s.name: s for s in status.services}
    assert list(by_name) == ["mariadb", "postgres", "kafka", "connect", "exporter", "alertmanager", "prometheus"]
    assert [n for n, s in by_name.items() if s.required] == ["mariadb", "kafka", "connect"]
    assert by_name["postgres"].detail == "not started (optional): `dualrun stack up --with postgres` starts it"
    assert by_name["prometheus"].detail == "not started (optional): `dualrun stack up --monitoring` starts it"
    assert not status.healthy  # the required ones are down
    assert status.to_dict()["services"][1]["required"] is False


def test_what_up_recorded_is_required_until_down(tmp_path: Path) -> None:
    stack = Stack(StackConfig(state_dir=tmp_path, ports=PORTS))
    (tmp_path / RECORD).write_text(json.dumps({"services": ["mariadb", "postgres", "kafka", "connect"]}))
    assert stack.recorded() == {"mariadb", "postgres", "kafka", "connect"}
    assert {s.name for s in stack.status().services if s.required} == {"mariadb", "postgres", "kafka", "connect"}
    assert stack.down() == []  # nothing was running
    assert not (tmp_path / RECORD).exists() and stack.recorded() == frozenset()


def test_monitoring_loads_the_jmx_agent_into_the_broker_and_connect(tmp_path: Path) -> None:
    plain = {s.name: s for s in Stack(StackConfig(state_dir=tmp_path, ports=PORTS)).services()}
    assert not plain["kafka"].monitored and not plain["connect"].monitored  # type: ignore[attr-defined]
    watched = Stack(StackConfig(state_dir=tmp_path, ports=PORTS), (*DEFAULT, *MONITORING))
    services = {s.name: s for s in watched.services()}
    assert services["kafka"].monitored and services["connect"].monitored  # type: ignore[attr-defined]


def test_an_unknown_service_is_one_line() -> None:
    with pytest.raises(StackError, match=r"^unknown service\(s\) redis; the stack runs mariadb, postgres, kafka"):
        Stack(StackConfig(), ("redis",))


def test_a_port_where_nothing_listens_shows_no_pid(tmp_path: Path) -> None:
    """The stack's MariaDB runs (a process carrying its marker), but nothing listens on the port asked about."""
    import socket
    import subprocess
    import sys
    from dataclasses import replace

    with socket.socket() as sock:  # a port free now: bound, then released
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = StackConfig(state_dir=tmp_path, ports=replace(PORTS, mariadb=port))
    home = tmp_path / "mariadb"
    home.mkdir()
    marker = str(home / "my.cnf")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        (home / "mariadb.pid").write_text(str(sleeper.pid))
        mariadb = next(s for s in Stack(config).status().services if s.name == "mariadb")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (mariadb.pid, mariadb.healthy, mariadb.detail) == (None, False, f"nothing listens on :{port}")


@pytest.mark.parametrize("value", ["0", "99999"])
def test_a_port_option_out_of_range_is_a_usage_error(value: str) -> None:
    from click.testing import CliRunner

    from migrate.cli import cli

    result = CliRunner().invoke(cli, ["stack", "status", "--kafka-port", value])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--kafka-port'" in result.output and "1<=x<=65535" in result.output


@pytest.mark.parametrize("value", ["0", "99999", "abc", "-5"])
def test_a_port_variable_out_of_range_is_one_line_and_exit_2(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from migrate.cli import cli

    monkeypatch.setenv("DUALRUN_KAFKA_PORT", value)
    result = CliRunner().invoke(cli, ["stack", "status"])
    assert result.exit_code == 2, result.output
    assert f"DUALRUN_KAFKA_PORT: '{value}' is not a port (1-65535)" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
