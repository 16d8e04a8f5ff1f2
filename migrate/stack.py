"""The local stack: MariaDB, PostgreSQL, Kafka (KRaft) and Kafka Connect with Debezium, on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrate.artifacts import Artifacts, ensure_artifacts
from migrate.services.base import Service, ServiceStatus, claim_port
from migrate.services.connect import Connect
from migrate.services.kafka import Kafka
from migrate.services.mariadb import MariaDB
from migrate.services.postgres import Postgres
from migrate.stackconfig import StackConfig


@dataclass(frozen=True)
class StackStatus:
    """Every service's status, in start order."""

    services: tuple[ServiceStatus, ...]

    @property
    def healthy(self) -> bool:
        return all(s.healthy for s in self.services)

    def to_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "services": [s.to_dict() for s in self.services]}


class Stack:
    """Starts services in dependency order and stops them in reverse."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    def _artifacts(self) -> Artifacts | None:
        lib = self.config.state_dir / "lib"
        return Artifacts(lib) if (lib / ".pom-sha256").exists() else None

    def services(self, artifacts: Artifacts | None = None) -> tuple[Service, ...]:
        jars = artifacts or self._artifacts()
        return (MariaDB(self.config), Postgres(self.config), Kafka(self.config, jars), Connect(self.config, jars))

    def up(self, progress: Callable[[str], None] = lambda _: None) -> dict[str, float]:
        """Start whatever is not running; returns seconds spent per step. Idempotent."""
        timings: dict[str, float] = {}
        self.preflight()
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        progress("artifacts")
        artifacts = ensure_artifacts(self.config.state_dir)
        timings["artifacts"] = time.monotonic() - started
        services = self.services(artifacts)
        for service in services:
            if isinstance(service, Postgres) and not service.process.running():
                service.check()  # e.g. a state dir its account cannot reach: say so before MariaDB starts
        for service in services:
            progress(service.name)
            started = time.monotonic()
            service.start()
            timings[service.name] = time.monotonic() - started
        return timings

    def preflight(self) -> None:
        """Fail before starting anything if a port a stopped service needs is taken."""
        ports = self.config.ports
        needs = {"mariadb": [("mariadb", ports.mariadb, "--mariadb-port")],
                 "postgres": [("postgres", ports.postgres, "--postgres-port")],
                 "kafka": [("kafka", ports.kafka, "--kafka-port"),
                           ("kafka controller", ports.controller, "--controller-port")],
                 "connect": [("connect", ports.connect, "--connect-port")]}  # fmt: skip
        for service in self.services():
            if not service.process.running():
                for name, port, flag in needs[service.name]:
                    claim_port(name, port, flag)

    def down(self) -> list[str]:
        """Stop only what this state directory started; returns the names stopped."""
        return [s.name for s in reversed(self.services()) if s.process.stop(timeout=60)]

    def status(self) -> StackStatus:
        return StackStatus(tuple(s.status() for s in self.services()))
