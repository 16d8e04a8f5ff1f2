"""Decoded output records as Arrow: the changelog's META columns plus the output's columns, typed by
the spec's schema when there is one, else inferred (a value that fits no type is kept as text)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

from migrate.errors import TapError
from migrate.stream.decoder import META, DecodedRecord


def to_arrow(rows: Sequence[DecodedRecord], schema: pa.Schema | None, base_us: int) -> pa.Table:
    """Decoded records as one changelog table; `__processed_at` = base_us + i microseconds."""
    names: dict[str, None] = dict.fromkeys(schema.names if schema is not None else ())
    for row in rows:
        for name in row.columns:
            if name not in names:
                names[name] = None
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for name in names:
        kind = schema.field(name).type if schema is not None and name in schema.names else None
        array = column(name, [row.columns.get(name) for row in rows], kind)
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    positions = [row.position for row in rows]
    meta: list[Any] = [
        [row.op for row in rows],
        [p.pos_file if p else None for p in positions],
        [p.pos_offset if p else None for p in positions],
        [p.gtid if p else None for p in positions],
        [p.lsn if p else None for p in positions],
        [p.source_ts_ms if p else None for p in positions],
        pa.array(range(base_us, base_us + len(rows)), type=pa.int64()).cast(pa.timestamp("us")),
        [p.pos_order if p else None for p in positions],
        [row.partition for row in rows],
        [row.offset for row in rows],
        [p is not None for p in positions],
    ]
    for values, meta_field in zip(meta, META, strict=True):
        arrays.append(values if isinstance(values, pa.Array) else pa.array(values, type=meta_field.type))
        fields.append(meta_field)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def column(name: str, values: list[Any], kind: pa.DataType | None) -> pa.Array:
    """One column, typed as the batch output types it when known. Exact: a value that does not fit
    (a cent beyond DECIMAL(p, 2), text in a number column) raises TapError, never rounds; the tap
    keeps such records as undecodable evidence (`_SegmentWriter._without_misfits`)."""
    try:
        if kind is None:
            try:
                return pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                return pa.array([None if v is None else as_text(v) for v in values], type=pa.string())
        if pa.types.is_decimal(kind) or pa.types.is_temporal(kind) and any(isinstance(v, str) for v in values):
            # From text, then cast: exact, and "12.50", 12.5 and Decimal('12.5') all agree.
            texts = [v if type(v) is str or v is None else as_text(v) for v in values]
            return pa.array(texts, type=pa.string()).cast(kind)
        try:
            return pa.array(values, type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array([None if v is None else as_text(v) for v in values], type=pa.string()).cast(kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        sample = next((v for v in values if v is not None), None)
        raise TapError(f"column {name!r} holds a value ({sample!r}, ...) that is not a {kind}: {exc}") from exc


def as_text(value: Any) -> str:
    """A value as the text the tap keeps when it cannot type it (also the evidence's key text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return str(value)
