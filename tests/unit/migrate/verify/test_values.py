"""Comparison text of log values (migrate.verify.values)."""

from __future__ import annotations

from decimal import Decimal

from migrate.verify.values import canonical, string_decimals

KINDS = {"id": "other", "total": "decimal"}


def test_string_decimals_compare_equal_to_the_databases_decimal() -> None:
    row = string_decimals({"id": "7", "total": "129.9900"}, KINDS, {"decimal.handling.mode": "string"})
    assert canonical(row["total"]) == canonical(Decimal("129.99")) == "129.99"
    assert row["id"] == "7"  # only DECIMAL columns are read back as numbers


def test_string_decimals_only_in_string_mode_and_never_on_non_numbers() -> None:
    assert string_decimals({"total": "129.9900"}, KINDS, {"decimal.handling.mode": "precise"}) == {"total": "129.9900"}
    assert string_decimals({"total": "NaNx"}, KINDS, {"decimal.handling.mode": "string"}) == {"total": "NaNx"}
    assert string_decimals({"total": None}, KINDS, {"decimal.handling.mode": "string"}) == {"total": None}
