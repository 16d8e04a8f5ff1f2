"""Topic admin: create with compaction or retention, describe configs, consumer-group lag."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic

from cdc.client import Kafka, admin, consumer, quiet_logger, settings
from cdc.errors import TopicError

__all__ = ["GroupLag", "PartitionLag", "TopicAdmin", "TopicInfo", "quiet_logger"]


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def compacted(self) -> bool:
        return "compact" in self.configs.get("cleanup.policy", "")

    @property
    def retention_ms(self) -> int | None:
        """Retention in ms; None when unlimited (-1)."""
        value = int(self.configs.get("retention.ms", "-1"))
        return None if value < 0 else value

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "compacted": self.compacted, "retention_ms": self.retention_ms}


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


@dataclass(frozen=True)
class GroupLag:
    group: str
    partitions: tuple[PartitionLag, ...]

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "total": self.total,
            "partitions": [{**asdict(p), "lag": p.lag} for p in self.partitions],
        }


class TopicAdmin:
    """A thin, typed face over confluent-kafka's AdminClient."""

    def __init__(self, kafka: Kafka, timeout: float = 15.0) -> None:
        self.kafka = settings(kafka)
        self.bootstrap = self.kafka.bootstrap_servers
        self.timeout = timeout
        self.admin = admin(self.kafka)

    def create(
        self,
        name: str,
        *,
        partitions: int = 1,
        replication_factor: int = 1,
        compact: bool = False,
        retention_ms: int | None = None,
        configs: dict[str, str] | None = None,
    ) -> bool:
        """Create the topic; False when it already existed (its settings are left alone)."""
        settings = dict(configs or {})
        settings["cleanup.policy"] = "compact" if compact else "delete"
        if retention_ms is not None:
            settings["retention.ms"] = str(retention_ms)
        topic = NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, config=settings)
        future = self.admin.create_topics([topic], operation_timeout=self.timeout)[name]
        try:
            future.result(timeout=self.timeout)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            raise TopicError(f"could not create topic {name!r} on {self.bootstrap}: {exc.args[0].str()}") from exc
        self._await_metadata(name, partitions)
        return True

    def _await_metadata(self, name: str, partitions: int) -> None:
        """Creation is acknowledged before every partition shows in metadata; wait for them."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            topic = self.admin.list_topics(topic=name, timeout=self.timeout).topics.get(name)
            if topic is not None and topic.error is None and len(topic.partitions) == partitions:
                return
            time.sleep(0.05)
        raise TopicError(f"topic {name!r} was created but its {partitions} partition(s) never appeared in metadata")

    def exists(self, name: str) -> bool:
        return name in self.admin.list_topics(timeout=self.timeout).topics

    def topic_names(self) -> set[str]:
        """Every topic in the cluster's metadata (raises KafkaException when the broker does not answer)."""
        return set(self.admin.list_topics(timeout=self.timeout).topics)

    def auto_create_topics(self) -> bool | None:
        """The broker's auto.create.topics.enable (of the first broker in metadata); None if unreadable."""
        brokers = self.admin.list_topics(timeout=self.timeout).brokers
        if not brokers:
            return None
        resource = ConfigResource(ConfigResource.Type.BROKER, str(min(brokers)))
        try:
            entries = self.admin.describe_configs([resource])[resource].result(timeout=self.timeout)
        except KafkaException:
            return None
        entry = entries.get("auto.create.topics.enable")
        return None if entry is None or entry.value is None else str(entry.value).lower() == "true"

    def describe(self, name: str) -> TopicInfo:
        metadata = self.admin.list_topics(topic=name, timeout=self.timeout).topics.get(name)
        if metadata is None or metadata.error is not None:
            raise TopicError(f"topic {name!r} does not exist on {self.bootstrap}")
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        try:
            entries = self.admin.describe_configs([resource])[resource].result(timeout=self.timeout)
        except KafkaException as exc:
            raise TopicError(f"could not describe topic {name!r}: {exc.args[0].str()}") from exc
        replicas = min((len(p.replicas) for p in metadata.partitions.values()), default=0)
        configs = {key: str(entry.value) for key, entry in entries.items() if entry.value is not None}
        return TopicInfo(name, len(metadata.partitions), replicas, configs)

    def delete(self, name: str) -> None:
        try:
            self.admin.delete_topics([name], operation_timeout=self.timeout)[name].result(timeout=self.timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise TopicError(f"could not delete topic {name!r}: {exc.args[0].str()}") from exc

    def last_record_ms(self, topics: list[str]) -> int | None:
        """The newest record timestamp (ms since the epoch) over every partition of `topics`; None if all are empty.

        Reads the last offset of each partition only. Raises KafkaException when the broker does not answer.
        """
        reader = consumer(
            self.kafka, {"group.id": "dualrun-last-record", "enable.auto.commit": False, "enable.partition.eof": True}
        )
        try:
            todo = []
            for topic in topics:
                metadata = self.admin.list_topics(topic=topic, timeout=self.timeout).topics.get(topic)
                for p in metadata.partitions if metadata is not None and metadata.error is None else ():
                    low, high = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout)
                    if high > low:
                        todo.append(TopicPartition(topic, p, high - 1))
            if not todo:
                return None
            reader.assign(todo)
            newest: int | None = None
            open_parts = {(tp.topic, tp.partition) for tp in todo}
            deadline = time.monotonic() + self.timeout
            while open_parts and time.monotonic() < deadline:
                msg = reader.poll(0.5)
                if msg is None:
                    continue
                open_parts.discard((msg.topic() or "", msg.partition() or 0))
                if msg.error() is None:
                    _, ts = msg.timestamp()
                    newest = ts if newest is None else max(newest, ts)
            return newest
        finally:
            reader.close()

    def group_lag(self, group: str, topics: list[str]) -> GroupLag:
        """Committed offset vs. log end for every partition of `topics` (read_committed ends)."""
        reader = consumer(
            self.kafka, {"group.id": group, "enable.auto.commit": False, "isolation.level": "read_committed"}
        )
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in self.admin.list_topics(topic=topic, timeout=self.timeout).topics[topic].partitions
            ]
            committed = reader.committed(partitions, timeout=self.timeout)
            lags = []
            for tp in committed:
                _, high = reader.get_watermark_offsets(tp, timeout=self.timeout, cached=False)
                offset = tp.offset if tp.offset >= 0 else None
                lags.append(PartitionLag(tp.topic, tp.partition, offset, high))
        except KafkaException as exc:
            raise TopicError(f"could not read lag of group {group!r}: {exc.args[0].str()}") from exc
        finally:
            reader.close()
        return GroupLag(group, tuple(lags))
