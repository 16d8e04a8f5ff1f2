"""PostgreSQL service logic that needs no server: settings, binary lookup, permissions, names."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from migrate.artifacts import stack_dir
from migrate.errors import MissingTool
from migrate.process import RunAs
from migrate.services.postgres import HBA, find_bindir, server_settings, unreachable_ancestor
from migrate.stackconfig import Ports, StackConfig


def test_server_settings_enable_logical_decoding_on_loopback_only(tmp_path: Path) -> None:
    settings = server_settings(StackConfig(ports=Ports(postgres=25432)), tmp_path)
    assert settings["wal_level"] == "logical"
    assert settings["listen_addresses"] == "'127.0.0.1'"
    assert settings["port"] == "25432"
    assert settings["unix_socket_directories"] == f"'{tmp_path}'"
    assert int(settings["max_replication_slots"]) >= 10 and int(settings["max_wal_senders"]) >= 10


def test_only_the_socket_trusts_and_tcp_needs_a_scram_password() -> None:
    rules = [line.split() for line in HBA.splitlines() if line.strip() and not line.startswith("#")]
    assert rules == [
        ["local", "all", "all", "trust"],
        ["host", "all", "all", "127.0.0.1/32", "scram-sha-256"],
    ]


def fake_bindir(root: Path, version: str) -> Path:
    bindir = root / version / "bin"
    bindir.mkdir(parents=True)
    for name in ("postgres", "initdb"):
        (bindir / name).write_text("#!/bin/sh\n")
    return bindir


def test_the_newest_installed_version_wins_without_pg_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no pg_config on PATH
    fake_bindir(tmp_path, "9.6")
    newest = fake_bindir(tmp_path, "15")
    (tmp_path / "16" / "bin").mkdir(parents=True)  # client-only install: no server binaries
    assert find_bindir(str(tmp_path / "*" / "bin")) == newest


def test_missing_postgres_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MissingTool) as missing:
        find_bindir(str(tmp_path / "*" / "bin"))
    assert str(missing.value) == "PostgreSQL (postgres, initdb) not found: install it with `apt-get install postgresql`"


def test_a_directory_the_service_account_cannot_enter_is_named(tmp_path: Path) -> None:
    # The account owns every directory here (pytest's tmp tree is ours); only `closed` denies it entry.
    account = RunAs("me", uid=os.getuid(), gid=os.getgid())
    closed = tmp_path / "closed"
    (closed / "state").mkdir(parents=True)
    closed.chmod(0o600)
    try:
        assert unreachable_ancestor(closed / "state" / "postgres", account) == closed
    finally:
        closed.chmod(0o700)
    assert unreachable_ancestor(closed / "state" / "postgres", account) is None


def test_the_stack_publication_is_the_one_schema_sql_creates() -> None:
    schema = (stack_dir() / "postgres" / "schema.sql").read_text()
    created = re.findall(r"CREATE PUBLICATION (\w+) FOR TABLE ([\w., ]+);", schema)
    assert created == [(StackConfig().postgres_publication, "shop.customers, shop.orders")]
    assert "NUMERIC(12,2)" in schema and "REPLICA IDENTITY FULL" in schema


def test_postgres_url_quotes_the_password_and_can_hide_it() -> None:
    config = StackConfig(db_password="p@ss:w/rd", ports=Ports(postgres=25432))
    assert config.postgres_url() == "postgresql+psycopg://dualrun:p%40ss%3Aw%2Frd@127.0.0.1:25432/shop"
    assert config.postgres_url(password=False) == "postgresql+psycopg://dualrun@127.0.0.1:25432/shop"
    assert "p@ss" not in str(config.to_dict())


def _root_with_a_postgres_account() -> bool:
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return os.geteuid() == 0


@pytest.mark.skipif(not _root_with_a_postgres_account(), reason="needs root and the package's postgres account")
def test_as_root_a_state_dir_the_account_cannot_enter_keeps_the_data_in_the_accounts_home() -> None:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="dualrun-pg-"))  # under /tmp: pytest's own tmp tree is 0700
    try:
        root.chmod(0o755)
        private = root / "private"
        (private / "work").mkdir(parents=True)
        private.chmod(0o700)  # like root's home or a `mktemp -d` folder
        open_dir = root / "open"
        open_dir.mkdir()
        _check_homes(private, open_dir)
    finally:
        shutil.rmtree(root)


def _check_homes(private: Path, open_dir: Path) -> None:
    from migrate.services.postgres import Postgres, private_home, service_account

    account = service_account()
    assert account is not None
    blocked = Postgres(StackConfig(state_dir=private / "work" / ".dualrun"))
    assert blocked.relocated and blocked.data_home == private_home(private / "work" / ".dualrun", account)
    assert blocked.data_home.parent == Path(__import__("pwd").getpwnam("postgres").pw_dir) / "dualrun"
    assert blocked.process.pid_file.parent == private / "work" / ".dualrun" / "postgres"  # root's files stay
    reachable = Postgres(StackConfig(state_dir=open_dir / ".dualrun"))
    assert not reachable.relocated and reachable.data == open_dir / ".dualrun" / "postgres" / "data"
