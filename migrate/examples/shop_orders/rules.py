"""The shop pipeline's business rules and output schemas, shared by both jobs.

The batch job expresses these rules in SQL (`sql/*.sql`) and the streaming job in Python
(`transform.py`); a unit test holds the SQL's thresholds to the ones here.
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa

GOLD_ABOVE = Decimal("200")
SILVER_ABOVE = Decimal("100")
ALERT_ABOVE = Decimal("500")
CANCELLED = "CANCELLED"

AMOUNT = pa.decimal128(12, 2)
REVENUE = pa.decimal128(18, 2)

SCHEMAS: dict[str, pa.Schema] = {
    "orders_enriched": pa.schema(
        [
            ("order_id", pa.int64()),
            ("customer_id", pa.int32()),
            ("customer_name", pa.string()),
            ("customer_tier", pa.string()),
            ("amount", AMOUNT),
            ("status", pa.string()),
            ("loyalty_tier", pa.string()),
            ("order_day", pa.date32()),
            ("created_at", pa.timestamp("ms")),
            ("updated_at", pa.timestamp("ms")),
        ]
    ),
    "order_alerts": pa.schema([("order_id", pa.int64()), ("customer_id", pa.int32()), ("amount", AMOUNT)]),
    "daily_revenue": pa.schema(
        [
            ("customer_id", pa.int32()),
            ("order_day", pa.date32()),
            ("order_count", pa.int64()),
            ("revenue", REVENUE),
        ]
    ),
}
KEYS: dict[str, tuple[str, ...]] = {
    "orders_enriched": ("order_id",),
    "order_alerts": ("order_id",),
    "daily_revenue": ("customer_id", "order_day"),
}


def loyalty_tier(amount: Decimal) -> str:
    """The article's tier by order amount.

    >>> loyalty_tier(Decimal("200.00")), loyalty_tier(Decimal("200.01")), loyalty_tier(Decimal("100"))
    ('SILVER', 'GOLD', 'BRONZE')
    """
    if amount > GOLD_ABOVE:
        return "GOLD"
    if amount > SILVER_ABOVE:
        return "SILVER"
    return "BRONZE"


def is_alert(amount: Decimal) -> bool:
    """High-value orders raise an alert.

    >>> is_alert(Decimal("500.00")), is_alert(Decimal("500.01"))
    (False, True)
    """
    return amount > ALERT_ABOVE


def counts_for_revenue(status: str) -> bool:
    """Cancelled orders leave the nightly revenue."""
    return status != CANCELLED
