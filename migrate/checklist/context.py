"""What the checks read, fetched once per checklist: Connect, Kafka, the stream status and the batch runs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cached_property
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, TopicPartition

from cdc import client
from cdc.connect import ConnectClient
from cdc.errors import TopicError
from cdc.topics import GroupLag, TopicAdmin, TopicInfo
from migrate.batch import BatchRun, load_run
from migrate.checklist.model import CheckResult
from migrate.errors import CheckUnavailable, DualrunError, SpecError
from migrate.spec import PipelineSpec
from migrate.stream.status import StreamStatus, read_status


class Context:
    """What the checks read, fetched lazily, once per checklist; an unreachable system fails fast after one try."""

    def __init__(self, spec: PipelineSpec, *, now: float | None = None, timeout: float = 10.0) -> None:
        self.spec = spec
        self.now = time.time() if now is None else now
        self.timeout = timeout
        self.current: CheckResult | None = None
        self._kafka_down: str | None = None
        self.memo: dict[str, Any] = {}  # what several checks derive once (e.g. position findings)

    def begin(self, name: str, threshold: str) -> CheckResult:
        """The result a check fills in; remembered so an unreachable system still reports the threshold."""
        self.current = CheckResult(name, "skipped", "", threshold)
        return self.current

    # -- Kafka Connect --------------------------------------------------------------------------
    @cached_property
    def connect(self) -> ConnectClient:
        secrets = []
        for section in (self.spec.cdc, self.spec.source):
            with suppress(SpecError):  # an unset password cannot leak either
                secrets.append(section.password())
        # Two retries: a checklist should answer in seconds, not wait out a long backoff.
        return self.spec.cdc.connect_client(timeout=self.timeout, retries=2, secrets=tuple(secrets))

    # -- Kafka ----------------------------------------------------------------------------------
    @cached_property
    def admin(self) -> TopicAdmin:
        return TopicAdmin(self.spec.kafka.client(), timeout=self.timeout)

    @contextmanager
    def kafka(self) -> Iterator[TopicAdmin]:
        """The topic admin; a broker that does not answer becomes CheckUnavailable, once for all checks."""
        if self._kafka_down is not None:
            raise CheckUnavailable(self._kafka_down)
        try:
            yield self.admin
        except KafkaException as exc:
            problem = client.access_problem(self.spec.kafka.client())
            self._kafka_down = problem or (
                f"Kafka is not reachable at {self.spec.kafka.bootstrap_servers}: {exc.args[0].str()}"
            )
            raise CheckUnavailable(self._kafka_down) from exc

    @cached_property
    def metadata(self) -> Any:
        with self.kafka() as admin:
            return admin.admin.list_topics(timeout=self.timeout)

    def topic_exists(self, topic: str) -> bool:
        return topic in self.metadata.topics

    def describe(self, topic: str) -> TopicInfo | None:
        if not self.topic_exists(topic):
            return None
        with self.kafka() as admin:
            try:
                return admin.describe(topic)
            except TopicError as exc:
                raise CheckUnavailable(str(exc)) from exc

    def group_lag(self, group: str, topics: list[str]) -> GroupLag:
        with self.kafka() as admin:
            try:
                return admin.group_lag(group, topics)
            except TopicError as exc:
                raise CheckUnavailable(str(exc)) from exc

    def _reader(self) -> Consumer:
        return client.consumer(
            self.spec.kafka.client(),
            {
                # assign() without commits never joins or creates this group on the broker
                "group.id": f"dualrun-checklist-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            },
        )

    def oldest_waiting_ms(self, lag: GroupLag) -> int | None:
        """The Kafka timestamp (ms) of the oldest record the group has not committed past, over the
        partitions where it is behind; None when none could be read within the timeout."""
        behind = [p for p in lag.partitions if p.lag > 0]
        if not behind:
            return None
        consumer = self._reader()
        stamps: list[int] = []
        try:
            with self.kafka():
                todo = []
                for p in behind:
                    low, _ = consumer.get_watermark_offsets(TopicPartition(p.topic, p.partition), timeout=self.timeout)
                    todo.append(TopicPartition(p.topic, p.partition, max(p.committed or 0, low)))
                consumer.assign(todo)
                waiting = {(tp.topic, tp.partition) for tp in todo}
                deadline = time.monotonic() + self.timeout
                while waiting and time.monotonic() < deadline:
                    msg = consumer.poll(0.5)
                    if msg is None or (msg.topic(), msg.partition()) not in waiting:
                        continue
                    waiting.discard((msg.topic() or "", msg.partition() or 0))
                    kind, stamp = msg.timestamp()
                    if msg.error() is None and kind != TIMESTAMP_NOT_AVAILABLE:
                        stamps.append(stamp)
        finally:
            consumer.close()
        return min(stamps) if stamps else None

    def count_records(self, topic: str, limit_s: float = 20.0) -> tuple[int, str | None]:
        """Committed records retained in `topic`, and the `dualrun.error` header of the first one."""
        partitions = sorted(self.metadata.topics[topic].partitions)
        consumer = self._reader()
        try:
            with self.kafka():
                todo: list[TopicPartition] = []
                for p in partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout)
                    if high > low:
                        todo.append(TopicPartition(topic, p, low))
                if not todo:
                    return 0, None
                consumer.assign(todo)
                count, first_error, open_parts = 0, None, {tp.partition for tp in todo}
                deadline = time.monotonic() + limit_s
                while open_parts and time.monotonic() < deadline:
                    msg = consumer.poll(0.5)
                    if msg is None:
                        continue
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            open_parts.discard(msg.partition())
                        continue
                    count += 1
                    if first_error is None:
                        headers = dict(msg.headers() or [])
                        raw = headers.get("dualrun.error")
                        first_error = raw.decode(errors="replace") if isinstance(raw, bytes) else None
                return count, first_error
        finally:
            consumer.close()

    # -- files: stream status, history, warehouse -------------------------------------------------
    @cached_property
    def status(self) -> StreamStatus | None:
        return read_status(self.spec)

    @cached_property
    def batch_run(self) -> BatchRun | None:
        try:
            return load_run(self.spec.warehouse_path, "latest")
        except DualrunError:
            return None

    @property
    def change_topics(self) -> list[str]:
        return [self.spec.cdc.topic(t) for t in self.spec.cdc.tables]

    @property
    def output_names(self) -> list[str]:
        return [f"{self.spec.name}/{output}" for output in self.spec.outputs]

    @property
    def sink_names(self) -> list[str]:
        """History names of the sink sides (`<spec>/<output>@sink`, see migrate.sink)."""
        return [f"{self.spec.name}/{output}@sink" for output, out in self.spec.outputs.items() if out.sink is not None]
