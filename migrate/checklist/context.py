"""What the checks read, fetched once per checklist: Connect, Kafka, the stream status and the batch runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cached_property
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaException, TopicPartition

from cdc import client
from cdc.client import PartitionReader
from cdc.connect import ConnectClient
from cdc.errors import CdcError, ReadDeadline, TopicError
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

    def oldest_waiting_ms(self, lag: GroupLag) -> int | None:
        """The Kafka timestamp (ms) of the oldest record the group has not committed past, over the
        partitions where it is behind; None when none could be read within the timeout."""
        behind = [p for p in lag.partitions if p.lag > 0]
        if not behind:
            return None
        consumer = client.reader(self.spec.kafka.client(), "checklist")
        stamps: list[int] = []
        try:
            with self.kafka():
                starts = {}
                for p in behind:
                    low, _ = consumer.get_watermark_offsets(TopicPartition(p.topic, p.partition), timeout=self.timeout)
                    starts[(p.topic, p.partition)] = max(p.committed or 0, low)
                reader = PartitionReader(consumer, starts, timeout=self.timeout, what="the change topics")
                with suppress(ReadDeadline):  # the partitions read so far date the lag
                    for msg in reader:
                        reader.finish((msg.topic() or "", msg.partition() or 0))  # its first record is enough
                        kind, stamp = msg.timestamp()
                        if kind != TIMESTAMP_NOT_AVAILABLE:
                            stamps.append(stamp)
        except CdcError as exc:
            raise CheckUnavailable(str(exc)) from exc
        finally:
            consumer.close()
        return min(stamps) if stamps else None

    def count_records(self, topic: str, limit_s: float = 20.0) -> tuple[int, str | None]:
        """Committed records retained in `topic`, and the `dualrun.error` header of the first one.
        Raises CheckUnavailable when the topic cannot be read to its end within `limit_s` s."""
        partitions = sorted(self.metadata.topics[topic].partitions)
        consumer = client.reader(self.spec.kafka.client(), "checklist")
        try:
            with self.kafka():
                starts = {}
                for p in partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout)
                    if high > low:
                        starts[(topic, p)] = low
                count, first_error = 0, None
                for msg in PartitionReader(consumer, starts, timeout=limit_s, what=topic):
                    count += 1
                    if first_error is None:
                        headers = dict(msg.headers() or [])
                        raw = headers.get("dualrun.error")
                        first_error = raw.decode(errors="replace") if isinstance(raw, bytes) else None
                return count, first_error
        except CdcError as exc:
            raise CheckUnavailable(str(exc)) from exc
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
