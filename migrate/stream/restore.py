"""Rebuilding the streaming job's state from Kafka on start and after an aborted transaction.

Everything restored was written in the job's own transactions and is read with read_committed:
the state topic holds the transform's records and the job's progress (PROGRESS_KEY), and a
pipeline may also restore from its own compacted output topics. So state, outputs and input
offsets always agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from cdc import client
from cdc.position import Position
from migrate.errors import PERMANENT_CONFIG_EXIT, StreamJobError
from migrate.pipeline.contract import Transform
from migrate.stream.counters import Counters
from migrate.stream.wire import POSITION_HEADER, header_position, unwrapped

RESTORE_STALL_S = 20.0  # restoring state with nothing read this long: the broker is away, start over
PROGRESS_KEY = "meta:progress"  # the committed source position, kept in the state topic


class RestoreFormatError(StreamJobError):
    """An output topic holds records in the other JSON format than the spec's: a config error that
    no restart mends (the supervisor stops on its exit code)."""

    # Permanent: the records already in the topic keep their format, whatever a restart does; only
    # the user (a new topic, or the spec's format) mends it. The one error the job exits 78 with.
    exit_code = PERMANENT_CONFIG_EXIT


def wire_format(raw_key: bytes | None, parsed_value: Any) -> str:
    """`Connect JSON` (JsonConverter's {"schema", "payload"} envelope) or `bare JSON`: the value's
    format, a tombstone's by its key.

    >>> wire_format(b"7", {"order_id": 7}), wire_format(b'{"schema": {}, "payload": 7}', None)
    ('bare JSON', 'Connect JSON')
    """
    data = parsed_value
    if data is None:
        try:
            data = orjson.loads(raw_key or b"null")
        except orjson.JSONDecodeError:
            return "bare JSON"  # a bare key is the key's text, JSON or not
    return "Connect JSON" if isinstance(data, dict) and set(data) == {"schema", "payload"} else "bare JSON"


def check_format(output: str, msg: Any, parsed: Any, enveloped: bool) -> None:
    """Refuse, in one line, an output topic record of the format the spec does not write (e.g. an
    earlier run without `outputs.X.sink` wrote bare JSON, this one writes Connect JSON)."""
    found, expected = wire_format(msg.key(), parsed), "Connect JSON" if enveloped else "bare JSON"
    if found == expected:
        return
    topic, why = msg.topic(), "with" if enveloped else "without"
    raise RestoreFormatError(
        f"cannot restore outputs.{output} from topic {topic}: record {topic}/{msg.partition()}@{msg.offset()} is "
        f"{found}, but the spec ({why} outputs.{output}.sink) writes {expected}; an earlier run wrote it: set "
        f"outputs.{output}.stream.topic to a new topic, or delete topic {topic} (and the job's state topic) "
        "and start the stream job again"
    )


def resumed(progress: dict[str, Any]) -> tuple[str, int]:
    """(where, order value) of the committed progress, for ChangelogWriter.claim."""
    position = Position.from_dict(progress)
    return str(position), position.order_value


def restore_state(
    kafka: client.Kafka,
    consumer_config: Mapping[str, Any],
    *,
    state_topic: str,
    restore_topics: Mapping[str, str],
    enveloped: Collection[str],
    transform: Transform,
    counters: Counters,
    alive: Callable[[], None],
) -> int:
    """Feed `transform` the committed records of `state_topic` and of `restore_topics` (topic ->
    output name; `enveloped` outputs are in Connect's JSON) and `counters` the committed progress;
    returns how many records were read. `alive` is called on every turn: a large state takes a while.
    A broker that goes away mid-restore raises a retriable KafkaException (the caller starts over)."""
    reader = client.consumer(
        kafka,
        {**consumer_config, "group.id": f"{consumer_config['group.id']}-restore", "enable.partition.eof": True},
    )
    try:
        topics = reader.list_topics(timeout=10).topics
        partitions = [
            TopicPartition(topic, p, 0)
            for topic in (state_topic, *restore_topics)
            if topic in topics
            for p in topics[topic].partitions
        ]
        ends = {(tp.topic, tp.partition): reader.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        pending = {tp for tp, end in ends.items() if end > 0}
        reader.assign(partitions)
        restored = 0
        last_read = time.monotonic()
        while pending:
            alive()
            msgs = reader.consume(num_messages=10000, timeout=1.0)
            if msgs:
                last_read = time.monotonic()
            elif time.monotonic() - last_read > RESTORE_STALL_S:
                stalled = f"restoring state: nothing read for {RESTORE_STALL_S:g}s"
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, stalled, retriable=True))
            for msg in msgs:
                error, where, offset = msg.error(), (msg.topic() or "", msg.partition() or 0), msg.offset() or 0
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(where)
                    continue
                key, value = (msg.key() or b"").decode(), msg.value()
                parsed = orjson.loads(value) if value is not None else None
                output = restore_topics.get(where[0])
                if output is not None:
                    check_format(output, msg, parsed, output in enveloped)
                if output in enveloped:  # back to the bare JSON the transform wrote
                    key, parsed = unwrapped(msg)
                if output is not None:
                    order = header_position(msg)
                    if order is None:
                        raise StreamJobError(
                            f"record {where[0]}/{where[1]}@{offset} has no {POSITION_HEADER} header; "
                            "the job writes one on every record: was the topic written by something else?"
                        )
                    transform.restore(output, key, parsed, order)
                elif key == PROGRESS_KEY and parsed is not None:
                    counters.restore_progress(parsed)
                else:
                    transform.restore("state", key, parsed, header_position(msg))
                restored += 1
                if offset + 1 >= ends[where]:
                    pending.discard(where)
        return restored
    finally:
        reader.close()
