"""Parsing of the numbers rules take, as Decimal so tolerances stay exact."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from comparators.errors import RuleError


def non_negative(argument: str, rule: str) -> Decimal:
    try:
        value = Decimal(argument)
    except InvalidOperation:
        raise RuleError(f"{rule}: {argument!r} is not a number; e.g. {rule}:0.01") from None
    if not value.is_finite() or value < 0:
        raise RuleError(f"{rule}: tolerance must be a finite number >= 0, got {argument!r}")
    return value
