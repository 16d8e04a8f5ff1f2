"""Exact, machine-independent text for comparing a database value with its decoded change-log value.

Both sides become the same text when they hold the same value: DECIMAL and integers as plain
decimal numbers without trailing zeros; a double as the shortest text that reads back as it
(what Debezium's JSON carries), so a double that cannot hold a DECIMAL shows its own digits;
timestamps in UTC (the database session runs in UTC, Debezium's zoned values carry their
offset); bytes in hex. No float arithmetic and no local time zone are involved.

Two column kinds need their own rule (`text_of`): FLOAT (single precision) compares the float32
both values round to (`float32_text`); BIT compares the bits, whatever byte order or boolean
each side sends them in (`bits_text`). A FLOAT from the connector's snapshot (op=r) is what the
database prints (6 significant digits), not the stored single: it counts as the database's value
when it equals the printed value of the same row (`migrate.verify.run`). DOUBLE needs none: the
database sends the shortest text that reads back as the stored double, Debezium the double itself.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Literal

KEY_SEPARATOR = "\x1f"


def _number(value: Decimal) -> str:
    if not value.is_finite():
        return str(value)
    if value.is_zero():
        return "0"
    # normalize() rounds to its context's precision (28 digits by default): give it every digit.
    return format(value.normalize(Context(prec=len(value.as_tuple().digits))), "f")


def _micros_text(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, fraction = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{sign}{hours:02d}:{minute:02d}:{second:02d}.{fraction:06d}"


def canonical(value: Any) -> str | None:
    """The comparison text of one value (None for NULL).

    >>> canonical(Decimal("129.9900")), canonical(129.99), canonical(12345678901234.5678)
    ('129.99', '129.99', '12345678901234.568')
    >>> canonical(True), canonical(1), canonical(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    ('1', '1', '2024-01-02 03:04:05.000000')
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, float):
        return _number(Decimal(repr(value)))
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
        return _micros_text(micros)
    if isinstance(value, timedelta):
        return _micros_text((value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def float32_text(value: Any) -> str | None:
    """A FLOAT (single precision) value as the float32 the database stores: the value rounded to
    the nearest IEEE 754 single (both sides: the database's value read as a double, Debezium's
    FLOAT32 as the shortest text Kafka's JSON converter writes), then written as that single's
    exact decimal expansion. Rounding a double to a single is exact IEEE arithmetic (`struct`),
    so the text depends on no machine, locale or repr. Values a single cannot hold are compared
    as they are.

    >>> float32_text(1.1), float32_text(1.100000023841858), float32_text(Decimal("1.1"))
    ('1.10000002384185791015625', '1.10000002384185791015625', '1.10000002384185791015625')
    >>> float32_text(16777217.0)  # above 2**24 a single steps by 2: the database stored 16777216
    '16777216'
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return canonical(value)
    try:
        single = struct.unpack("<f", struct.pack("<f", float(value)))[0]
    except OverflowError:
        return canonical(value)
    return _number(Decimal(single))  # Decimal(float) is the exact binary value


def bits_text(value: Any, byteorder: Literal["big", "little"]) -> str | None:
    """A BIT(n) value as its bits, most significant first, without leading zeros ('0' for none).

    The database sends BIT as bytes, most significant byte first; Debezium sends BIT(1) as a
    boolean and BIT(n>1) as bytes in little-endian order (`io.debezium.data.Bits`), so each side
    names its `byteorder`.

    >>> bits_text(b"\\x01\\x02", "big"), bits_text(b"\\x02\\x01", "little"), bits_text(True, "little")
    ('100000010', '100000010', '1')
    """
    if value is None:
        return None
    if isinstance(value, bool | int):
        return format(int(value), "b")
    if isinstance(value, bytes | bytearray | memoryview):
        return format(int.from_bytes(bytes(value), byteorder), "b")
    return canonical(value)


def text_of(kind: str, side: Literal["database", "log"]) -> Callable[[Any], str | None]:
    """The comparison text function for a column of `kind` ("float32", "bit", else `canonical`)
    on one side: only BIT differs between the sides (byte order)."""
    if kind == "float32":
        return float32_text
    if kind == "bit":
        order: Literal["big", "little"] = "big" if side == "database" else "little"
        return lambda value: bits_text(value, order)
    return canonical


def string_decimals(row: dict[str, Any], kinds: Mapping[str, str], settings: Mapping[str, str]) -> dict[str, Any]:
    """`row` with DECIMAL columns read back as Decimal when the connector sends them as text
    (`decimal.handling.mode=string`, e.g. "129.9900"): text decimals are exact, so they compare
    equal to the database's after `canonical`, never as a difference.

    >>> string_decimals({"total": "129.9900"}, {"total": "decimal"}, {"decimal.handling.mode": "string"})
    {'total': Decimal('129.9900')}
    """
    if settings.get("decimal.handling.mode") != "string":
        return row
    return {c: _decimal(v) if kinds.get(c) == "decimal" else v for c, v in row.items()}


def _decimal(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return Decimal(value)
    except InvalidOperation:
        return value  # not a number: compared as the text it is, and differs


def key_text(values: tuple[Any, ...]) -> str:
    """One comparable string for a (composite) primary key."""
    return KEY_SEPARATOR.join("\x00" if v is None else str(canonical(v)) for v in values)


def row_texts(
    names: Sequence[str], kinds: Mapping[str, str], settings: Mapping[str, str]
) -> Callable[[dict[str, Any]], tuple[str | None, ...]]:
    """A change event's row image -> its columns' comparison text in `names` order (what the
    rebuilt table keeps per key: one tuple of short strings, not the decoded values).

    >>> row_texts(["id", "total"], {"total": "decimal"}, {})({"id": 7, "total": Decimal("1.50")})
    ('7', '1.5')
    """
    listed = tuple(names)
    text = tuple(text_of(kinds.get(c, "other"), "log") for c in listed)

    def texts(image: dict[str, Any]) -> tuple[str | None, ...]:
        row = string_decimals(image, kinds, settings)
        return tuple(f(row.get(c)) for f, c in zip(text, listed, strict=True))

    return texts


def key_of_texts(texts: Sequence[str | None], positions: Sequence[int]) -> str:
    """`key_text` of a row already in comparison text (`row_texts`), its key at `positions`."""
    return KEY_SEPARATOR.join("\x00" if texts[i] is None else str(texts[i]) for i in positions)
