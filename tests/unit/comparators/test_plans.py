"""The two candidate plans (integer-key join, aggregate) give identical results, and the
integer-key plan is taken exactly when its conditions hold."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comparators import Settings, reconcile
from comparators.errors import SpecError
from comparators.result import Reconciliation
from tests.unit.comparators.conftest import SETTINGS, table

AGGREGATE = dataclasses.replace(SETTINGS, strategy="aggregate")
JOIN_STEP = "joining row hashes"


def both(left: Any, right: Any, keys: list[str] | None = None, **kwargs: Any) -> tuple[
    Reconciliation, list[str]
]:  # fmt: skip
    """Reconcile with each plan; assert equal results; return one and the auto run's steps."""
    steps: list[str] = []
    auto = reconcile(left, right, keys or ["id"], settings=SETTINGS, progress=steps.append,
                     **kwargs)  # fmt: skip
    agg = reconcile(left, right, keys or ["id"], settings=AGGREGATE, **kwargs)
    a, b = auto.to_dict(), agg.to_dict()
    a.pop("elapsed_s", None), b.pop("elapsed_s", None)
    assert a == b
    return auto, steps


def test_integer_key_plan_is_used_for_unique_integer_keys() -> None:
    left = table(id=[1, 2, 3, 4], v=[1.0, 2.0, 3.0, 4.0], s=["a", "b", None, "d"])
    right = table(id=[2, 3, 4, 5], v=[2.0, 3.5, 4.0, 5.0], s=["b", "c", "d", "e"])
    r, steps = both(left, right)
    assert JOIN_STEP in steps
    assert (r.only_in_left, r.only_in_right, r.mismatched_rows, r.matched_rows) == (1, 1, 1, 3)
    cols = {c.name: c for c in r.columns}
    assert (cols["v"].mismatches, cols["s"].mismatches, cols["s"].null_vs_value) == (1, 1, 1)


@pytest.mark.parametrize(
    ("left", "right", "keys"),
    [
        # a repeated key on either side: the aggregate plan counts duplicates
        (table(id=[1, 1, 2], v=[1, 1, 2]), table(id=[1, 2], v=[1, 2]), ["id"]),
        (table(id=[1, 2], v=[1, 2]), table(id=[1, 2, 2], v=[1, 2, 3]), ["id"]),
        # NULL keys
        (table(id=[1, None], v=[1, 2]), table(id=[1, None], v=[1, 2]), ["id"]),
        # string and composite keys
        (table(id=["a", "b"], v=[1, 2]), table(id=["a", "c"], v=[1, 2]), ["id"]),
        (table(id=[1, 2], x=[1, 1], v=[1, 2]), table(id=[1, 2], x=[1, 2], v=[1, 2]), ["id", "x"]),
        # keys far sparser than the rows: the bitmap would be too large
        (table(id=[1, 10**12], v=[1, 2]), table(id=[1, 10**12], v=[1, 3]), ["id"]),
        # beyond BIGINT
        (
            pa.table({"id": pa.array([1, 2**64 - 1], pa.uint64()), "v": [1, 2]}),
            pa.table({"id": pa.array([1, 2**64 - 1], pa.uint64()), "v": [1, 3]}),
            ["id"],
        ),
    ],
)
def test_aggregate_plan_otherwise_with_identical_results(left: pa.Table, right: pa.Table, keys: list[str]) -> None:
    _, steps = both(left, right, keys)
    assert JOIN_STEP not in steps


@pytest.mark.parametrize(
    "right",
    [
        table(id=[1, 2, 2, 9], v=[1, 2, 2, 9]),  # both copies identical to the left row
        table(id=[1, 2, 2, 9], v=[1, 2, 7, 9]),  # one identical copy, one differing
        table(id=[1, 2, 9, 9], v=[1, 2, 9, 9]),  # repeated key missing on the left
        table(id=[1, 2, 2, 9], v=[1, 5, 6, 9]),  # no identical copy
    ],
)
def test_a_repeated_right_key_found_by_the_join_falls_back_to_the_aggregate_plan(
    right: pa.Table,
) -> None:
    left = table(id=[1, 2, 3, 4], v=[1, 2, 3, 4])
    r, steps = both(left, right)
    assert JOIN_STEP in steps and any("starting over" in s for s in steps)
    assert r.right.duplicate_keys == 1 and r.right.duplicate_rows == 2


