"""Arrow types for rows decoded from a change log, so DuckDB computes on them exactly.

Debezium's JSON carries no SQL type beside its logical names, so each column's type follows
from its decoded values (`cdc.envelope`): Decimal -> DECIMAL(p,s) with the values' largest scale
(Debezium scales every value of a DECIMAL column to the column's scale) and p 18 or 38;
timestamps with an offset -> UTC, without time zone; ints -> BIGINT (DECIMAL(20,0) past its
range: BIGINT UNSIGNED); BIT(1) booleans stay BOOLEAN and BIT(n>1) bytes BLOB; floats DOUBLE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa

from migrate.errors import DualrunError

_INT64 = (-(2**63), 2**63 - 1)
_BEYOND_BIGINT = pa.decimal128(20, 0)  # ints past BIGINT (BIGINT UNSIGNED)


def _decimal_type(values: list[Decimal]) -> pa.DataType:
    """DECIMAL(p,s): s the largest scale among the values, p 18 when the widest integer part and s
    fit in 18 digits (DuckDB's BIGINT-backed decimals), else 38."""
    scale = whole = 0
    for value in values:
        sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # finite: Debezium sends no NaN for DECIMAL
        scale = max(scale, -exponent)
        whole = max(whole, len(digits) + exponent)
    if whole + scale > 38:
        raise DualrunError(f"a DECIMAL value needs {whole + scale} digits; DuckDB holds at most 38")
    return pa.decimal128(18 if whole + scale <= 18 else 38, scale)


_TIMESTAMPS = ("Timestamp", "MicroTimestamp", "NanoTimestamp", "ZonedTimestamp", "IsoTimestamp")
_TIMES = ("Time", "MicroTime", "NanoTime", "ZonedTime")
_PLAIN = {"int8": pa.int64(), "int16": pa.int64(), "int32": pa.int64(), "int64": pa.int64(), "boolean": pa.bool_(),
          "float32": pa.float64(), "float64": pa.float64(), "string": pa.string(), "bytes": pa.binary()}  # fmt: skip


def schema_type(field: Mapping[str, Any] | None) -> pa.DataType:
    """The Arrow type of a column that holds no value, from its Connect field schema in the log
    (the types `column_type` gives the decoded values of the same schema); VARCHAR when unknown.

    >>> schema_type({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
    ...              "parameters": {"scale": "2", "connect.decimal.precision": "10"}})
    Decimal128Type(decimal128(18, 2))
    >>> schema_type({"type": "int64", "name": "io.debezium.time.MicroTimestamp"})
    TimestampType(timestamp[us])
    """
    if not field:
        return pa.string()
    name = str(field.get("name") or "")
    short = name.rsplit(".", 1)[-1]
    if name == "org.apache.kafka.connect.data.Decimal":
        parameters = field.get("parameters") or {}
        scale = int(parameters.get("scale", 0))
        precision = int(parameters.get("connect.decimal.precision", 38))
        return pa.decimal128(18 if precision <= 18 else 38, min(scale, 38))
    if name.startswith(("io.debezium.time.", "org.apache.kafka.connect.data.")):
        if short == "Date":
            return pa.date32()
        if short in _TIMESTAMPS:
            return pa.timestamp("us")
        if short in _TIMES:
            return pa.time64("us")
        if short == "Year":
            return pa.int64()
    if name == "io.debezium.data.VariableScaleDecimal":
        return pa.decimal128(38, 10)
    return _PLAIN.get(str(field.get("type")), pa.string())


def column_type(table: str, column: str, values: list[Any]) -> tuple[pa.DataType, list[Any]]:
    """The Arrow type of one column and its values made fit for it (timestamps to naive UTC).

    >>> column_type("t", "c", [Decimal("1.50"), Decimal("-12.25"), None])[0]
    Decimal128Type(decimal128(18, 2))
    >>> column_type("t", "c", [datetime(2024, 1, 1, 2, tzinfo=UTC)])[1]
    [datetime.datetime(2024, 1, 1, 2, 0)]
    """
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if not kinds:
        return pa.string(), values
    if kinds == {bool}:
        return pa.bool_(), values
    if kinds <= {int}:
        if all(_INT64[0] <= v <= _INT64[1] for v in present):
            return pa.int64(), values
        return _BEYOND_BIGINT, [None if v is None else Decimal(v) for v in values]
    if kinds <= {Decimal, int}:
        decimals = [Decimal(v) for v in present]
        return _decimal_type(decimals), [None if v is None else Decimal(v) for v in values]
    if kinds <= {float, int}:
        return pa.float64(), [None if v is None else float(v) for v in values]
    if kinds == {datetime}:
        return pa.timestamp("us"), [_utc(v) for v in values]
    if kinds == {date}:
        return pa.date32(), values
    if kinds == {time}:
        return pa.time64("us"), values
    if kinds <= {timedelta, time}:
        return pa.duration("us"), [_duration(v) for v in values]
    if kinds == {str}:
        return pa.string(), values
    if kinds <= {bytes, bytearray}:
        return pa.binary(), [None if v is None else bytes(v) for v in values]
    if kinds <= {dict, list}:
        return pa.string(), [None if v is None else orjson.dumps(v).decode() for v in values]
    names = ", ".join(sorted(k.__name__ for k in kinds))
    raise DualrunError(f"{table}.{column}: the log holds values of mixed types ({names}); cannot type the column")


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _duration(value: timedelta | time | None) -> timedelta | None:
    if isinstance(value, time):
        return timedelta(hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond)
    return value


def arrow_table(
    table: str, rows: Iterable[dict[str, Any]], columns: tuple[str, ...],
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> pa.Table:  # fmt: skip
    """Rows (column -> decoded value) as one Arrow table, columns in `columns` order (the change
    events' schema order), each typed by `column_type`; a column without a value by its Connect
    schema in `schemas` (`schema_type`), not as text."""
    listed = list(rows)
    names = list(columns) or list(dict.fromkeys(c for row in listed for c in row))
    arrays = {}
    for name in names:
        values = [row.get(name) for row in listed]
        if all(v is None for v in values):
            arrays[name] = pa.array(values, schema_type((schemas or {}).get(name)))
            continue
        kind, values = column_type(table, name, values)
        arrays[name] = pa.array(values, kind)
    return pa.table(arrays) if arrays else pa.table({})


def arrow_batches(
    table: str, batches: Iterable[list[dict[str, Any]]], columns: tuple[str, ...],
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> pa.Table:  # fmt: skip
    """`arrow_table` of all the rows of `batches`, built one batch at a time (no list of every row).

    Each batch is typed on its own; a column whose batches disagree (a DECIMAL needing 38 digits
    in one batch only, ints past BIGINT in one, TIME and durations) is typed again over all its
    values, exactly as `arrow_table` would; batches without a value take the column's type.
    """
    if not columns:  # names come from the rows themselves: type them all at once
        return arrow_table(table, [row for batch in batches for row in batch], columns, schemas)
    parts = [arrow_table(table, batch, columns, schemas) for batch in batches if batch]
    if not parts:
        return arrow_table(table, [], columns, schemas)
    arrays = {}
    for name in columns:
        pieces = [part.column(name) for part in parts]
        valued = {p.type for p in pieces if p.null_count < len(p)}
        if not valued:
            arrays[name] = pa.chunked_array([c for p in pieces for c in p.chunks], pieces[0].type)
            continue
        if len(valued) == 1:
            (kind,) = valued
            chunks = [c for p in pieces for c in (p.chunks if p.type == kind else [pa.nulls(len(p), kind)])]
            arrays[name] = pa.chunked_array(chunks, kind)
            continue
        if valued == {pa.int64(), _BEYOND_BIGINT}:  # ints, some past BIGINT: what column_type gives all of them
            arrays[name] = pa.chunked_array([c.cast(_BEYOND_BIGINT) for p in pieces for c in p.chunks], _BEYOND_BIGINT)
            continue
        kind, values = column_type(table, name, [v for p in pieces for v in p.to_pylist()])
        arrays[name] = pa.chunked_array([pa.array(values, kind)], kind)
    return pa.table(arrays)
