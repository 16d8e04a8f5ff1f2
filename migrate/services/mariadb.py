"""MariaDB from the operating system's package, with row binlog and GTIDs, under the state dir."""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

import pymysql

from migrate.artifacts import stack_dir
from migrate.errors import MissingTool, StackError
from migrate.process import ManagedProcess, wait_until
from migrate.services.base import ServiceStatus, claim_port
from migrate.stackconfig import StackConfig

INSTALL_HINT = "install it with `apt-get install mariadb-server mariadb-client`"

# Debezium needs to read rows, lock for the snapshot and read the binlog; nothing more.
# sql_log_bin = 0 (this session only): `IDENTIFIED BY` would otherwise put each password in clear
# in the binlog, and from there into Debezium's schema history topic.
USERS = """
SET sql_log_bin = 0;
CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY {password};
CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED BY {password};
ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY {password};
ALTER USER '{user}'@'localhost' IDENTIFIED BY {password};
GRANT ALL PRIVILEGES ON *.* TO '{user}'@'127.0.0.1', '{user}'@'localhost' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS '{dbz}'@'127.0.0.1' IDENTIFIED BY {dbz_password};
ALTER USER '{dbz}'@'127.0.0.1' IDENTIFIED BY {dbz_password};
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT
  ON *.* TO '{dbz}'@'127.0.0.1';
SET sql_log_bin = 1;
"""


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class MariaDB:
    """`mariadbd` with its own datadir, socket and my.cnf; created on first start."""

    name = "mariadb"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.port = config.ports.mariadb
        self.home = config.state_dir / "mariadb"
        self.socket = self.home / "mysqld.sock"
        self.cnf = self.home / "my.cnf"
        self.process = ManagedProcess("mariadb", self.home / "mariadb.pid", self.home / "mariadb.log", str(self.cnf))

    def _binary(self, name: str) -> str:
        found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
        if found is None:
            raise MissingTool(f"{name} not found: {INSTALL_HINT}")
        return found

    def _write_cnf(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "binlog").mkdir(exist_ok=True)
        lines = [
            "[mysqld]",
            f"user={getpass.getuser()}",
            f"datadir={self.home / 'data'}",
            f"socket={self.socket}",
            f"pid-file={self.home / 'mysqld.pid'}",
            f"port={self.port}",
            "bind-address=127.0.0.1",
            "server_id=1",
            f"log_bin={self.home / 'binlog' / 'mysql-bin'}",
            "binlog_format=ROW",
            "binlog_row_image=FULL",
            "gtid_strict_mode=ON",
            "log_slave_updates=ON",
            "binlog_expire_logs_seconds=604800",
            "skip-name-resolve",
            "innodb_buffer_pool_size=256M",
            "innodb_flush_log_at_trx_commit=2",
            "max_connections=200",
            "character-set-server=utf8mb4",
            "collation-server=utf8mb4_general_ci",
        ]
        self.cnf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        if self.process.running():
            self._bootstrap()  # converge users and schema, e.g. after a password change
            return
        mariadbd = self._binary("mariadbd")
        claim_port("mariadb", self.port, "--mariadb-port")
        self._write_cnf()
        if not (self.home / "data" / "mysql").exists():
            install = subprocess.run(
                [self._binary("mariadb-install-db"), f"--defaults-file={self.cnf}",
                 "--auth-root-authentication-method=socket", "--skip-test-db"],
                capture_output=True, text=True,
            )  # fmt: skip
            if install.returncode != 0:
                raise StackError(
                    f"mariadb-install-db failed: {install.stderr.strip()[-300:]} (datadir {self.home / 'data'})"
                )
        self.process.start([mariadbd, f"--defaults-file={self.cnf}"])
        wait_until(self._ping, timeout=60, what="MariaDB to accept connections", process=self.process)
        self._bootstrap()

    def _ping(self) -> bool | None:
        if not self.socket.exists():
            return None
        result = subprocess.run(
            [self._binary("mariadb-admin"), "--no-defaults", f"--socket={self.socket}", "-uroot", "ping"],
            capture_output=True,
        )
        return True if result.returncode == 0 else None

    def _bootstrap(self) -> None:
        """Idempotent: the demo schema and both users, as root over the local socket."""
        schema = (stack_dir() / "mariadb" / "schema.sql").read_text()
        sql = schema + USERS.format(
            user=self.config.db_user,
            password=_quote(self.config.db_password),
            dbz=self.config.debezium_user,
            dbz_password=_quote(self.config.debezium_password),
        )
        # SQL goes through stdin so passwords never show in the process list.
        result = subprocess.run(
            [self._binary("mariadb"), "--no-defaults", f"--socket={self.socket}", "-uroot"],
            input=sql, capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"could not create the demo schema and users: {result.stderr.strip()}")

    def stop(self) -> bool:
        return self.process.stop(timeout=60)

    def status(self) -> ServiceStatus:
        pid = self.process.pid()
        version, detail = None, "not running"
        if pid is not None:
            try:
                conn = pymysql.connect(
                    host="127.0.0.1", port=self.port, user=self.config.db_user,
                    password=self.config.db_password, connect_timeout=3,
                )  # fmt: skip
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT VERSION(), @@gtid_binlog_pos, @@binlog_format")
                    row = cur.fetchone()
                assert row is not None
                version = str(row[0])
                detail = f"binlog {row[2]}, gtid_binlog_pos {row[1] or '(empty)'}"
            except pymysql.MySQLError as exc:
                detail = f"not answering: {exc.args[-1] if exc.args else exc}"
        return ServiceStatus(self.name, self.port, pid is not None, version is not None, version, pid, detail)
