"""The local stack: MariaDB, Kafka (KRaft) and Kafka Connect with Debezium on 127.0.0.1; PostgreSQL on request."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from migrate.artifacts import Artifacts, ensure_artifacts
from migrate.errors import StackError
from migrate.process import port_open
from migrate.services.base import Service, ServiceStatus, claim_port
from migrate.services.connect import Connect
from migrate.services.kafka import Kafka
from migrate.services.mariadb import MariaDB
from migrate.services.monitoring import Alertmanager, Exporter, Prometheus
from migrate.services.postgres import Postgres
from migrate.stackconfig import StackConfig

if TYPE_CHECKING:
    pass

ORDER = ("mariadb", "postgres", "kafka", "connect", "exporter", "alertmanager", "prometheus")  # stopped in reverse
DEFAULT = ("mariadb", "kafka", "connect")  # what `dualrun stack up` and the MariaDB demo need
MONITORING = ("exporter", "alertmanager", "prometheus")  # `dualrun stack up --monitoring`
OPTIONAL = tuple(name for name in ORDER if name not in DEFAULT)
SOURCE_SERVICE = {"mariadb": "mariadb", "mysql": "mariadb", "postgres": "postgres"}
RECORD = "stack.json"  # the services `up` started since the last `down`, under the state dir


def needed_services(source_kind: str) -> tuple[str, ...]:
    """The services a dual run over a `source_kind` source needs from the local stack: its source
    database, Kafka, Connect.

    >>> needed_services("postgres")
    ('postgres', 'kafka', 'connect')
    """
    wanted = {SOURCE_SERVICE[source_kind], "kafka", "connect"}
    return tuple(name for name in ORDER if name in wanted)


@dataclass(frozen=True)
class StackStatus:
    """Every service's status, in start order; `healthy` counts the required and the running ones."""

    services: tuple[ServiceStatus, ...]

    @property
    def healthy(self) -> bool:
        return all(s.healthy for s in self.services if s.required or s.running)

    def to_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "services": [s.to_dict() for s in self.services]}


def switch_security(config: StackConfig, secure: bool) -> StackConfig:
    """`config` secured (or not) from now on; StackError while Kafka or Connect runs the other way."""
    from migrate.services.security import SecureStack

    if secure != config.secure:
        running = [s.name for s in Stack(config).services() if s.name in ("kafka", "connect") and s.process.running()]
        if running:
            mode = "secured" if config.secure else "without security"
            raise StackError(
                f"{' and '.join(running)} run {mode}; stop them with `dualrun stack down`, then "
                f"`dualrun stack up {'--secure' if secure else '--plaintext'}`"
            )
    material = SecureStack(config.state_dir)
    if secure:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        material.enable(config.bootstrap_servers, replace(config, secure=True).connect_url)
    else:
        material.disable()
    return replace(config, secure=secure)


