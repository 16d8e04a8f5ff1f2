"""Exact, machine-independent text for comparing a database value with its decoded change-log value.

Both sides become the same text when they hold the same value: DECIMAL and integers as plain
decimal numbers without trailing zeros; a double as the shortest text that reads back as it
(what Debezium's JSON carries), so a double that cannot hold a DECIMAL shows its own digits;
timestamps in UTC (the database session runs in UTC, Debezium's zoned values carry their
offset); bytes in hex. No float arithmetic and no local time zone are involved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

KEY_SEPARATOR = "\x1f"


def _number(value: Decimal) -> str:
    if not value.is_finite():
        return str(value)
    if value.is_zero():
        return "0"
    return format(value.normalize(), "f")


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

    def texts(image: dict[str, Any]) -> tuple[str | None, ...]:
        row = string_decimals(image, kinds, settings)
        return tuple(canonical(row.get(c)) for c in listed)

    return texts


def key_of_texts(texts: Sequence[str | None], positions: Sequence[int]) -> str:
    """`key_text` of a row already in comparison text (`row_texts`), its key at `positions`."""
    return KEY_SEPARATOR.join("\x00" if texts[i] is None else str(texts[i]) for i in positions)
