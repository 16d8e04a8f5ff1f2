"""PostgreSQL from the operating system's package, with logical decoding, under the state dir."""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from cdc.position import format_lsn, parse_lsn
from migrate.artifacts import stack_dir
from migrate.errors import MissingTool, StackError
from migrate.process import ManagedProcess, RunAs, wait_until
from migrate.services.base import ServiceStatus, claim_port
from migrate.stackconfig import StackConfig

INSTALL_HINT = "install it with `apt-get install postgresql`"
SUPERUSER = "postgres"
SERVICE_ACCOUNT = "postgres"  # the system user the Debian package creates
SOCKET_PATH_MAX = 107  # sun_path on Linux, minus the terminating NUL

# The table owner lets Debezium read its tables, now and later; Debezium never owns them.
GRANTS = """
GRANT USAGE ON SCHEMA {schema} TO {dbz};
GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {dbz};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {dbz};
"""


def server_settings(config: StackConfig, socket_dir: Path) -> dict[str, str]:
    """postgresql.conf for the stack: loopback only, logical decoding for Debezium's pgoutput."""
    return {
        "listen_addresses": "'127.0.0.1'",
        "port": str(config.ports.postgres),
        "unix_socket_directories": f"'{socket_dir}'",
        # Only the server's account (and root) may use the trust-authenticated socket.
        "unix_socket_permissions": "0700",
        "wal_level": "logical",
        # One slot and one WAL sender per connector; tests add connectors and drop their slots.
        "max_replication_slots": "32",
        "max_wal_senders": "32",
        "max_connections": "200",
        "shared_buffers": "256MB",
        "password_encryption": "'scram-sha-256'",
        "timezone": "'UTC'",
        "log_timezone": "'UTC'",
        "datestyle": "'iso, mdy'",
        "lc_messages": "'C'",
        "dynamic_shared_memory_type": "posix",
        # Like MariaDB's innodb_flush_log_at_trx_commit=2: a crash may lose the last commits, never corrupt.
        "synchronous_commit": "off",
        "log_line_prefix": "'%m [%p] '",
        "logging_collector": "off",
    }


HBA = """\
# TYPE  DATABASE  USER  ADDRESS       METHOD
# The socket's directory and file admit only the server's account (and root).
local   all       all                 trust
# Over TCP everyone, Debezium's logical replication connections included, gives a password.
host    all       all   127.0.0.1/32  scram-sha-256
"""