class Stack:
    """Starts the services it is asked for in dependency order, and stops them in reverse.

    `services` names what `up` starts (default: MariaDB, Kafka, Connect); names from
    ORDER. Whatever `up` started is recorded in <state_dir>/stack.json until `down`, so
    `status` holds those services to being healthy and shows the others as optional.
    """

    def __init__(self, config: StackConfig, services: Iterable[str] = DEFAULT) -> None:
        self.config = config
        self.wanted = frozenset(services)
        unknown = sorted(self.wanted - set(ORDER))
        if unknown:
            raise StackError(f"unknown service(s) {', '.join(unknown)}; the stack runs {', '.join(ORDER)}")

    def _artifacts(self) -> Artifacts | None:
        lib = self.config.state_dir / "lib"
        return Artifacts(lib) if (lib / ".pom-sha256").exists() else None

    @property
    def monitored(self) -> bool:
        """Prometheus is (or was asked to be) part of this stack: the broker and Connect load the JMX agent."""
        return "prometheus" in self.wanted | self.recorded()

    def services(self, artifacts: Artifacts | None = None) -> tuple[Service, ...]:
        """All services, in start order (whether or not this stack runs them)."""
        jars, watched = artifacts or self._artifacts(), self.monitored
        return (MariaDB(self.config), Postgres(self.config), Kafka(self.config, jars, monitored=watched),
                Connect(self.config, jars, monitored=watched), Exporter(self.config), Alertmanager(self.config),
                Prometheus(self.config))  # fmt: skip

    def recorded(self) -> frozenset[str]:
        """The services `up` started in this state dir since the last `down` (empty if none)."""
        try:
            names = json.loads((self.config.state_dir / RECORD).read_text())["services"]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return frozenset()
        return frozenset(n for n in names if n in ORDER)

    def _record(self, names: Iterable[str]) -> None:
        ordered = [n for n in ORDER if n in set(names)]
        (self.config.state_dir / RECORD).write_text(json.dumps({"services": ordered}) + "\n")

    def _to_start(self, services: tuple[Service, ...]) -> tuple[Service, ...]:
        # What was started before and not stopped stays part of the stack (e.g. a crashed PostgreSQL).
        keep = self.wanted | self.recorded()
        return tuple(s for s in services if s.name in keep)

    def up(self, progress: Callable[[str], None] = lambda _: None) -> dict[str, float]:
        """Start whichever wanted service is not running; returns seconds spent per step. Idempotent."""
        timings: dict[str, float] = {}
        self.preflight()
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        progress("artifacts")
        artifacts = ensure_artifacts(self.config.state_dir)
        timings["artifacts"] = time.monotonic() - started
        services = self._to_start(self.services(artifacts))
        for service in services:
            if isinstance(service, Postgres) and not service.process.running():
                service.check()  # e.g. no `postgres` account to run as: say so before MariaDB starts
        self._record(self.recorded() | {s.name for s in services})
        for service in services:
            progress(service.name)
            started = time.monotonic()
            service.start()
            timings[service.name] = time.monotonic() - started
        return timings

    def preflight(self) -> None:
        """Fail before starting anything if a port a stopped, wanted service needs is taken."""
        ports = self.config.ports
        needs = {"mariadb": [("mariadb", ports.mariadb, "--mariadb-port")],
                 "postgres": [("postgres", ports.postgres, "--postgres-port")],
                 "kafka": [("kafka", ports.kafka, "--kafka-port"),
                           ("kafka controller", ports.controller, "--controller-port")],
                 "connect": [("connect", ports.connect, "--connect-port")],
                 "exporter": [("exporter", ports.exporter, "DUALRUN_EXPORTER_PORT")],
                 "alertmanager": [("alertmanager", ports.alertmanager, "DUALRUN_ALERTMANAGER_PORT")],
                 "prometheus": [("prometheus", ports.prometheus, "DUALRUN_PROMETHEUS_PORT")]}  # fmt: skip
        for service in self._to_start(self.services()):
            if not service.process.running():
                for name, port, flag in needs[service.name]:
                    claim_port(name, port, flag)

    def down(self) -> list[str]:
        """Stop only what this state directory started; returns the names stopped."""
        stopped = [s.name for s in reversed(self.services()) if s.process.stop(timeout=60)]
        (self.config.state_dir / RECORD).unlink(missing_ok=True)
        return stopped

    def status(self) -> StackStatus:
        """Every service probed now; the ones this stack was never asked for are marked not required."""
        required = self.recorded() or frozenset(DEFAULT)
        statuses = []
        for service in self.services():
            status = service.status()
            if status.pid is not None and not status.healthy and not port_open(status.port):
                # This state dir's process runs, but not on the port asked about (another
                # --*-port, or still starting): its pid would pass for what serves the port.
                status = replace(status, pid=None, detail=f"nothing listens on :{status.port}")
            if service.name not in required:
                detail = status.detail
                if not status.running and service.name in MONITORING:
                    detail = "not started (optional): `dualrun stack up --monitoring` starts it"
                elif not status.running and service.name in OPTIONAL:
                    detail = f"not started (optional): `dualrun stack up --with {service.name}` starts it"
                elif not status.running:
                    detail = "not started: this stack does not need it"
                status = replace(status, required=False, detail=detail)
            statuses.append(status)
        return StackStatus(tuple(statuses))
