"""How far the streaming job's consumer group is behind its inputs, as the broker sees it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from migrate.stream.kafka import describe, error_of

LAG_EVERY_S = 2.0  # the lag costs broker round trips: measured at most this often


def input_partitions(consumer: Consumer, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of `topics` that exists (a topic Debezium has not created yet has none)."""
    known = consumer.list_topics(timeout=5).topics
    return [TopicPartition(topic, p) for topic in topics if topic in known for p in known[topic].partitions]


def measure_lag(consumer: Consumer, topics: Sequence[str]) -> int:
    """Input records the group has not committed, over every partition of `topics`.

    Measured against the broker's committed offsets, not this member's assignment: while a
    restarted job waits to be assigned its partitions, the lag is still what it is. Raises
    KafkaException when the broker cannot be reached.
    """
    lag = 0
    for tp in consumer.committed(input_partitions(consumer, topics), timeout=5):
        _, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
        lag += max(0, high - max(tp.offset, 0))
    return lag


def inputs_drained(consumer: Consumer) -> bool:
    """Nothing left to fetch on any assigned partition, the marker topic included (so a missing
    event or END is really missing, not merely behind)."""
    try:
        for tp in consumer.position(consumer.assignment()):
            _, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            if tp.offset < high:
                return False
        return True
    except KafkaException:
        return False


@dataclass
class LagGauge:
    """The lag as last measured, for the job's status: at most every LAG_EVERY_S, since each
    measurement costs broker round trips. An idle job meets no error of its own while the broker
    is away: a failed measurement is how it notices (`unreachable`, with the Kafka error)."""

    topics: Sequence[str]
    lag: int | None = None
    measured_at: float | None = None  # epoch seconds
    unreachable: bool = False
    error: str | None = None  # the Kafka error of the last failed measurement

    def refresh(self, consumer: Consumer, now: float) -> bool:
        """Measure again if due; True when it measured (the broker answered or not)."""
        if self.measured_at is not None and now - self.measured_at < LAG_EVERY_S:
            return False
        try:
            self.lag, self.unreachable = measure_lag(consumer, self.topics), False
        except KafkaException as exc:
            self.lag, self.unreachable, self.error = None, True, describe(error_of(exc))
        self.measured_at = now
        return True