def find_bindir(pattern: str = "/usr/lib/postgresql/*/bin") -> Path:
    """The PostgreSQL server binaries: `pg_config --bindir`, else the newest of /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.name))

    candidates += [Path(p) for p in sorted(glob.glob(pattern), key=version, reverse=True)]
    for bindir in candidates:
        if (bindir / "postgres").is_file() and (bindir / "initdb").is_file():
            return bindir
    raise MissingTool(f"PostgreSQL (postgres, initdb) not found: {INSTALL_HINT}")


def service_account() -> RunAs | None:
    """Who runs the server: this user, or the `postgres` account when this user is root.

    PostgreSQL refuses to run as root.
    """
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        raise MissingTool(
            f"PostgreSQL refuses to run as root and there is no `{SERVICE_ACCOUNT}` system user to run it as: "
            f"{INSTALL_HINT} (it creates that user) or run dualrun as a normal user"
        ) from None
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def unreachable_ancestor(path: Path, account: RunAs) -> Path | None:
    """The first existing directory above `path` the account may not enter (search permission), if any."""
    for parent in reversed(path.absolute().parents):
        if not parent.exists():
            break  # created later, by mkdir under this umask: _prepare_home checks again
        mode = parent.stat()
        if mode.st_uid == account.uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid == account.gid:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            return parent
    return None


def private_home(state_dir: Path, account: RunAs) -> Path:
    """Where the server keeps its data and socket when its account cannot enter the state dir.

    A directory of its own under the account's home (the Debian package's /var/lib/postgresql,
    which that account can always reach), named after the state dir so each stack keeps its own
    cluster across restarts: e.g. /var/lib/postgresql/dualrun/3f9a1c2b4d5e.
    """
    digest = hashlib.sha256(str(state_dir.absolute()).encode()).hexdigest()[:12]
    return Path(pwd.getpwuid(account.uid).pw_dir) / "dualrun" / digest


class Postgres:
    """`postgres` with its own datadir, config and socket directory; created on first start.

    Its pid file and log stay under <state_dir>/postgres. The datadir and socket go there too,
    unless the server runs as the `postgres` account (dualrun as root) and that account cannot
    enter the state dir (root's 0700 home, a `mktemp -d` folder): then they go to `private_home`.
    """

    name = "postgres"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.port = config.ports.postgres
        self.home = config.state_dir / "postgres"
        self.data_home = self._locate()
        self.data = self.data_home / "data"
        self.socket_dir = self.data_home
        self.process = ManagedProcess(
            "postgres", self.home / "postgres.pid", self.home / "postgres.log", str(self.data),
            stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM would wait for every client to leave
        )  # fmt: skip

    @property
    def relocated(self) -> bool:
        return self.data_home != self.home

    def _locate(self) -> Path:
        """The state dir's postgres folder when the server's account can reach it, else `private_home`.

        A cluster that exists stays where it is.
        """
        try:
            account = service_account()
        except MissingTool:
            return self.home  # check() says what to install
        if account is None or (self.home / "data" / "PG_VERSION").exists():
            return self.home
        elsewhere = private_home(self.config.state_dir, account)
        if (elsewhere / "data" / "PG_VERSION").exists() or unreachable_ancestor(self.home, account) is not None:
            return elsewhere
        return self.home

    def check(self) -> RunAs | None:
        """Fail before anything starts: binaries, the account to run as, and a home it can reach.

        Returns that account (None: this user).
        """
        find_bindir()
        account = service_account()
        socket = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket)) > SOCKET_PATH_MAX:
            raise StackError(f"PostgreSQL's socket path {socket} is too long for a socket; use a shorter state dir")
        if account is not None and self.relocated and not self.data_home.parent.parent.is_dir():
            raise StackError(
                f"PostgreSQL runs as the `{account.name}` user (it refuses root), which cannot enter "
                f"{unreachable_ancestor(self.home, account)}, and its home {self.data_home.parent.parent} does not "
                "exist to hold the data instead; use a --state-dir it can reach (e.g. under /tmp)"
            )
        blocked = unreachable_ancestor(self.data_home, account) if account is not None else None
        if account is not None and blocked is not None:
            where = "" if not self.relocated else f" to keep its data in {self.data_home}"
            raise StackError(
                f"PostgreSQL runs as the `{account.name}` user (it refuses root), which cannot enter {blocked}{where}; "
                "use a --state-dir it can reach (e.g. under /tmp) or run dualrun as a normal user"
            )
        return account

    def _prepare_home(self) -> RunAs | None:
        self.home.mkdir(parents=True, exist_ok=True)
        account = self.check()
        if account is None:
            return None
        if self.relocated:
            # Private to the server's account, like the package's own clusters.
            for path in (self.data_home.parent, self.data_home):
                path.mkdir(mode=0o700, exist_ok=True)
                os.chown(path, account.uid, account.gid)
                path.chmod(0o700)
        if self.check() is None:  # again, now that every directory above the datadir exists
            return None
        for path in [self.data_home, *self.data_home.rglob("*")]:
            # Never follow a link out of the server's folder.
            if not path.is_symlink() and path.stat().st_uid != account.uid:
                os.chown(path, account.uid, account.gid)
        return account

    def _write_config(self) -> None:
        settings = server_settings(self.config, self.socket_dir)
        (self.data / "postgresql.conf").write_text(
            "# Written by `dualrun stack up` on every start; edits are overwritten.\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        (self.data / "pg_hba.conf").write_text(HBA)

    def _initdb(self, bindir: Path, account: RunAs | None) -> None:
        result = subprocess.run(
            [str(bindir / "initdb"), "-D", str(self.data), f"--username={SUPERUSER}", "--encoding=UTF8",
             "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256"],
            capture_output=True, text=True, cwd=self.data_home, **(account.popen_args() if account else {}),
        )  # fmt: skip
        if result.returncode != 0:
            tail = " | ".join(line for line in result.stderr.strip().splitlines()[-3:])
            raise StackError(f"initdb failed: {tail} (datadir {self.data})")

    def start(self) -> None:
        if self.process.running():
            self._bootstrap()  # converge roles and schema, e.g. after a password change
            return
        bindir = find_bindir()
        claim_port("postgres", self.port, "--postgres-port")
        account = self._prepare_home()
        if not (self.data / "PG_VERSION").exists():
            self._initdb(bindir, account)
        self._write_config()
        if account is not None:
            for name in ("postgresql.conf", "pg_hba.conf"):
                os.chown(self.data / name, account.uid, account.gid)
        self.process.start([str(bindir / "postgres"), "-D", str(self.data)], cwd=self.data_home, run_as=account)
        wait_until(self._ping, timeout=60, what="PostgreSQL to accept connections", process=self.process)
        self._bootstrap()

    def _superuser(self, dbname: str = "postgres") -> psycopg.Connection[TupleRow]:
        conn = psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=dbname, autocommit=True, connect_timeout=3
        )
        # A failing ALTER ROLE ... PASSWORD would otherwise be written, password and all, to the log.
        conn.execute("SET log_min_error_statement = panic")
        return conn

    def _ping(self) -> bool | None:
        if not (self.socket_dir / f".s.PGSQL.{self.port}").exists():
            return None
        try:
            with self._superuser() as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return None  # still starting up ("the database system is starting up")
        return True

    def _bootstrap(self) -> None:
        """Idempotent: both roles, the database, then the schema and publication as the table owner."""
        config = self.config
        owner, dbz = sql.Identifier(config.db_user), sql.Identifier(config.debezium_user)
        database = sql.Identifier(config.database)
        try:
            with self._superuser() as conn:
                # dualrun owns the demo data; REPLICATION lets it inspect and drop the slots connectors leave.
                self._role(conn, config.db_user, config.db_password, "LOGIN NOSUPERUSER REPLICATION")
                # Debezium: logical replication and SELECT, nothing more (it owns nothing).
                self._role(conn, config.debezium_user, config.debezium_password, "LOGIN NOSUPERUSER REPLICATION")
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (config.database,)).fetchone()
                if exists is None:
                    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, owner))
                conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, dbz))
                conn.execute(
                    sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = shop, public").format(owner, database)
                )
            schema = (stack_dir() / "postgres" / "schema.sql").read_text()
            with self._superuser(config.database) as conn:
                conn.execute(sql.SQL("SET ROLE {}").format(owner))
                conn.execute(schema.encode())  # a file of ours with several statements: simple query protocol
                conn.execute(sql.SQL(GRANTS).format(schema=sql.Identifier("shop"), dbz=dbz))
        except psycopg.Error as exc:
            raise StackError(f"could not create the PostgreSQL demo schema and roles: {str(exc).strip()}") from exc

    @staticmethod
    def _role(conn: psycopg.Connection[TupleRow], name: str, password: str, attributes: str) -> None:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
        # The password goes as a literal in the statement (ALTER ROLE takes no parameters); the
        # server hashes it with SCRAM, and _superuser() keeps failed statements out of the log.
        conn.execute(
            sql.SQL("ALTER ROLE {} WITH " + attributes + " PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )

    def stop(self) -> bool:
        return self.process.stop(timeout=60)

    def status(self) -> ServiceStatus:
        pid = self.process.pid()
        version, detail, healthy = None, "not running", False
        if pid is not None:
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=self.port, user=self.config.db_user, password=self.config.db_password,
                    dbname=self.config.database, connect_timeout=3,
                ) as conn:  # fmt: skip
                    row = conn.execute(
                        "SELECT current_setting('server_version'), current_setting('wal_level'),"
                        " (SELECT count(*) FROM pg_replication_slots), pg_current_wal_lsn()::text"
                    ).fetchone()
                assert row is not None
                version = str(row[0])
                healthy = row[1] == "logical"
                detail = (
                    f"wal_level {row[1]}, {row[2]} replication slots, current LSN {format_lsn(parse_lsn(str(row[3])))}"
                )
                if self.relocated:
                    detail += f"; data in {self.data_home} (its account cannot enter the state dir)"
            except psycopg.Error as exc:
                detail = f"not answering: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}"
        return ServiceStatus(self.name, self.port, pid is not None, healthy, version, pid, detail)