def test_integer_key_plan_at_the_ends_of_bigint_and_across_bitmap_blocks() -> None:
    big = 2**63 - 70_000
    ids = [big + i for i in range(0, 70_000, 7)]  # two 65,536-value blocks
    left = pa.table({"id": pa.array(ids, pa.int64()), "v": list(range(len(ids)))})
    right_ids = ids[1:] + [2**63 - 1]
    right_v = list(range(1, len(ids))) + [0]
    right_v[100] = -1
    right = pa.table({"id": pa.array(right_ids, pa.int64()), "v": right_v})
    r, steps = both(left, right)
    assert JOIN_STEP in steps
    assert (r.only_in_left, r.only_in_right, r.mismatched_rows) == (1, 1, 1)
    negative = pa.table({"id": pa.array([-(2**63), -5, 0, 5], pa.int64()), "v": [1, 2, 3, 4]})
    _, steps = both(negative, negative.slice(1))
    assert JOIN_STEP not in steps  # the range spans 2**63 values: too sparse for a bitmap
    lowest = pa.table({"id": pa.array([-(2**63), -(2**63) + 3], pa.int64()), "v": [1, 2]})
    r, steps = both(lowest, lowest.slice(1))
    assert JOIN_STEP in steps and (r.only_in_left, r.matched_rows) == (1, 1)
    small = pa.table({"id": pa.array([-5, -1, 0, 5], pa.int8()), "v": [1, 2, 3, 4]})
    wide = pa.table({"id": pa.array([-5, -1, 0, 6], pa.int64()), "v": [1, 2, 3, 4]})
    r, steps = both(small, wide)
    assert JOIN_STEP in steps and (r.only_in_left, r.only_in_right) == (1, 1)


def test_integer_key_plan_with_renames_in_flight_and_keys_only() -> None:
    from datetime import datetime

    from comparators import InFlight

    t1, t2, cut = datetime(2024, 5, 1, 1), datetime(2024, 5, 1, 3), datetime(2024, 5, 1, 2)
    left = table(id=[1, 2, 3, 4], v=[1, 2, 3, 4], at=[t1, t1, t1, t1])
    right = table(id=[1, 2, 3, 5], value=[1, 9, 8, 5], ts=[t1, t2, t1, t2])
    r, steps = both(
        left, right, rename={"value": "v", "ts": "at"}, in_flight=InFlight("at", cut),
        ignore=["at"],
    )  # fmt: skip
    assert JOIN_STEP in steps
    assert (r.in_flight_rows, r.mismatched_rows, r.only_in_left, r.only_in_right) == (2, 1, 1, 0)
    keys_only = pa.table({"id": pa.array([1, 2, 3], pa.int32())})
    r, steps = both(keys_only, pa.table({"id": pa.array([2, 3, 4], pa.int64())}))
    assert JOIN_STEP in steps and (r.only_in_left, r.only_in_right, r.matched_rows) == (1, 1, 2)


def test_unknown_strategy_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="strategy 'fast'"):
        reconcile(table(id=[1]), table(id=[1]), ["id"], settings=Settings(strategy="fast"))


values = st.lists(
    st.tuples(
        st.integers(-3, 40),  # key: repeats and gaps happen
        st.one_of(st.none(), st.decimals(-100, 100, places=2, allow_nan=False)),
        st.one_of(st.none(), st.sampled_from(["a", "b", "B", " a"])),
    ),
    min_size=1,
    max_size=40,
)


def _arrow(rows: list[tuple[Any, Any, Any]]) -> pa.Table:
    return pa.table(
        {
            "id": pa.array([r[0] for r in rows], pa.int64()),
            "amount": pa.array([r[1] for r in rows], pa.decimal128(12, 2)),
            "name": pa.array([r[2] for r in rows], pa.string()),
        }
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, values, st.booleans())
def test_plans_agree_on_random_pairs(
    left: list[tuple[Any, Any, Any]], right: list[tuple[Any, Any, Any]], tolerate: bool
) -> None:
    rules = {"amount": "abs:0.5", "name": "norm:trim,case"} if tolerate else None
    both(_arrow(left), _arrow(right), rules=rules, samples=1000)


def test_plans_agree_on_a_decimal_vs_double_pair() -> None:
    left = table(id=[1, 2, 3], amount=[D("1.10"), D("2.20"), D("3.30")])
    right = table(id=[3, 2, 1], amount=[3.3, 2.2000001, 1.1])
    r, steps = both(left, right, rules={"amount": "abs:0.001"})
    assert JOIN_STEP in steps and r.within_tolerance_rows + r.mismatched_rows <= 3
