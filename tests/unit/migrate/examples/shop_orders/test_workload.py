"""The workload planner without a database: determinism, amounts, and a mirror that stays consistent."""

from __future__ import annotations

import random
import re
from collections import Counter
from decimal import Decimal

import pytest

from migrate.examples.shop_orders.rules import ALERT_ABOVE, CANCELLED, GOLD_ABOVE, SILVER_ABOVE, is_alert, loyalty_tier
from migrate.examples.shop_orders.workload import (
    OPS,
    SQL,
    TIERS,
    Op,
    Planner,
    WorkloadMix,
    WorkloadStats,
    amount,
    band_of,
)

CUSTOMERS = {i: (f"Customer {i}", TIERS[i % 3]) for i in range(1, 21)}


def planner(seed: int = 7, orders: dict[int, tuple[Decimal, str]] | None = None, **kwargs: object) -> Planner:
    start = orders if orders is not None else {i: (Decimal("50.00"), "NEW") for i in range(1, 11)}
    return Planner(random.Random(seed), customers=CUSTOMERS, orders=start,
                   next_order_id=max(start, default=0) + 1, **kwargs)  # type: ignore[arg-type]  # fmt: skip


def plan(p: Planner, n: int) -> list[Op]:
    return [p.next() for _ in range(n)]


def test_same_seed_and_start_give_the_same_operations() -> None:
    first, second = plan(planner(seed=11), 2000), plan(planner(seed=11), 2000)
    assert first == second
    assert plan(planner(seed=12), 2000) != first


def test_same_seed_gives_the_same_amounts() -> None:
    a, b = random.Random(3), random.Random(3)
    first = [amount(a, 0.1) for _ in range(1000)]
    assert first == [amount(b, 0.1) for _ in range(1000)]
    assert first != [amount(random.Random(4), 0.1) for _ in range(1000)]


def test_amounts_are_exact_cents_and_cross_every_threshold() -> None:
    rng = random.Random(1)
    values = [amount(rng, 0.1) for _ in range(20_000)]
    assert all(isinstance(v, Decimal) and v.as_tuple().exponent == -2 for v in values)
    assert all(Decimal("1.00") <= v <= Decimal("2500.00") for v in values)
    bands = Counter(band_of(v) for v in values)
    assert set(bands) == {0, 1, 2, 3}
    # A tenth of the orders are high-value (plus the few exactly-on-threshold edge amounts).
    assert 0.09 < sum(v > ALERT_ABOVE for v in values) / len(values) < 0.12
    # Boundary values themselves occur, so '>' vs '>=' mistakes show up in reconciliation.
    assert {SILVER_ABOVE, GOLD_ABOVE, ALERT_ABOVE, ALERT_ABOVE + Decimal("0.01")} <= set(values)


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_high_value_share_is_honoured(share: float) -> None:
    rng = random.Random(5)
    values = [amount(rng, share) for _ in range(10_000)]
    high = sum(v > ALERT_ABOVE for v in values) / len(values)
    assert abs(high - share) < 0.03


def test_every_update_moves_the_amount_across_a_threshold() -> None:
    p = planner()
    updates = 0
    for _ in range(3000):
        before = dict(p.orders)
        op = p.next()
        if op.kind == "update":
            assert op.amount is not None and op.order_id is not None
            old = before[op.order_id][0]
            assert band_of(op.amount) != band_of(old)
            # The business rules see the change: another loyalty tier or another alert verdict.
            assert (loyalty_tier(op.amount), is_alert(op.amount)) != (loyalty_tier(old), is_alert(old))
            updates += 1
    assert updates > 500


def test_the_mix_is_followed_and_zero_weights_never_happen() -> None:
    counts = Counter(op.kind for op in plan(planner(), 10_000))
    mix = WorkloadMix()
    total = sum(mix.weights())
    for kind, weight in zip(OPS, mix.weights(), strict=True):
        assert abs(counts[kind] / 10_000 - weight / total) < 0.02, (kind, counts)
    only = Counter(op.kind for op in plan(planner(mix=WorkloadMix(update=0, delete=0, cancel=0)), 1000))
    assert set(only) == {"insert", "customer_change"}


def test_operations_only_touch_rows_that_exist_and_the_mirror_matches_a_replay() -> None:
    """Replaying the ops on a plain dict gives the planner's own mirror: nothing refers to a missing row."""
    start = {i: (Decimal("150.00"), "PAID") for i in range(1, 6)}
    p = planner(orders=start, mix=WorkloadMix(insert=0.3, update=0.2, delete=0.3, cancel=0.2, customer_change=0.1))
    table, customers = dict(start), dict(CUSTOMERS)
    for op in plan(p, 5000):
        if op.kind == "insert":
            assert op.order_id is not None and op.amount is not None and op.age_ms is not None
            assert op.order_id not in table and op.customer_id in customers and op.status == "NEW"
            assert 0 <= op.age_ms < 4 * 86_400_000
            table[op.order_id] = (op.amount, "NEW")
        elif op.kind == "customer_change":
            assert op.customer_id in customers and op.name is not None and op.tier in TIERS
            assert (op.name, op.tier) != customers[op.customer_id]
            customers[op.customer_id] = (op.name, str(op.tier))
        else:
            assert op.order_id is not None and op.order_id in table, op
            if op.kind == "delete":
                del table[op.order_id]
            elif op.kind == "cancel":
                assert table[op.order_id][1] != CANCELLED
                table[op.order_id] = (table[op.order_id][0], CANCELLED)
            else:
                assert op.amount is not None and op.status is not None
                assert table[op.order_id][1] == CANCELLED or op.status != CANCELLED
                table[op.order_id] = (op.amount, op.status)
    assert table == p.orders and customers == p.customers


def test_an_empty_table_starts_with_an_insert_and_ids_continue_after_the_highest() -> None:
    p = planner(orders={}, mix=WorkloadMix(insert=0, update=1, delete=1, cancel=1, customer_change=0))
    first = p.next()
    assert (first.kind, first.order_id) == ("insert", 1)
    q = planner(orders={41: (Decimal("9.99"), "NEW")}, mix=WorkloadMix(insert=1, update=0, delete=0, cancel=0,
                                                                         customer_change=0))  # fmt: skip
    assert [op.order_id for op in plan(q, 3)] == [42, 43, 44]


def test_every_statement_binds_exactly_the_parameters_its_op_carries() -> None:
    seen: dict[str, Op] = {}
    p = planner()
    while len(seen) < len(OPS):
        op = p.next()
        seen.setdefault(op.kind, op)
    for kind, op in seen.items():
        assert set(re.findall(r":(\w+)", SQL[kind])) == set(op.params()), kind


def test_mix_rejects_negative_or_all_zero_weights() -> None:
    with pytest.raises(ValueError, match="mix"):
        WorkloadMix(insert=-1)
    with pytest.raises(ValueError, match="mix"):
        WorkloadMix(insert=0, update=0, delete=0, cancel=0, customer_change=0)


def test_stats_report_counts_and_achieved_rate() -> None:
    stats = WorkloadStats(insert=55, update=25, delete=5, cancel=5, customer_change=10, seconds=0.5, target_rate=200)
    assert stats.events == 100 and stats.rate == 200.0
    assert stats.to_dict() == {"insert": 55, "update": 25, "delete": 5, "cancel": 5, "customer_change": 10,
                               "seconds": 0.5, "target_rate": 200, "stopped": False, "events": 100,
                               "rate": 200.0}  # fmt: skip
