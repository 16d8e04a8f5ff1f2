"""The pinned JVM artifacts of the local stack, fetched once with Maven into the state directory."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from migrate.errors import MissingTool, StackError

PROFILES = {
    "kafka": Path("kafka"),
    "debezium": Path("plugins") / "debezium",
    "jmx": Path("jmx"),
    # The Debezium JDBC sink (`stack up --with sink`): its own plugin folder, so its Hibernate and
    # JDBC drivers stay isolated from the source connectors.
    "sink": Path("plugins") / "jdbc-sink",
}


def stack_dir() -> Path:
    """Folder holding stack/pom.xml and the config templates (shipped inside the package)."""
    return Path(str(files("migrate") / "data" / "stack"))


@dataclass(frozen=True)
class Artifacts:
    """Where the fetched jars live: a classpath folder and Connect's plugin path."""

    lib_dir: Path

    @property
    def kafka_classpath(self) -> str:
        return str(self.lib_dir / PROFILES["kafka"]) + "/*"

    @property
    def plugin_path(self) -> Path:
        return self.lib_dir / "plugins"

    @property
    def jmx_agent(self) -> Path | None:
        """The Prometheus JMX exporter agent jar, or None in a lib dir fetched before it was pinned."""
        return next(iter(sorted((self.lib_dir / PROFILES["jmx"]).glob("jmx_prometheus_javaagent-*.jar"))), None)

    def jar_version(self, prefix: str) -> str | None:
        """Version of a fetched jar, e.g. jar_version('kafka-clients') -> '4.1.1'."""
        for folder in (self.lib_dir / p for p in PROFILES.values()):
            for jar in sorted(folder.glob(f"{prefix}-[0-9]*.jar")):
                return jar.name[len(prefix) + 1 : -len(".jar")]
        return None


def ensure_artifacts(state_dir: Path) -> Artifacts:
    """Copy the pinned jars into STATE/lib unless the same POM already put them there."""
    pom = stack_dir() / "pom.xml"
    lib = state_dir / "lib"
    stamp = lib / ".pom-sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == digest:
        return Artifacts(lib)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingTool("Maven (mvn) not found: install it with `apt-get install maven`")
    shutil.rmtree(lib, ignore_errors=True)
    for profile, target in PROFILES.items():
        cmd = [
            mvn, "-q", "-B", "-f", str(pom), "-P", profile,
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={lib / target}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            errors = [ln for ln in proc.stdout.splitlines() if "ERROR" in ln][:2]
            raise StackError(
                f"Maven could not fetch the {profile} artifacts pinned in {pom}: "
                f"{' '.join(errors) or proc.stderr.strip()[-300:]}"
            )
    stamp.write_text(digest + "\n")
    return Artifacts(lib)
