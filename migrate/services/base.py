"""What every local service offers the stack: start, stop and a status with evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from migrate.errors import PortInUse
from migrate.process import ManagedProcess, port_open


@dataclass(frozen=True)
class ServiceStatus:
    """One line of `dualrun stack status`."""

    name: str
    port: int
    running: bool
    healthy: bool
    version: str | None
    pid: int | None
    detail: str
    # False for an optional service this stack was never asked to run (e.g. PostgreSQL without
    # `--with postgres`): it is listed, but being down does not make the stack unhealthy.
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Service(Protocol):
    name: str
    port: int
    process: ManagedProcess

    def start(self) -> None:
        """Start if not running and block until healthy (polling with a timeout)."""

    def status(self) -> ServiceStatus:
        """Health probed now, with the version the service reports."""


def claim_port(service: str, port: int, flag: str) -> None:
    """Refuse to start on a port that another process already listens on."""
    if port_open(port):
        raise PortInUse(
            f"port {port} needed by {service} is already in use by another process; "
            f"stop that process or choose another port with {flag}"
        )
