"""Per-partition counts, sums and fingerprints."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from tests.unit.comparators.conftest import rec, table

D1, D2, D3 = date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)
LEFT = table(
    id=[1, 2, 3, 4, 5, 6],
    day=[D1, D1, D2, D2, D3, D3],
    amount=[D("1.00"), D("2.00"), D("3.00"), D("4.00"), D("5.00"), D("6.00")],
    x=[1.5, 2.5, 3.5, 4.5, 5.5, 6.5],
)


def test_identical_partitions() -> None:
    r = rec(LEFT, LEFT, partition="day")
    assert r.aggregates is not None
    assert (r.aggregates.partitions, r.aggregates.differing, r.aggregates.aggregate_mismatches) == (
        3, (), 0
    )  # fmt: skip


def test_differences_are_localised_to_their_partitions() -> None:
    right = table(
        id=[1, 2, 3, 4, 5],
        day=[D1, D1, D2, D2, D3],
        amount=[D("1.00"), D("2.00"), D("3.00"), D("4.01"), D("5.00")],
        x=[1.5, 2.5, 3.5, 4.5, 5.5],
    )
    r = rec(LEFT, right, partition="day", rules={"amount": "abs:0.01"})
    agg = r.aggregates
    assert agg is not None and agg.partitions == 3
    by_day = {p.value: p for p in agg.differing}
    assert set(by_day) == {D2, D3}
    assert by_day[D2].left_rows == by_day[D2].right_rows == 2
    assert by_day[D2].sums == (("amount", D("7.00"), D("7.01")),)
    assert not by_day[D2].fingerprint_equal
    assert (by_day[D3].left_rows, by_day[D3].right_rows) == (2, 1)
    assert agg.aggregate_mismatches == 2
    loose = rec(LEFT, right, partition="day", aggregate_tolerance="0.01", rules={"amount": "abs:1"})
    assert loose.aggregates is not None and loose.aggregates.aggregate_mismatches == 1


def test_float_sums_get_slack_for_addition_order() -> None:
    left = table(id=list(range(100)), p=[1] * 100, x=[0.1] * 100)
    right = table(id=list(reversed(range(100))), p=[1] * 100, x=[0.1] * 100)
    r = rec(left, right, partition="p")
    assert r.aggregates is not None and r.aggregates.aggregate_mismatches == 0
