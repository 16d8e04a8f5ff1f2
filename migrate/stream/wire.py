"""The streaming job's records as bytes on the wire: JSON values, Connect envelopes, headers.

Output values are JSON with money as exact decimal strings; outputs a Connect sink reads are
Connect's JSON with schemas (`migrate.stream.connectjson`). Every record the job writes carries
its source position in the POSITION_HEADER header, so any reader can check that no change
was delivered twice and the job can restore its state in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
from confluent_kafka import Message

from migrate.errors import StreamJobError
from migrate.pipeline.contract import Output
from migrate.pipeline.records import KafkaRecord
from migrate.stream import connectjson
from migrate.stream.kafka import TransactionalProducer
from migrate.stream.ordering import Item

POSITION_HEADER = "dualrun.position"

Headers = list[tuple[str, str | bytes | None]]
Envelope = tuple[dict[str, Any], dict[str, Any]]  # the (key, value) struct schemas


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # money stays exact on the wire
    raise TypeError(f"cannot serialise {type(value).__name__}")


def encode(value: dict[str, Any] | str | None) -> bytes | None:
    """A record value as written: None is a tombstone, text as it is, a dict as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value, default=_json_default)


def header_position(msg: Message) -> int | None:
    """The source position a record of the job carries in its POSITION_HEADER header."""
    for header in msg.headers() or []:
        if header[0] == POSITION_HEADER and header[1] is not None:
            return int(header[1])
    return None


def envelope(name: str, output: Output) -> Envelope:
    """The Connect struct schemas of output `name`'s key and value."""
    try:
        return (connectjson.struct_schema(output.schema, output.keys, key=True),
                connectjson.struct_schema(output.schema, output.keys, key=False))  # fmt: skip
    except connectjson.UnsupportedType as exc:
        raise StreamJobError(f"outputs.{name}.sink: {exc}") from None


def keyed(name: str, key: str, value: dict[str, Any] | None, schema: dict[str, Any]) -> dict[str, Any]:
    """The record's key as the key struct's typed columns (`connectjson.key_payload`)."""
    if len(schema["fields"]) == 1:  # the key text is the value: as before, whatever the value holds
        field = schema["fields"][0]
        return {field["field"]: int(key) if field["type"] == "int64" else key}
    try:
        return connectjson.key_payload(key, value, schema)
    except connectjson.UnsupportedType as exc:
        raise StreamJobError(f"outputs.{name}: {exc}") from None


def unwrapped(msg: Message) -> tuple[str, Any]:
    """A Connect-enveloped record back as the bare key text and parsed JSON the transform wrote."""
    key = str(next(iter(connectjson.unwrap(msg.key()).values())))
    wrapped = connectjson.unwrap(msg.value())
    return key, None if wrapped is None else orjson.loads(encode(wrapped) or b"null")


def dead_letter_headers(item: Item, reason: str) -> Headers:
    """Why a record went to the dead-letter topic, and where it came from."""
    return [
        ("dualrun.error", reason.encode()),
        ("dualrun.source.topic", item.topic.encode()),
        ("dualrun.source.partition", str(item.partition).encode()),
        ("dualrun.source.offset", str(item.offset).encode()),
    ]


class RecordWriter:
    """Writes the job's records: each output's records to its topic (Connect's JSON for the outputs
    in `envelopes`), with the position header; failed input records to the dead-letter topic."""

    def __init__(self, topics: Mapping[str, str], envelopes: Mapping[str, Envelope], dead_letters: str) -> None:
        self.topics, self.envelopes, self.dead_letters = topics, envelopes, dead_letters
        self._header_pos = -1
        self._header: Headers = []

    def write(self, producer: TransactionalProducer, record: KafkaRecord) -> None:
        # The position header lets any reader check that no change was delivered twice.
        topic = self.topics.get(record.topic)
        if topic is None:
            return  # an output the spec gives no topic: its changelog is all dualrun keeps
        if record.pos != self._header_pos:  # the records of one event share it: encode once
            self._header_pos, self._header = record.pos, [(POSITION_HEADER, str(record.pos).encode())]
        wrapped = self.envelopes.get(record.topic)
        if wrapped is not None and not isinstance(record.value, str):
            key = connectjson.wrap(keyed(record.topic, record.key, record.value, wrapped[0]), wrapped[0])
            producer.produce(topic, key, connectjson.wrap(record.value, wrapped[1]), self._header)
            return
        producer.produce(topic, record.key.encode(), encode(record.value), self._header)

    def dead_letter(self, producer: TransactionalProducer, item: Item, reason: str) -> None:
        msg = item.message
        producer.produce(
            self.dead_letters,
            msg.key() if msg is not None else None,
            msg.value() if msg is not None else None,
            dead_letter_headers(item, reason),
        )
