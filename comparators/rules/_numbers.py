"""Parsing of the numbers rules take, as Decimal so tolerances stay exact, and the
decimal reading of binary floats that tolerances are checked against."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from comparators.errors import RuleError

# A DOUBLE is read as the shortest decimal that rounds to it (what every report shows,
# e.g. 1.01 rather than 1.0100000000000000088...), exactly when that decimal has at most
# 18 places and magnitude below 1e19; beyond that the tolerance is checked in DOUBLE.
FLOAT_DECIMAL = "DECIMAL(37,18)"


def non_negative(argument: str, rule: str) -> Decimal:
    try:
        value = Decimal(argument)
    except InvalidOperation:
        raise RuleError(f"{rule}: {argument!r} is not a number; e.g. {rule}:0.01") from None
    if not value.is_finite() or value < 0:
        raise RuleError(f"{rule}: tolerance must be a finite number >= 0, got {argument!r}")
    return value


def as_decimal(expr: str) -> str:
    """SQL: a float's shortest decimal form as a DECIMAL, NULL when it does not fit.

    >>> as_decimal('"x"')
    'TRY_CAST(CAST("x" AS VARCHAR) AS DECIMAL(37,18))'
    """
    return f"TRY_CAST(CAST({expr} AS VARCHAR) AS {FLOAT_DECIMAL})"


def is_float(sql_type: str) -> bool:
    return sql_type.upper() in ("DOUBLE", "FLOAT", "REAL")
