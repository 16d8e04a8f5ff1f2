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
