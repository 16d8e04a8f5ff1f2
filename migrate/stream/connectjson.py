"""Kafka Connect's JSON with schemas (`{"schema": ..., "payload": ...}`, JsonConverter with
schemas.enable=true) for outputs a sink reads: the Debezium JDBC sink refuses schemaless JSON
(`Configured primary key mode 'record_key' cannot have null schema`).

Types follow the output's Arrow schema, exactly: DECIMAL as Connect's Decimal (unscaled
two's-complement bytes, base64, scale in the schema), DATE as `io.debezium.time.Date` (days),
TIMESTAMP as `io.debezium.time.MicroTimestamp` (microseconds, naive as the changelog's).
"""

from __future__ import annotations

import base64
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa

CONNECT_DECIMAL = "org.apache.kafka.connect.data.Decimal"
DBZ_DATE = "io.debezium.time.Date"
DBZ_MICRO_TIMESTAMP = "io.debezium.time.MicroTimestamp"
EPOCH_DAY = date(1970, 1, 1)
EPOCH = datetime(1970, 1, 1)


class UnsupportedType(ValueError):
    """An Arrow type with no Connect JSON mapping here."""


def field_schema(field: pa.Field, optional: bool = True) -> dict[str, Any]:
    """One Connect struct field for an Arrow field (UnsupportedType for other types)."""
    kind = field.type
    base: dict[str, Any] = {"field": field.name, "optional": optional}
    if pa.types.is_integer(kind):
        return {**base, "type": "int64"}
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return {**base, "type": "string"}
    if pa.types.is_boolean(kind):
        return {**base, "type": "boolean"}
    if pa.types.is_floating(kind):
        return {**base, "type": "float64"}
    if pa.types.is_decimal(kind):
        params = {"scale": str(kind.scale), "connect.decimal.precision": str(kind.precision)}
        return {**base, "type": "bytes", "name": CONNECT_DECIMAL, "version": 1, "parameters": params}
    if pa.types.is_date(kind):
        return {**base, "type": "int32", "name": DBZ_DATE, "version": 1}
    if pa.types.is_timestamp(kind) and kind.tz is None:
        return {**base, "type": "int64", "name": DBZ_MICRO_TIMESTAMP, "version": 1}
    raise UnsupportedType(f"column {field.name}: {kind} has no Kafka Connect JSON mapping here")


def struct_schema(schema: pa.Schema, keys: tuple[str, ...], *, key: bool) -> dict[str, Any]:
    """The key struct (key columns, required) or the value struct (the other columns)."""
    fields = [schema.field(n) for n in keys] if key else [f for f in schema if f.name not in keys]
    return {"type": "struct", "optional": not key, "fields": [field_schema(f, optional=not key) for f in fields]}


def _to_wire(value: Any, field: dict[str, Any]) -> Any:
    if value is None:
        return None
    name = field.get("name")
    if name == CONNECT_DECIMAL:
        scale = int(field["parameters"]["scale"])
        scaled = Decimal(value).scaleb(scale)
        if scaled != scaled.to_integral_value():
            raise UnsupportedType(f"column {field['field']}: {value} has more than {scale} decimal places")
        unscaled = int(scaled)
        return base64.b64encode(unscaled.to_bytes((unscaled.bit_length() + 8) // 8 or 1, "big", signed=True)).decode()
    if name == DBZ_DATE:
        return (value - EPOCH_DAY).days
    if name == DBZ_MICRO_TIMESTAMP:
        delta = value - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return value


def _from_wire(value: Any, field: dict[str, Any]) -> Any:
    if value is None:
        return None
    name = field.get("name")
    if name == CONNECT_DECIMAL and isinstance(value, str):
        unscaled = int.from_bytes(base64.b64decode(value), "big", signed=True)
        return Decimal(unscaled).scaleb(-int(field.get("parameters", {}).get("scale", "0")))
    if name == DBZ_DATE:
        return EPOCH_DAY + timedelta(days=int(value))
    if name == DBZ_MICRO_TIMESTAMP:
        return EPOCH + timedelta(microseconds=int(value))
    return value


def key_payload(key: str, value: dict[str, Any] | None, schema: dict[str, Any]) -> dict[str, Any]:
    """The key struct's payload of one output record: its key columns taken from the record's
    value, or parsed from the key text (a tombstone has no value). A single column's key text is
    its value; a composite key's is the JSON array of its values in `keys` order (dates, decimals
    and timestamps as ISO text), e.g. `[101, "2024-04-30"]`.

    >>> s = struct_schema(pa.schema([("customer_id", pa.int64()), ("day", pa.date32())]), ("customer_id", "day"),
    ...                   key=True)
    >>> key_payload('[101, "2024-04-30"]', None, s)
    {'customer_id': 101, 'day': datetime.date(2024, 4, 30)}
    """
    fields = schema["fields"]
    if value is not None and all(f["field"] in value for f in fields):
        return {f["field"]: value[f["field"]] for f in fields}
    if len(fields) == 1:
        return {fields[0]["field"]: _from_text(key, fields[0])}
    try:
        parts = orjson.loads(key)
    except orjson.JSONDecodeError:
        parts = None
    if not isinstance(parts, list) or len(parts) != len(fields):
        names = ", ".join(f["field"] for f in fields)
        raise UnsupportedType(f"record key {key!r}: a composite key is the JSON array of its values ({names})")
    return {f["field"]: _from_text(v, f) for v, f in zip(parts, fields, strict=True)}


def _from_text(value: Any, field: dict[str, Any]) -> Any:
    """A key value from its text (or JSON) form, typed as the key struct's field."""
    if value is None:
        return None
    name, kind = field.get("name"), field["type"]
    if name == CONNECT_DECIMAL:
        return Decimal(str(value))
    if name == DBZ_DATE:
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if name == DBZ_MICRO_TIMESTAMP:
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if kind in ("int8", "int16", "int32", "int64"):
        return int(value)
    return value if kind != "string" else str(value)


def wrap(payload: dict[str, Any] | None, schema: dict[str, Any]) -> bytes | None:
    """A record key or value as JsonConverter writes it with schemas on; None stays a tombstone.

    >>> s = struct_schema(pa.schema([("id", pa.int64()), ("amount", pa.decimal128(12, 2))]), ("id",), key=False)
    >>> unwrap(wrap({"amount": Decimal("-10.50")}, s))
    {'amount': Decimal('-10.50')}
    """
    if payload is None:
        return None
    fields = {f["field"]: f for f in schema["fields"]}
    body = {name: _to_wire(payload.get(name), f) for name, f in fields.items()}
    return orjson.dumps({"schema": schema, "payload": body})


def unwrap(raw: bytes | None) -> Any:
    """A JSON record key or value back to Python: JsonConverter's envelope (Decimal, dates and
    timestamps decoded from their schema), or bare JSON as it is; None for a tombstone."""
    if raw is None:
        return None
    data = orjson.loads(raw)
    if not (isinstance(data, dict) and set(data) == {"schema", "payload"}):
        return data
    payload, schema = data["payload"], data["schema"] or {}
    if not isinstance(payload, dict):
        return _from_wire(payload, schema)
    fields = {f.get("field"): f for f in schema.get("fields", [])}
    return {k: _from_wire(v, fields.get(k, {})) for k, v in payload.items()}
