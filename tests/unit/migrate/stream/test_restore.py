"""Restoring from an output topic written in the other JSON format is refused in one line (migrate.stream.restore)."""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka import Message

from migrate.stream.restore import RestoreFormatError, check_format, wire_format

CONNECT_VALUE = {"schema": {"type": "struct", "fields": [{"field": "order_id", "type": "int64"}]},
                 "payload": {"order_id": 7}}  # fmt: skip
CONNECT_KEY = b'{"schema": {"type": "int64"}, "payload": 7}'


def _msg(key: bytes, value: dict[str, object] | None) -> tuple[Message, object]:
    raw = None if value is None else orjson.dumps(value)
    return Message(topic="orders-enriched", partition=1, offset=41, key=key, value=raw), value


def test_the_format_of_a_value_or_a_tombstones_key() -> None:
    assert wire_format(b"7", {"order_id": 7}) == "bare JSON"
    assert wire_format(CONNECT_KEY, CONNECT_VALUE) == "Connect JSON"
    assert wire_format(CONNECT_KEY, None) == "Connect JSON" and wire_format(b"7", None) == "bare JSON"
    assert wire_format(b"order:7", None) == "bare JSON"  # a bare key need not be JSON


@pytest.mark.parametrize(
    ("key", "value", "enveloped", "found"),
    [
        (b"7", {"order_id": 7, "amount": "1.00"}, True, "bare JSON"),  # an earlier run without a sink
        (b"7", None, True, "bare JSON"),  # its tombstone
        (CONNECT_KEY, CONNECT_VALUE, False, "Connect JSON"),  # an earlier run with a sink
    ],
)
def test_a_record_of_the_other_format_is_refused_naming_topic_formats_and_the_fix(
    key: bytes, value: dict[str, object] | None, enveloped: bool, found: str
) -> None:
    msg, parsed = _msg(key, value)
    with pytest.raises(RestoreFormatError) as caught:
        check_format("orders_enriched", msg, parsed, enveloped)
    text = str(caught.value)
    expected = "Connect JSON" if enveloped else "bare JSON"
    assert "\n" not in text and caught.value.exit_code == 78  # EX_CONFIG: the supervisor stops for good
    assert text.startswith("cannot restore outputs.orders_enriched from topic orders-enriched: record "
                           f"orders-enriched/1@41 is {found}, but the spec")  # fmt: skip
    assert f"writes {expected}" in text and "outputs.orders_enriched.stream.topic to a new topic" in text
    assert "delete topic orders-enriched" in text


def test_a_record_of_the_spec_format_passes() -> None:
    check_format("orders_enriched", *_msg(CONNECT_KEY, CONNECT_VALUE), True)
    check_format("orders_enriched", *_msg(b"7", {"order_id": 7}), False)
