"""A stack of its own for the fault-injection suite: it kills the broker, Connect and MariaDB.

Never the shared test stack: this one lives in a fresh state directory under /tmp, on free
ports, and is torn down when the session ends. Only the jars are shared (read) with the
usual state directory, to skip fetching them again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from confluent_kafka import Consumer

from cdc.connect import ConnectClient
from cdc.position import Position
from cdc.topics import TopicAdmin, quiet_logger
from migrate.artifacts import Artifacts, ensure_artifacts
from migrate.batch import snapshot_position, source_url
from migrate.commands.run import start_stream_background, stream_process
from migrate.connector import ensure_connector
from migrate.examples.shop_orders.workload import Workload
from migrate.process import ManagedProcess, port_open
from migrate.progress import wait_for_stream
from migrate.services.connect import Connect
from migrate.services.kafka import Kafka
from migrate.services.mariadb import MariaDB
from migrate.spec import PipelineSpec, load_spec
from migrate.stackconfig import Ports, StackConfig
from migrate.stream.status import StreamStatus, read_status
from migrate.stream.wire import POSITION_HEADER
from tests.integration.conftest import Database
from tests.integration.migrate.conftest import make_pipeline

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill9(process: ManagedProcess, *ports: int) -> None:
    """SIGKILL, then wait until the process is gone: no clean shutdown, as in a crash."""
    pid = process.pid()
    assert pid is not None, f"{process.name} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    # Gone for good: a dying JVM frees its heap before it closes its sockets, and until then its port
    # still answers (and a restart would find it taken).
    while not _gone(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # the stack's services are this process's children
        time.sleep(0.05)
    assert _gone(pid), f"{process.name} (pid {pid}) survived SIGKILL"
    for port in ports:
        while port_open(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        if port_open(port):
            holders = subprocess.run(["ss", "-tanp", f"sport = :{port}"], capture_output=True, text=True).stdout
            raise AssertionError(f"port {port} still answers after {process.name} died:\n{holders}")


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"  # a zombie holds no sockets


@dataclass
class FaultStack:
    config: StackConfig
    mariadb: MariaDB
    kafka: Kafka
    connect: Connect

    def down(self) -> None:
        for service in (self.connect, self.kafka, self.mariadb):
            service.stop()


def _artifacts(home: Path) -> Artifacts:
    shared = Path(os.environ.get("DUALRUN_HOME") or ROOT / ".dualrun")
    if (shared / "lib" / ".pom-sha256").exists():
        return ensure_artifacts(shared)  # same POM: returns the jars already there, changes nothing
    return ensure_artifacts(home)


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[FaultStack]:
    home = Path(tempfile.mkdtemp(prefix="dualrun-faults-"))
    ports = Ports(mariadb=free_port(), kafka=free_port(), controller=free_port(), connect=free_port(),
                  postgres=free_port())  # fmt: skip
    config = StackConfig(state_dir=home, ports=ports)
    artifacts = _artifacts(home)
    stack = FaultStack(config, MariaDB(config), Kafka(config, artifacts), Connect(config, artifacts))
    try:
        for service in (stack.mariadb, stack.kafka, stack.connect):
            service.start()
        yield stack
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def fault_pipeline(fault_stack: FaultStack) -> Iterator[PipelineSpec]:
    for service in (fault_stack.mariadb, fault_stack.kafka, fault_stack.connect):
        service.start()  # a scenario that failed mid-fault may have left one down
    name = f"f_{uuid.uuid4().hex[:8]}"
    # Not tmp_path: pytest sessions running beside this one prune old basetemp dirs, this one's too.
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=fault_stack.config.state_dir))
    spec = _off_the_local_stack(make_pipeline(fault_stack.config, Database(fault_stack.config), home, name))
    ensure_connector(spec)
    yield spec
    stream_process(spec).stop(timeout=60)
    # Every connector left running reads the whole binlog; Connect may be what the test broke.
    with contextlib.suppress(Exception):
        ConnectClient(spec.cdc.connect_url, secrets=(spec.cdc.password(),)).delete(spec.cdc.connector)


def _off_the_local_stack(spec: PipelineSpec) -> PipelineSpec:
    """The same spec without `local: true`, written back to its file for the background job.

    `local: true` makes a spec follow the shared stack's ports (DUALRUN_*_PORT); this stack has ports
    of its own, so the job must read the spec's ports as written, and passwords from variables named
    for this suite (set here, so no other test sees them).
    """
    config = {
        "DUALRUN_FAULTS_DB_PASSWORD": spec.source.password(),
        "DUALRUN_FAULTS_DEBEZIUM_PASSWORD": spec.cdc.password(),
    }
    os.environ.update(config)
    data = spec.model_dump(mode="json")
    data["local"] = False
    data["source"]["password_env"] = "DUALRUN_FAULTS_DB_PASSWORD"
    data["cdc"]["password_env"] = "DUALRUN_FAULTS_DEBEZIUM_PASSWORD"
    path = Path(spec.state_dir) / "dualrun.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


class Driver:
    """The reference workload on a thread, at a steady rate, that can be paused and resumed."""

    def __init__(self, spec: PipelineSpec, events: int, rate: float) -> None:
        self.spec, self.events, self.rate = spec, events, rate
        self.done = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.paused = False
        self.base = 0
        workload = self._workload()
        workload.seed(orders=100)
        workload.close()

    def _workload(self) -> Workload:
        spec = self.spec
        return Workload(spec.source.url, spec.source.password(), database=spec.source.database, seed=11, customers=20)

    def _run(self) -> None:
        workload = self._workload()
        try:
            workload.run(events=self.events - self.done, rate=self.rate, stop=self._stop,
                         progress=lambda n: setattr(self, "done", self.base + n))  # fmt: skip
        except BaseException as exc:  # surfaced by wait()
            self.error = exc
        finally:
            workload.close()

    def start(self) -> Driver:
        self.paused = False
        self.base = self.done
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        self.paused = True
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)

    def wait_for(self, done: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.done < done and self.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.error is None, f"workload failed: {self.error}"
        assert self.done >= done, f"workload reached {self.done} of {done} in {timeout}s"

    def finish(self, timeout: float = 300) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "workload did not finish"
        assert self.error is None, f"workload failed: {self.error}"


def source_position(spec: PipelineSpec) -> Position:
    engine = sa.create_engine(source_url(spec), pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            return snapshot_position(conn)
    finally:
        engine.dispose()


def wait_caught_up(spec: PipelineSpec, target: Position, timeout: float = 240) -> float:
    """Monotonic time at which the job's committed output covered `target` (the source position)."""
    progress = wait_for_stream(spec, target, timeout)
    assert progress.reached, f"the job did not catch up with {target} in {timeout}s: {progress.describe()}"
    return time.monotonic()


