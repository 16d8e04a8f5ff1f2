"""Property tests: a side reconciled with itself is clean, and every injected difference is
found exactly once."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.comparators.conftest import rec

COLUMNS = ("amount", "ratio", "name")

rows = st.lists(
    st.tuples(
        st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False),
        st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False)),
        st.one_of(st.none(), st.text(max_size=8)),
    ),
    min_size=1,
    max_size=60,
)


def arrow(ids: list[int], values: list[tuple[Any, Any, Any]]) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "amount": pa.array([v[0] for v in values], pa.decimal128(12, 2)),
            "ratio": pa.array([v[1] for v in values], pa.float64()),
            "name": pa.array([v[2] for v in values], pa.string()),
        }
    )


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(rows)
def test_reconcile_with_itself_is_clean(values: list[tuple[Any, Any, Any]]) -> None:
    data = arrow(list(range(len(values))), values)
    r = rec(data, data)
    assert r.verdict == "clean" and r.matched_rows == len(values)
    assert r.within_tolerance_rows == 0 and r.samples == ()


def _changed(value: Any, column: str) -> Any:
    if column == "amount":
        return value + D("0.01")
    if column == "ratio":
        return 1.0 if value is None else (value + 1.0 if abs(value) < 1e8 else -value - 1.0)
    return "x" if value is None else value + "!"


@FAST
@given(rows, st.data())
def test_every_injected_difference_is_found_exactly_once(
    values: list[tuple[Any, Any, Any]], data: st.DataObject
) -> None:
    n = len(values)
    ids = list(range(n))
    drop = set(data.draw(st.sets(st.sampled_from(ids), max_size=n)))
    kept = [i for i in ids if i not in drop]
    change = data.draw(st.dictionaries(st.sampled_from(kept), st.sampled_from(COLUMNS)) if kept else st.just({}))
    extra = data.draw(st.integers(0 if kept else 1, 5))  # an empty side is a usage error
    right_values = []
    for i in kept:
        row = list(values[i])
        if i in change:
            col = COLUMNS.index(change[i])
            row[col] = _changed(row[col], change[i])
        right_values.append(tuple(row))
    right_ids = kept + [n + k for k in range(extra)]
    right_values += [(D("1.00"), None, "new")] * extra
    r = rec(arrow(ids, values), arrow(right_ids, right_values), samples=1000)
    assert (r.only_in_left, r.only_in_right, r.mismatched_rows) == (len(drop), extra, len(change))
    for column in COLUMNS:
        expected = sum(1 for c in change.values() if c == column)
        assert {c.name: c.mismatches for c in r.columns}[column] == expected
    found = [(s.cause, dict(s.key)["id"]) for s in r.samples]
    assert sorted(found) == sorted(
        [("missing_in_stream", i) for i in drop]
        + [("missing_in_batch", n + k) for k in range(extra)]
        + [("value_mismatch", i) for i in change]
    )
    assert r.verdict == ("clean" if not (drop or extra or change) else "differences")
