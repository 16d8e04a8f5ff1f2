"""The stack's MariaDB: users and their passwords never reach the binlog (nor, through it, Debezium)."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pymysql
import pytest

from migrate.services.mariadb import MariaDB
from migrate.stackconfig import Ports, StackConfig

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:  # a port free now: bound, then released
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_creating_and_altering_users_leaves_no_password_in_the_binlog(tmp_path: Path) -> None:
    """A MariaDB of its own (its own state dir and port), so the passwords are this test's alone."""
    db_password, dbz_password = f"binlog-db-{uuid.uuid4().hex}", f"binlog-dbz-{uuid.uuid4().hex}"
    config = StackConfig(state_dir=tmp_path, ports=Ports(mariadb=_free_port()),
                         db_password=db_password, debezium_password=dbz_password)  # fmt: skip
    mariadb = MariaDB(config)
    try:
        mariadb.start()  # creates the users
        mariadb.start()  # running: converges them again (ALTER USER)
        conn = pymysql.connect(host="127.0.0.1", port=config.ports.mariadb, user=config.db_user,
                               password=db_password, database=config.database)  # fmt: skip
        with conn, conn.cursor() as cur:  # the users work with their passwords, and the binlog is written
            cur.execute("CREATE TABLE binlog_probe (id INT PRIMARY KEY)")
            cur.execute("FLUSH BINARY LOGS")
    finally:
        mariadb.stop()
    binlogs = [p for p in (tmp_path / "mariadb" / "binlog").iterdir() if p.name.startswith("mysql-bin.0")]
    content = b"".join(p.read_bytes() for p in binlogs)
    assert b"binlog_probe" in content  # the binlog is read: a statement after the users is in it
    assert b"CREATE TABLE" in content
    for password in (db_password, dbz_password):
        assert password.encode() not in content, f"a password is in the binlog ({len(binlogs)} file(s))"