def start_job(spec: PipelineSpec) -> int:
    """The supervised background job, as `dualrun run stream --background` starts it; the job's own pid."""
    start_stream_background(spec, Path(spec.state_dir) / "dualrun.yaml")
    status = read_status(spec)
    assert status is not None
    return status.pid


def wait_status(spec: PipelineSpec, want: Callable[[StreamStatus], bool], timeout: float = 120) -> StreamStatus:
    deadline = time.monotonic() + timeout
    status = read_status(spec)
    while time.monotonic() < deadline:
        status = read_status(spec)
        if status is not None and want(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"the job's status never became what was wanted; last: {status}")


def committed_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None, bytes | None]]:
    """Every committed record of `topic` to its end, read by a fresh read_committed consumer: (key, value, position)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"faults-check-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                         "enable.partition.eof": True, "enable.auto.commit": False}, logger=quiet_logger())  # fmt: skip
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.subscribe([topic])
        open_parts = set(meta.partitions)
        records = []
        deadline = time.monotonic() + 60
        while open_parts and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                open_parts.discard(msg.partition())
                continue
            records.append((msg.key(), msg.value(), dict(msg.headers() or []).get(POSITION_HEADER)))
        assert not open_parts, f"could not read {topic} to its end"
        return records
    finally:
        consumer.close()


@dataclass
class Audit:
    """An independent count of what the job wrote against the source's rows."""

    lost: list[int] = field(default_factory=list)  # orders whose last enriched record is not the source row
    ghosts: list[int] = field(default_factory=list)  # deleted at the source, still live in the topic
    duplicated: dict[str, int] = field(default_factory=dict)  # topic -> records delivered twice
    records: int = 0
    # (topic, key, position header, value) of records written twice
    samples: list[tuple[str, bytes | None, bytes | None, bytes | None]] = field(default_factory=list)


def audit(spec: PipelineSpec, db: Database) -> Audit:
    import orjson

    database = spec.source.database
    rows = {int(i): (str(a), s) for i, a, s in db.run(f"SELECT order_id, amount, status FROM `{database}`.orders")}
    result = Audit()
    latest: dict[int, Any] = {}
    enriched_topic = spec.outputs["orders_enriched"].stream.topic
    alerts_topic = spec.outputs["order_alerts"].stream.topic
    assert enriched_topic and alerts_topic
    for topic in (enriched_topic, alerts_topic):
        records = committed_records(spec.kafka.bootstrap_servers, topic)
        result.records += len(records)
        seen = Counter((key, header) for key, _, header in records)
        result.duplicated[topic] = sum(n - 1 for n in seen.values() if n > 1)
        twice = {k for k, n in seen.items() if n > 1}
        result.samples += [(topic, k, h, v) for k, v, h in records if (k, h) in twice][:12]
        if topic == enriched_topic:
            for key, value, _ in records:
                latest[int(key or b"0")] = orjson.loads(value) if value is not None else None
    for order_id, (amount, status) in rows.items():
        value = latest.get(order_id)
        if value is None or (str(value["amount"]), value["status"]) != (amount, status):
            result.lost.append(order_id)
    result.ghosts = [k for k, v in latest.items() if v is not None and k not in rows]
    return result


def group_lag(spec: PipelineSpec) -> int:
    topics = [spec.cdc.topic(t) for t in spec.cdc.tables]
    return TopicAdmin(spec.kafka.bootstrap_servers).group_lag(spec.stream.group, topics).total
