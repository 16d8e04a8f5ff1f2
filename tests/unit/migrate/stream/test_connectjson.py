"""Kafka Connect JSON with schemas for outputs a sink reads (migrate.stream.connectjson)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from migrate.stream.connectjson import UnsupportedType, struct_schema, unwrap, wrap

SCHEMA = pa.schema([("order_id", pa.int64()), ("amount", pa.decimal128(12, 2)), ("order_day", pa.date32()),
                    ("created_at", pa.timestamp("us")), ("status", pa.string())])  # fmt: skip


def test_round_trip_is_exact_and_shaped_for_the_jdbc_sink() -> None:
    value = {"amount": Decimal("-1234567.89"), "order_day": date(1969, 12, 31),
             "created_at": datetime(2026, 12, 1, 6, 0, 0, 123456), "status": None}  # fmt: skip
    schema = struct_schema(SCHEMA, ("order_id",), key=False)
    raw = wrap(value, schema)
    assert raw is not None and unwrap(raw) == value
    wire = json.loads(raw)
    assert [f["field"] for f in wire["schema"]["fields"]] == ["amount", "order_day", "created_at", "status"]
    assert wire["payload"]["order_day"] == -1 and wire["payload"]["created_at"] % 1_000_000 == 123456
    key = struct_schema(SCHEMA, ("order_id",), key=True)
    assert key["optional"] is False and unwrap(wrap({"order_id": 7}, key)) == {"order_id": 7}
    assert wrap(None, schema) is None and unwrap(None) is None
    assert unwrap(b'{"a": "1.5"}') == {"a": "1.5"}  # bare JSON stays as it is


def test_no_silent_rounding_and_no_unknown_types() -> None:
    schema = struct_schema(SCHEMA, ("order_id",), key=False)
    with pytest.raises(UnsupportedType, match="more than 2 decimal places"):
        wrap({"amount": Decimal("1.005")}, schema)
    with pytest.raises(UnsupportedType, match="no Kafka Connect JSON mapping"):
        struct_schema(pa.schema([("k", pa.int64()), ("tags", pa.list_(pa.string()))]), ("k",), key=False)
