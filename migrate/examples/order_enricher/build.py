"""Compile the OrderEnricher Maven project into STATE/lib/order-enricher, once per source version.

Like the stack's jars (migrate/artifacts.py): Maven resolves from Maven Central into ~/.m2 the first
time (scripts/setup does it ahead), then builds offline. The build is stamped with the sha256 of the
sources that go into the jar, so an edited topology is rebuilt and an unchanged one never is.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from migrate.errors import MissingTool, StackError

PROJECT = Path(__file__).parent
MAIN_CLASS = "io.dualrun.examples.orderenricher.OrderEnricher"
JAR = "order-enricher.jar"


@dataclass(frozen=True)
class EnricherBuild:
    """A built OrderEnricher: its jar and runtime dependencies under `lib_dir`."""

    lib_dir: Path

    @property
    def jar(self) -> Path:
        return self.lib_dir / JAR

    @property
    def classpath(self) -> str:
        """For `java -cp`: the jar, then every runtime dependency (a JVM classpath wildcard)."""
        return f"{self.jar}:{self.lib_dir / 'deps'}/*"


def source_digest(project: Path = PROJECT) -> str:
    """sha256 over pom.xml and src/main (path and content): what the jar is built from."""
    digest = hashlib.sha256()
    files = [project / "pom.xml", *sorted(p for p in (project / "src" / "main").rglob("*") if p.is_file())]
    for path in files:
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def ensure_enricher(state_dir: Path, project: Path = PROJECT) -> EnricherBuild:
    """The built job under STATE/lib/order-enricher, compiling it first unless the same sources did.

    Raises MissingTool without Maven or a JDK, StackError when Maven fails (its first error lines).
    Concurrent callers on one state directory build once: the others wait on a file lock.
    """
    lib = state_dir.absolute() / "lib" / "order-enricher"
    build = EnricherBuild(lib)
    stamp = lib / ".source-sha256"
    digest = source_digest(project)
    lib.parent.mkdir(parents=True, exist_ok=True)
    with (lib.parent / ".order-enricher.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text().strip() == digest and build.jar.exists():
            return build
        _compile(project, state_dir.absolute() / "build" / "order-enricher", lib)
        stamp.write_text(digest + "\n")
    return build


def _compile(project: Path, target: Path, lib: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingTool("Maven (mvn) not found: install it with `apt-get install maven`")
    if shutil.which("javac") is None:
        raise MissingTool("no Java compiler (javac): install a JDK with `apt-get install openjdk-17-jdk-headless`")
    shutil.rmtree(target, ignore_errors=True)
    # Tests are not compiled here: `mvn package` in the project (scripts/setup) runs them.
    cmd = [mvn, "-q", "-B", "-f", str(project / "pom.xml"), "-Dmaven.test.skip=true",
           f"-Denricher.build.dir={target}", "package"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stdout.splitlines() if "ERROR" in ln][:3]
        raise StackError(
            f"Maven could not build the OrderEnricher in {project}: {' '.join(errors) or proc.stderr.strip()[-300:]}"
        )
    shutil.rmtree(lib, ignore_errors=True)
    lib.mkdir(parents=True)
    shutil.copy2(target / JAR, lib / JAR)
    shutil.copytree(target / "deps", lib / "deps")
