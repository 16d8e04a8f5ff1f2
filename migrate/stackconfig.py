"""Settings of the local stack: where its state lives, its ports and its local credentials."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from migrate.errors import SpecError

if TYPE_CHECKING:
    from cdc.client import KafkaSettings
    from cdc.connect import ConnectClient

DEFAULT_STATE_DIR = Path(".dualrun")


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _env_port(name: str) -> int:
    """The port in environment variable `name`; SpecError (exit 2) unless it is 1-65535."""
    text = os.environ[name].strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise SpecError(f"{name}: {text!r} is not a port (1-65535); fix or unset it")
    return int(text)


@dataclass(frozen=True)
class Ports:
    mariadb: int = 3306
    kafka: int = 9092
    controller: int = 9093
    connect: int = 8083
    postgres: int = 5432
    # Monitoring (`dualrun stack up --monitoring`). Never Alertmanager's own default 9093: the KRaft
    # controller's; nor 9094, which Alertmanager's cluster listener would take (it is turned off).
    prometheus: int = 9090
    alertmanager: int = 9095
    kafka_jmx: int = 9404  # the JMX exporter agent in the broker
    connect_jmx: int = 9405  # the JMX exporter agent in the Connect worker
    exporter: int = 9406  # dualrun's own exporter: consumer-group lag, parity, one-shot commands' metrics


PORT_NAMES = tuple(f.name for f in fields(Ports))  # each overridable by DUALRUN_<NAME>_PORT


@dataclass(frozen=True)
class StackConfig:
    """Everything `dualrun stack` needs. Passwords are local-only defaults, overridable by env."""

    state_dir: Path = DEFAULT_STATE_DIR
    ports: Ports = field(default_factory=Ports)
    db_user: str = "dualrun"
    db_password: str = field(default="dualrun", repr=False)
    debezium_user: str = "debezium"
    debezium_password: str = field(default="debezium", repr=False)
    database: str = "shop"
    # The publication the table owner creates in PostgreSQL for the stack's demo tables.
    postgres_publication: str = "dualrun_shop"
    # `stack up --secure`: Kafka on SASL_SSL with ACLs (see migrate.services.security).
    secure: bool = False

    @classmethod
    def from_env(cls, state_dir: Path | None = None, **ports: int | None) -> StackConfig:
        """Defaults, then DUALRUN_* environment variables, then explicit arguments."""
        home = state_dir or Path(_env("DUALRUN_HOME", str(DEFAULT_STATE_DIR)))
        chosen = {k: v for k, v in ports.items() if v is not None}
        env_ports = {
            name: _env_port(f"DUALRUN_{name.upper()}_PORT")
            for name in PORT_NAMES
            if os.environ.get(f"DUALRUN_{name.upper()}_PORT")
        }
        return cls(
            secure=(home / "secure" / "enabled").exists(),
            state_dir=home.absolute(),
            ports=replace(Ports(), **{**env_ports, **chosen}),
            db_password=_env("DUALRUN_DB_PASSWORD", "dualrun"),
            debezium_password=_env("DUALRUN_DEBEZIUM_PASSWORD", "debezium"),
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    def kafka(self, user: str = "dualrun") -> KafkaSettings:
        """Client settings for the stack's Kafka as `user` (the secured stack's users: admin, connect,
        debezium, stream, dualrun); plaintext unless the stack is secured."""
        from cdc.client import KafkaSettings

        if not self.secure:
            return KafkaSettings(self.bootstrap_servers)
        from migrate.services.security import SecureStack

        return SecureStack(self.state_dir).client(self.bootstrap_servers, user)

    @property
    def connect_secrets_file(self) -> Path:
        """The secrets Connect's FileConfigProvider resolves: the sink's `connection.password` (the
        stack's PostgreSQL) and Debezium's `database.password`; written by `services.connect`."""
        return self.state_dir / "connect" / "secrets.properties"

    @property
    def connect_url(self) -> str:
        """Connect's REST API: HTTPS with basic auth on the secured stack (see `connect_http`)."""
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.ports.connect}"

    def connect_http(self) -> dict[str, Any]:
        """`requests` keyword arguments for Connect's REST API: `auth` (user, password) and `verify`
        (the local CA's file) on the secured stack; nothing on the plaintext one."""
        if not self.secure:
            return {}
        from migrate.services.security import SecureStack

        material = SecureStack(self.state_dir)
        return {"auth": material.connect_auth(), "verify": str(material.ca)}

    def connect_client(self, url: str | None = None, secrets: tuple[str, ...] = ()) -> ConnectClient:
        """A client of the stack's Connect worker (or of `url`: the stack's login only for the stack's URL)."""
        from cdc.connect import ConnectClient

        options = self.connect_http() if url in (None, self.connect_url) else {}
        return ConnectClient(url or self.connect_url, secrets=secrets, **options)

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    def postgres_url(self, *, password: bool = True) -> str:
        """SQLAlchemy URL of the stack's PostgreSQL `shop` database as the dualrun user.

        >>> StackConfig().postgres_url(password=False)
        'postgresql+psycopg://dualrun@127.0.0.1:5432/shop'
        """
        return self._url("postgresql+psycopg", self.ports.postgres, password)

    def mariadb_url(self, *, password: bool = True) -> str:
        """SQLAlchemy URL of the stack's MariaDB `shop` database as the dualrun user."""
        return self._url("mysql+pymysql", self.ports.mariadb, password)

    def _url(self, scheme: str, port: int, password: bool) -> str:
        secret = f":{quote(self.db_password, safe='')}" if password else ""
        return f"{scheme}://{quote(self.db_user, safe='')}{secret}@127.0.0.1:{port}/{self.database}"

    def to_dict(self) -> dict[str, Any]:
        """Settings safe to print: no password ever leaves this object through here."""
        return {
            "state_dir": str(self.state_dir),
            "ports": vars(self.ports).copy(),
            "db_user": self.db_user,
            "debezium_user": self.debezium_user,
            "database": self.database,
            "bootstrap_servers": self.bootstrap_servers,
            "secure": self.secure,
            "connect_url": self.connect_url,
            "postgres_url": self.postgres_url(password=False),
        }
