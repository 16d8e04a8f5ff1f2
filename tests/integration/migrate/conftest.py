"""Isolated dual pipelines on the real stack: each test gets its own source database,
connector, topics, consumer group and state directory."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from migrate.connector import ensure_connector
from migrate.examples import shop_orders
from migrate.examples.shop_orders.workload import Workload
from migrate.spec import CdcSpec, KafkaSpec, PipelineSpec, SourceSpec, StreamSpec
from migrate.stackconfig import StackConfig
from migrate.stream.job import StreamJob
from tests.integration.conftest import Database


def pipeline_spec(
    stack: StackConfig, state_dir: Path, name: str, source: SourceSpec, tables: tuple[str, ...], **cdc: object
) -> PipelineSpec:
    """The example pipeline on its own connector, topics, group and state dir, reading `tables` of
    `source` (MariaDB or PostgreSQL); `cdc` adds connector settings (server_id, publication)."""
    spec = PipelineSpec(
        name=name,
        state_dir=str(state_dir),
        source=source,
        cdc=CdcSpec(
            connect_url=stack.connect_url,
            connector=name,
            topic_prefix=name,
            user=stack.debezium_user,
            password_env="DUALRUN_DEBEZIUM_PASSWORD",
            default_password=stack.debezium_password,
            tables=tables,
            # As a loaded local spec: the stack's worker resolves the password from its secrets file.
            **{"password_file": str(stack.connect_secrets_file), **cdc},  # type: ignore[arg-type]
        ),  # fmt: skip
        kafka=KafkaSpec(bootstrap_servers=stack.bootstrap_servers),
        stream=StreamSpec(
            group=name,
            pipeline="migrate.examples.shop_orders:PIPELINE",
            transactional_id=name,
            state_topic=f"{name}-state",
            dead_letter_topic=f"{name}-dlq",
            commit_interval_ms=100,
        ),  # fmt: skip
        outputs=shop_orders.outputs(name),
        local=True,  # the written spec file finds the stack's local passwords
    )
    return spec.with_changes(compare={"wait_seconds": 90})


def make_pipeline(stack: StackConfig, db: Database, state_dir: Path, name: str) -> PipelineSpec:
    database = f"src_{name}"
    db.run(
        f"CREATE DATABASE `{database}`",
        f"CREATE TABLE `{database}`.customers LIKE shop.customers",
        f"CREATE TABLE `{database}`.orders LIKE shop.orders",
    )
    source = SourceSpec(
        url=f"mysql+pymysql://{stack.db_user}@127.0.0.1:{stack.ports.mariadb}/{database}",
        password_env="DUALRUN_DB_PASSWORD",
        default_password=stack.db_password,
    )  # fmt: skip
    spec = pipeline_spec(stack, state_dir, name, source, (f"{database}.customers", f"{database}.orders"),
                         server_id=300000 + uuid.uuid4().int % 100000)  # fmt: skip
    (state_dir / "dualrun.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    return spec


@pytest.fixture
def pipeline(stack: StackConfig, db: Database, tmp_path: Path, unique: Callable[[str], str]) -> Iterator[PipelineSpec]:
    spec = make_pipeline(stack, db, tmp_path, unique("p"))
    ensure_connector(spec)
    yield spec
    # A background job a test started (and perhaps left behind by failing) stops with it.
    from migrate.commands.run import stream_process

    stream_process(spec).stop(timeout=30)


def workload_for(spec: PipelineSpec, seed: int = 11) -> Workload:
    workload = Workload(spec.source.url, spec.source.password(), database=spec.source.database, seed=seed, customers=20)
    workload.seed(orders=100)
    return workload


class JobThread:
    """The real streaming job, run in this process on a thread (stopped like SIGTERM would)."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.job = StreamJob(spec)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.job.run(install_signals=False)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> JobThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.job.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the streaming job did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def jobs() -> Iterator[Callable[[PipelineSpec], JobThread]]:
    started: list[JobThread] = []

    def start(spec: PipelineSpec) -> JobThread:
        started.append(JobThread(spec).start())
        return started[-1]

    yield start
    for job in started:
        if job.thread.is_alive():
            job.job.stop()
            job.thread.join(60)
