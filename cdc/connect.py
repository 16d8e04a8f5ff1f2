"""A small Kafka Connect REST client: register, status, pause/resume/restart, delete, offsets."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from typing import Any

import requests

from cdc.client import mask_url_passwords
from cdc.connector import redact
from cdc.errors import ConnectAccessDenied, ConnectError, ConnectorNotFound, ConnectUnreachable

# 409: a rebalance is in progress; 5xx: the worker is restarting. Both pass on their own.
TRANSIENT_STATUS = {409, 500, 502, 503, 504}


def summarise_trace(trace: str | None) -> str | None:
    """A Java stack trace -> its first line and its root cause, on one line."""
    if not trace:
        return None
    lines = [ln.strip() for ln in trace.splitlines() if ln.strip()]
    head = lines[0]
    causes = [ln for ln in lines if ln.startswith("Caused by:")]
    root = causes[-1].removeprefix("Caused by:").strip() if causes else None
    return head if root is None or root in head else f"{head} | root cause: {root}"


@dataclass(frozen=True)
class TaskStatus:
    id: int
    state: str
    worker: str | None
    error: str | None


@dataclass(frozen=True)
class ConnectorStatus:
    """State of a connector and its tasks; `error` is the summarised failure, if any."""

    name: str
    state: str
    worker: str | None
    tasks: tuple[TaskStatus, ...]
    error: str | None

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and bool(self.tasks) and all(t.state == "RUNNING" for t in self.tasks)

    @property
    def failed(self) -> bool:
        return self.state == "FAILED" or any(t.state == "FAILED" for t in self.tasks)

    @property
    def reason(self) -> str | None:
        return self.error or next((t.error for t in self.tasks if t.error), None)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "running": self.running, "failed": self.failed, "reason": self.reason}


def _ssl_reason(exc: Exception) -> str:
    """The most specific part of a requests SSL error, e.g. 'certificate verify failed: self-signed
    certificate in certificate chain'.

    >>> _ssl_reason(Exception("SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
    ...                       "certificate verify failed: self-signed certificate (_ssl.c:1006)')))"))
    'certificate verify failed: self-signed certificate'
    """
    text = str(exc)
    found = re.search(r"certificate verify failed: ([^(']+?)\s*(?:\(_ssl|'|$)", text)
    if found:
        return f"certificate verify failed: {found.group(1).strip()}"
    marker = text.rfind("SSLError(")
    return (text[marker + 9 :] if marker >= 0 else text).strip(" )'\"")[:200]


class ConnectClient:
    """Talks to one Connect worker; retries transient failures with exponential backoff.

    `auth` is (user, password) for HTTP basic auth; `verify` is the CA bundle that signed an HTTPS
    worker's certificate (a path), or True for the system's CAs. Secrets and the password are masked
    in every error.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        retries: int = 5,
        secrets: tuple[str, ...] = (),
        *,
        auth: tuple[str, str] | None = None,
        verify: str | bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.secrets = tuple(s for s in (*secrets, auth[1] if auth else "") if s)
        self.session = requests.Session()
        self.session.auth = auth
        self.session.verify = verify
        self.verify = verify  # also given per request: requests lets REQUESTS_CA_BUNDLE override a session's

    def _scrub(self, text: str) -> str:
        """`text` with the known secrets masked, and any URL's password too (a connector's trace may
        quote a connection URL whose password dualrun was never given)."""
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return mask_url_passwords(text)

    def _request(self, method: str, path: str, body: Any = None, name: str | None = None) -> Any:
        delay = 0.25
        for attempt in range(self.retries + 1):
            try:
                response = self.session.request(
                    method, self.url + path, json=body, timeout=self.timeout, verify=self.verify
                )
            except requests.exceptions.SSLError as exc:
                raise ConnectUnreachable(
                    f"Kafka Connect at {self.url}: TLS handshake failed ({_ssl_reason(exc)}); "
                    "give the CA that signed its certificate (cdc.connect_ca)"
                ) from None
            except requests.ConnectionError as exc:
                if attempt == self.retries:
                    raise ConnectUnreachable(
                        f"Kafka Connect is not reachable at {self.url}; start it with `dualrun stack up` "
                        "or pass the right --connect-url"
                    ) from exc
            except requests.Timeout as exc:
                if attempt == self.retries:
                    raise ConnectUnreachable(
                        f"Kafka Connect at {self.url} did not answer within {self.timeout}s"
                    ) from exc
            else:
                if response.status_code == 401 and self.session.auth is None:
                    raise ConnectAccessDenied(
                        f"Kafka Connect at {self.url} wants a login (HTTP 401) and none was given; "
                        "set cdc.connect_user and cdc.connect_password_env"
                    )
                if response.status_code in (401, 403):
                    raise ConnectAccessDenied(
                        f"Kafka Connect at {self.url} refused the credentials (HTTP {response.status_code}); "
                        "check cdc.connect_user and the variable named by cdc.connect_password_env"
                    )
                if response.status_code == 404 and name is not None:
                    raise ConnectorNotFound(
                        f"no connector named {name!r} on {self.url}; register it with `dualrun cdc register`"
                    )
                if response.status_code not in TRANSIENT_STATUS or attempt == self.retries:
                    if response.status_code >= 400:
                        raise ConnectError(self._scrub(
                            f"Kafka Connect at {self.url} refused {method} {path}: "
                            f"HTTP {response.status_code}: {_message(response)}"
                        ))  # fmt: skip
                    return response.json() if response.content else None
            time.sleep(delay)
            delay = min(delay * 2, 4.0)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def plugins(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "/connector-plugins")
        return result

    def connectors(self) -> list[str]:
        result: list[str] = self._request("GET", "/connectors")
        return result

    def validate(self, config: dict[str, str]) -> list[str]:
        """Connect's own validation: one 'field: message' per error, secrets scrubbed."""
        plugin = config["connector.class"].rsplit(".", 1)[-1]
        result = self._request("PUT", f"/connector-plugins/{plugin}/config/validate", config)
        errors = []
        for entry in result.get("configs", []):
            value = entry.get("value", {})
            for message in value.get("errors", []):
                errors.append(self._scrub(f"{value.get('name')}: {message}"))
        return errors

    def put(self, name: str, config: dict[str, str]) -> dict[str, Any]:
        """Create or update (PUT is idempotent); returns the stored config, secrets masked."""
        result = self._request("PUT", f"/connectors/{name}/config", config)
        return {"name": result.get("name", name), "config": redact(result.get("config", {}))}

    def config(self, name: str) -> dict[str, Any]:
        return redact(self._request("GET", f"/connectors/{name}/config", name=name))

    def status(self, name: str) -> ConnectorStatus:
        raw = self._request("GET", f"/connectors/{name}/status", name=name)
        connector = raw.get("connector", {})
        tasks = tuple(
            TaskStatus(
                int(t["id"]), t["state"], t.get("worker_id"), self._scrub(summarise_trace(t.get("trace")) or "") or None
            )
            for t in raw.get("tasks", [])
        )
        error = summarise_trace(connector.get("trace"))
        return ConnectorStatus(name, connector.get("state", "UNKNOWN"), connector.get("worker_id"), tasks,
                               self._scrub(error) if error else None)  # fmt: skip

    def topics(self, name: str) -> tuple[str, ...]:
        """The topics Connect has seen the connector write to (KIP-558 active topics); empty until it delivers."""
        result = self._request("GET", f"/connectors/{name}/topics", name=name) or {}
        return tuple(result.get(name, {}).get("topics", []))

    def wait_settled(self, name: str, timeout: float) -> ConnectorStatus:
        """Poll until the connector and its tasks are RUNNING, or something FAILED, or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = self.status(name)
            except ConnectorNotFound:
                # Connect answers 404 until a new connector's status reaches its status topic.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)
                continue
            if status.running or status.failed or time.monotonic() > deadline:
                return status
            time.sleep(0.25)

    def pause(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/pause", name=name)

    def stop(self, name: str) -> None:
        """Stop the connector and shut its tasks down, keeping its config and offsets (KIP-875, Kafka
        3.5+): unlike pause, no task keeps reading the source; `resume` starts it from its offsets."""
        self._request("PUT", f"/connectors/{name}/stop", name=name)

    def resume(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/resume", name=name)

    def restart(self, name: str, include_tasks: bool = True, only_failed: bool = False) -> None:
        query = f"?includeTasks={str(include_tasks).lower()}&onlyFailed={str(only_failed).lower()}"
        self._request("POST", f"/connectors/{name}/restart{query}", name=name)

    def delete(self, name: str) -> None:
        self._request("DELETE", f"/connectors/{name}", name=name)

    def offsets(self, name: str) -> list[dict[str, Any]]:
        """The source offsets Connect has committed for the connector (partition -> offset)."""
        result: list[dict[str, Any]] = self._request("GET", f"/connectors/{name}/offsets", name=name).get("offsets", [])
        return result


def _message(response: requests.Response) -> str:
    """Connect's error message on one line, without its pointer to the validate endpoint."""
    try:
        text = str(response.json().get("message", response.text))
    except ValueError:
        text = response.text[:300]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("You can also find")]
    return " ".join(lines)
