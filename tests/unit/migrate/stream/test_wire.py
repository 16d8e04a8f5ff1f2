"""The job's records on the wire: exact money, typed Connect keys, dead-letter provenance."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from migrate.errors import StreamJobError
from migrate.stream.ordering import Item
from migrate.stream.wire import dead_letter_headers, encode, keyed


def test_money_is_an_exact_decimal_string_and_none_a_tombstone() -> None:
    assert orjson.loads(encode({"amount": Decimal("0.10")}) or b"") == {"amount": "0.10"}
    assert encode("as is") == b"as is"
    assert encode(None) is None
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode({"x": object()})


def test_a_single_column_key_is_the_key_text_typed_by_its_schema() -> None:
    schema = {"type": "struct", "fields": [{"field": "order_id", "type": "int64"}]}
    assert keyed("orders", "42", None, schema) == {"order_id": 42}
    text = {"type": "struct", "fields": [{"field": "code", "type": "string"}]}
    assert keyed("codes", "42", None, text) == {"code": "42"}


def test_a_key_that_does_not_fit_its_struct_names_the_output() -> None:
    schema = {"type": "struct", "fields": [{"field": "a", "type": "int64"}, {"field": "b", "type": "bytes"}]}
    with pytest.raises(StreamJobError, match="^outputs.pairs: "):
        keyed("pairs", "1|x", None, schema)  # a tombstone: the key text must be the JSON array


def test_a_dead_letter_says_why_and_where_it_came_from() -> None:
    headers = dead_letter_headers(Item("shop.orders", 3, 17, 0.0), "not JSON")
    assert headers == [
        ("dualrun.error", b"not JSON"),
        ("dualrun.source.topic", b"shop.orders"),
        ("dualrun.source.partition", b"3"),
        ("dualrun.source.offset", b"17"),
    ]
