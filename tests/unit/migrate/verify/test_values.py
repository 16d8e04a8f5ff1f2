"""Comparison text of log values (migrate.verify.values)."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from migrate.verify.values import canonical, float32_text, string_decimals, text_of

KINDS = {"id": "other", "total": "decimal"}


def test_string_decimals_compare_equal_to_the_databases_decimal() -> None:
    row = string_decimals({"id": "7", "total": "129.9900"}, KINDS, {"decimal.handling.mode": "string"})
    assert canonical(row["total"]) == canonical(Decimal("129.99")) == "129.99"
    assert row["id"] == "7"  # only DECIMAL columns are read back as numbers


def test_string_decimals_only_in_string_mode_and_never_on_non_numbers() -> None:
    assert string_decimals({"total": "129.9900"}, KINDS, {"decimal.handling.mode": "precise"}) == {"total": "129.9900"}
    assert string_decimals({"total": "NaNx"}, KINDS, {"decimal.handling.mode": "string"}) == {"total": "NaNx"}
    assert string_decimals({"total": None}, KINDS, {"decimal.handling.mode": "string"}) == {"total": None}


# FLOAT (single precision): the database's value read as DOUBLE (the stored single widened,
# exactly) and Debezium's FLOAT32 as the shortest text of the single must give the same text;
# a different single must not.
FLOAT_CASES = [
    # (the database's CAST(f AS DOUBLE), the JSON converter's text of the same single)
    (1.100000023841858, "1.1"),
    (0.30000001192092896, "0.3"),
    (-3.4028234663852886e38, "-3.4028235E38"),
    (1.401298464324817e-45, "1.4E-45"),  # the smallest subnormal single
    (16777216.0, "1.6777216E7"),
    (0.0, "0.0"),
]


@pytest.mark.parametrize(("database", "log"), FLOAT_CASES)
def test_float32_texts_agree_between_the_database_and_debezium(database: float, log: str) -> None:
    assert float32_text(database) == float32_text(float(log))


def test_float32_text_tells_neighbouring_singles_apart_and_never_uses_repr() -> None:
    one = float32_text(1.0)
    next_single = float32_text(struct.unpack("<f", struct.pack("<I", 0x3F800001))[0])
    assert one == "1" and next_single == "1.00000011920928955078125"
    assert float32_text(None) is None


def test_float32_text_needs_no_locale_or_float_formatting() -> None:
    for database, _ in FLOAT_CASES:
        text = float32_text(database)
        assert text is not None and "e" not in text.lower() and "," not in text
        assert Decimal(text) == Decimal(database)  # the widened single exactly, digit for digit
    assert float32_text(1e300) == canonical(1e300)  # out of a single's range: compared as is


@pytest.mark.parametrize(
    ("database", "log", "bits"),
    [
        (b"\x01", True, "1"),  # BIT(1): Debezium sends a boolean
        (b"\x00", False, "0"),
        (b"\x01\x02", b"\x02\x01", "100000010"),  # BIT(9..16): little-endian from Debezium
        (b"\x00\x00\x05", b"\x05\x00\x00", "101"),
        (b"\xff" * 8, b"\xff" * 8, "1" * 64),  # BIT(64)
    ],
)
def test_bits_agree_between_the_databases_bytes_and_debeziums_encoding(database: bytes, log: object, bits: str) -> None:
    assert text_of("bit", "database")(database) == bits == text_of("bit", "log")(log)


def test_a_flipped_bit_or_byte_order_differs() -> None:
    assert text_of("bit", "database")(b"\x01\x02") != text_of("bit", "log")(b"\x01\x02")
    assert text_of("bit", "database")(None) is None and text_of("other", "log") is canonical


def test_long_decimals_keep_every_digit() -> None:
    """DECIMAL(65,30) has more digits than Decimal's default 28-digit context: none may be rounded."""
    value = Decimal("12345678901234567890123456789012345.123456789012345678901234567890")
    assert canonical(value) == "12345678901234567890123456789012345.12345678901234567890123456789"
    assert canonical(Decimal("1.10000000000000000000000000000000000000")) == "1.1"
