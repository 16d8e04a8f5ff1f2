"""`dualrun demo` as a new user runs it in a container or CI job: root, in a private directory.

Root's home (0700) and `mktemp -d` folders are closed to every other account, PostgreSQL's
included. The MariaDB demo needs no PostgreSQL, so nothing may stop it there. Each case is a
whole private stack on free ports, with its state where the user stands (the reference spec's
`.dualrun`); its jars are hard links to the session stack's (fetching them is not under test).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.stack import Stack
from migrate.stackconfig import Ports, StackConfig

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[3]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A `mktemp -d` folder: mode 0700, owned by whoever runs the tests (root in CI and containers)."""
    path = Path(tempfile.mkdtemp(prefix="dualrun-private-"))
    assert path.stat().st_mode & 0o777 == 0o700
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_demo_in(cwd: Path, lib: Path) -> tuple[subprocess.CompletedProcess[str], StackConfig]:
    mariadb, kafka, controller, connect, postgres = free_ports(5)
    ports = Ports(mariadb=mariadb, kafka=kafka, controller=controller, connect=connect, postgres=postgres)
    state = cwd / ".dualrun"
    shutil.copytree(lib, state / "lib", copy_function=os.link)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUALRUN_")}
    env.update({f"DUALRUN_{name.upper()}_PORT": str(port) for name, port in vars(ports).items()})
    env["PYTHONPATH"] = str(ROOT)
    config = StackConfig(state_dir=state, ports=ports)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "migrate.cli", "demo", "--events", "300", "--rate", "300", "--json"],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        return done, config
    finally:
        down = subprocess.run([sys.executable, "-m", "migrate.cli", "stack", "down"], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert down.returncode == 0, down.stderr


def check_clean_without_postgres(done: subprocess.CompletedProcess[str], config: StackConfig) -> None:
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PostgreSQL" not in done.stderr and "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    assert result["reconciliation"]["verdict"] == "clean", result["reconciliation"]
    assert not (config.state_dir / "postgres").exists(), "the MariaDB demo must not start PostgreSQL"
    assert not Stack(config).status().healthy  # `stack down` stopped what the demo started


@pytest.mark.parametrize("layout", ["the private dir itself", "a dir under a private parent"])
def test_the_demo_runs_from_a_private_directory(stack: StackConfig, private_dir: Path, layout: str) -> None:
    cwd = private_dir if layout == "the private dir itself" else private_dir / "work"
    cwd.mkdir(exist_ok=True)
    done, config = run_demo_in(cwd, stack.state_dir / "lib")
    check_clean_without_postgres(done, config)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another account")
def test_postgres_asked_for_from_a_private_directory_runs_with_its_data_where_its_account_can_reach(
    private_dir: Path,
) -> None:
    from migrate.services.postgres import Postgres

    postgres_port, *_ = free_ports(1)
    config = StackConfig(state_dir=private_dir / "work" / ".dualrun", ports=Ports(postgres=postgres_port))
    stack = Stack(config, ("postgres",))  # what `dualrun stack up --with postgres` adds, alone
    server = Postgres(config)
    try:
        stack.up()
        status = {s.name: s for s in stack.status().services}["postgres"]
        assert status.healthy and status.detail.startswith("wal_level logical"), status
        assert server.relocated and f"data in {server.data_home}" in status.detail
        account, mode = server.check(), server.data_home.stat()
        assert account is not None and (mode.st_uid, mode.st_mode & 0o777) == (account.uid, 0o700)
        assert (config.state_dir / "postgres" / "postgres.log").exists()  # logs stay in the state dir
    finally:
        stack.down()
        shutil.rmtree(server.data_home, ignore_errors=True)
