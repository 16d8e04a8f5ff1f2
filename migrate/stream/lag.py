"""How far the streaming job's consumer group is behind its inputs, as the broker sees it."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

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
