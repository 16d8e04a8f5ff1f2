"""Monitoring services of `dualrun stack up --monitoring`: dualrun's exporter, Alertmanager and Prometheus.

Prometheus and Alertmanager are Debian's `prometheus` and `prometheus-alertmanager` packages,
run as the invoking user, root included, like Kafka and Connect: a dropped account (the package's
`prometheus`) could not enter a private (0700) state dir or home, nor read the console templates
shipped inside the package, nor the target files the streaming jobs write. Their config and data
live under `<state_dir>/monitoring`. DUALRUN_MONITORING_INTERVAL (scrape and rule
evaluation interval, default 15s) and DUALRUN_ALERT_FOR (every alert's `for:`, default as shipped)
let tests see alerts within seconds.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import requests
import yaml

from migrate.errors import MissingTool, StackError
from migrate.metrics import STREAM_JOB, TARGETS_DIR, TEXTFILE_DIR, monitoring_dir
from migrate.process import ManagedProcess, RunAs, wait_until
from migrate.services.base import ServiceStatus, claim_port
from migrate.stackconfig import StackConfig

INSTALL_HINT = "install it with `apt-get install prometheus prometheus-alertmanager`"
CONSOLE_LIBRARIES = Path("/usr/share/doc/prometheus/examples/console_libraries")  # prom.lib, menu.lib


def data_dir() -> Path:
    """The shipped rules, Alertmanager config, JMX exporter rules and console templates."""
    return Path(str(files("migrate") / "data" / "monitoring"))


def interval() -> str:
    return os.environ.get("DUALRUN_MONITORING_INTERVAL") or "15s"


def alert_rules(for_override: str | None = None) -> str:
    """The shipped alert rules, every `for:` replaced by `for_override` when given (e.g. '0s')."""
    text = (data_dir() / "alerts.yml").read_text()
    if not for_override:
        return text
    rules = yaml.safe_load(text)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = for_override
    return "# Written by `dualrun stack up --monitoring` with DUALRUN_ALERT_FOR set.\n" + yaml.safe_dump(
        rules, sort_keys=False
    )


def prometheus_config(config: StackConfig, rules: Path) -> dict[str, Any]:
    """prometheus.yml: every service of the stack, and the streaming jobs that register a target file."""
    ports, every = config.ports, interval()

    def job(name: str, port: int) -> dict[str, Any]:
        return {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}

    targets = monitoring_dir(config.state_dir) / TARGETS_DIR
    return {
        "global": {
            "scrape_interval": every,
            "evaluation_interval": every,
            "scrape_timeout": every if _seconds(every) < 10 else "10s",
        },
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports.alertmanager}"]}]}]},
        "scrape_configs": [
            job("prometheus", ports.prometheus),
            job("alertmanager", ports.alertmanager),
            job("kafka", ports.kafka_jmx),
            job("connect", ports.connect_jmx),
            job("dualrun-exporter", ports.exporter),
            {
                "job_name": STREAM_JOB,
                "file_sd_configs": [{"files": [str(targets / "*.json")], "refresh_interval": every}],
            },
        ],
    }


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit) and duration[: -len(unit)].isdigit():
            return int(duration[: -len(unit)]) * units[unit]
    raise StackError(f"DUALRUN_MONITORING_INTERVAL={duration!r} is not a duration such as 15s or 1m")


def binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        raise MissingTool(f"{name} not found: {INSTALL_HINT}")
    return found


def ready(url: str) -> bool | None:
    try:
        return True if requests.get(url, timeout=2).status_code == 200 else None
    except requests.RequestException:
        return None


class _HttpService:
    """A monitoring process with a readiness URL; subclasses give its command line."""

    name = ""
    ready_path = "/-/ready"

    def __init__(self, config: StackConfig, port: int) -> None:
        self.config = config
        self.port = port
        self.home = monitoring_dir(config.state_dir)
        self.process = ManagedProcess(
            self.name, self.home / f"{self.name}.pid", self.home / f"{self.name}.log", str(config.state_dir)
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], RunAs | None]:
        raise NotImplementedError

    def start(self) -> None:
        if self.process.running():
            return
        claim_port(self.name, self.port, f"DUALRUN_{self.name.upper()}_PORT")
        for folder in (TARGETS_DIR, TEXTFILE_DIR):
            (self.home / folder).mkdir(parents=True, exist_ok=True)
        argv, runas = self.command()
        self.process.start(argv, cwd=self.home, run_as=runas)
        wait_until(
            lambda: ready(self.url + self.ready_path),
            timeout=60,
            what=f"{self.name} on {self.url}",
            process=self.process,
        )

    def stop(self) -> bool:
        return self.process.stop(timeout=30)

    def status(self) -> ServiceStatus:
        pid = self.process.pid()
        healthy = pid is not None and ready(self.url + self.ready_path) is not None
        detail = "not running" if pid is None else ("ready" if healthy else "not answering")
        return ServiceStatus(self.name, self.port, pid is not None, healthy, None, pid, detail)


class Exporter(_HttpService):
    """dualrun's exporter (migrate.exporter): consumer-group lag and the one-shot commands' metrics."""

    name = "exporter"
    ready_path = "/metrics"

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, config.ports.exporter)

    def command(self) -> tuple[list[str], RunAs | None]:
        return [
            sys.executable,
            "-m",
            "migrate.exporter",
            "--state-dir",
            str(self.config.state_dir),
            "--port",
            str(self.port),
        ], None


class Alertmanager(_HttpService):
    name = "alertmanager"

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, config.ports.alertmanager)

    def command(self) -> tuple[list[str], RunAs | None]:
        settings = self.home / "alertmanager.yml"
        if not settings.exists():  # the user's to edit (receivers): never overwritten
            self.home.mkdir(parents=True, exist_ok=True)
            settings.write_text((data_dir() / "alertmanager.yml").read_text())
        storage = self.home / "alertmanager"
        storage.mkdir(parents=True, exist_ok=True)
        return [
            binary("prometheus-alertmanager"),
            f"--config.file={settings}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # one node: no gossip port (its default 9094) to collide
        ], None


class Prometheus(_HttpService):
    name = "prometheus"

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, config.ports.prometheus)

    def command(self) -> tuple[list[str], RunAs | None]:
        rules = self.home / "alerts.yml"
        rules.write_text(alert_rules(os.environ.get("DUALRUN_ALERT_FOR")))
        settings = self.home / "prometheus.yml"
        settings.write_text(
            "# Written by `dualrun stack up --monitoring` on every start; edits are overwritten.\n"
            + yaml.safe_dump(prometheus_config(self.config, rules), sort_keys=False)
        )
        storage = self.home / "prometheus"
        storage.mkdir(parents=True, exist_ok=True)
        argv = [
            binary("prometheus"),
            f"--config.file={settings}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.console.templates={data_dir() / 'consoles'}",
            "--storage.tsdb.retention.time=15d",
        ]
        if CONSOLE_LIBRARIES.is_dir():
            argv.append(f"--web.console.libraries={CONSOLE_LIBRARIES}")
        return argv, None


def jmx_agent(jar: Path | None, port: int) -> list[str]:
    """The JVM option that loads the JMX exporter agent with dualrun's rules on 127.0.0.1:`port`."""
    if jar is None:
        raise StackError("the JMX exporter agent jar is missing; run `dualrun stack fetch`")
    return [f"-javaagent:{jar}=127.0.0.1:{port}:{data_dir() / 'jmx-exporter.yml'}"]
