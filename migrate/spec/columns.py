"""Column types a spec may name (`outputs.<name>.batch.columns`), as SQL type names -> Arrow types.

The names are the SQL ones users write in their batch queries; money stays exact: DECIMAL(p,s)
maps to Arrow's decimal128 (p <= 38, DuckDB's limit), never to a float.
"""

from __future__ import annotations

import re

import pyarrow as pa

_SIMPLE: dict[str, pa.DataType] = {
    "TINYINT": pa.int8(),
    "SMALLINT": pa.int16(),
    "INT": pa.int32(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "FLOAT": pa.float32(),
    "REAL": pa.float32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "DATE": pa.date32(),
    "DATETIME": pa.timestamp("ms"),
    "TIMESTAMP": pa.timestamp("ms"),
    "TIMESTAMP(6)": pa.timestamp("us"),
    "DATETIME(6)": pa.timestamp("us"),
    "VARCHAR": pa.string(),
    "TEXT": pa.string(),
    "STRING": pa.string(),
    "BLOB": pa.binary(),
}
_DECIMAL = re.compile(r"(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
_SIZED_TEXT = re.compile(r"(?:VAR)?CHAR\s*\(\s*\d+\s*\)")
MAX_DECIMAL_PRECISION = 38
SUPPORTED = "DECIMAL(p,s), TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, BOOLEAN, DATE, DATETIME, TIMESTAMP, VARCHAR"


def arrow_type(text: str) -> pa.DataType:
    """The Arrow type of a SQL type name; ValueError names what is supported.

    >>> arrow_type("decimal(18, 2)"), arrow_type("BIGINT"), arrow_type("varchar(16)")
    (Decimal128Type(decimal128(18, 2)), DataType(int64), DataType(string))
    """
    name = " ".join(text.upper().split())
    if name in _SIMPLE:
        return _SIMPLE[name]
    if match := _DECIMAL.fullmatch(name):
        precision, scale = int(match[1]), int(match[2] or 0)
        if not 1 <= precision <= MAX_DECIMAL_PRECISION or scale > precision:
            raise ValueError(
                f"{text!r}: DECIMAL needs 1 <= precision <= {MAX_DECIMAL_PRECISION} and scale <= precision"
            )
        return pa.decimal128(precision, scale)
    if _SIZED_TEXT.fullmatch(name):
        return pa.string()
    raise ValueError(f"unknown column type {text!r}; use one of {SUPPORTED}")
