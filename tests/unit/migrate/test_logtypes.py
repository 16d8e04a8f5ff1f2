"""Column types for rows decoded from the log: exact and independent of the machine's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrate.errors import DualrunError
from migrate.logtypes import arrow_batches, arrow_table, column_type


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([Decimal("129.9900"), Decimal("-0.0001")], pa.decimal128(18, 4)),
        ([Decimal("99999999999999.9999")], pa.decimal128(18, 4)),
        ([Decimal("123456789012345678.9")], pa.decimal128(38, 1)),
        ([1, -(2**63)], pa.int64()),
        ([2**64 - 1], pa.decimal128(20, 0)),  # BIGINT UNSIGNED past BIGINT
        ([True, False], pa.bool_()),  # BIT(1)
        ([b"\x01\x02"], pa.binary()),  # BIT(n>1)
        ([1.5, 2], pa.float64()),
        ([date(2024, 3, 31)], pa.date32()),
        ([time(1, 2, 3, 4)], pa.time64("us")),
        ([timedelta(hours=-800)], pa.duration("us")),
        ([None, None], pa.string()),
    ],
)
def test_types(values: list[object], expected: pa.DataType) -> None:
    kind, fitted = column_type("t", "c", values)
    assert kind == expected
    assert pa.array(fitted, kind).to_pylist() == [
        Decimal(v) if isinstance(v, int) and kind == pa.decimal128(20, 0) else v for v in values
    ]


def test_zoned_timestamps_become_naive_utc_whatever_their_offset() -> None:
    plus2 = timezone(timedelta(hours=2))
    kind, fitted = column_type("t", "c", [datetime(2024, 3, 31, 3, 30, tzinfo=plus2), datetime(2024, 1, 1, tzinfo=UTC)])
    assert kind == pa.timestamp("us")
    assert fitted == [datetime(2024, 3, 31, 1, 30), datetime(2024, 1, 1)]


def test_mixed_types_are_refused_naming_the_column() -> None:
    with pytest.raises(DualrunError, match=r"^t.c: the log holds values of mixed types \(Decimal, str\)"):
        column_type("t", "c", [Decimal("1"), "x"])


def test_a_table_keeps_the_events_column_order() -> None:
    table = arrow_table("t", [{"b": 1, "a": "x"}], ("a", "b"))
    assert table.column_names == ["a", "b"] and table.to_pylist() == [{"a": "x", "b": 1}]


_DECIMALS = st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**30), max_value=10**30)
_KINDS = [
    st.integers(-(2**64) + 1, 2**64 - 1),
    _DECIMALS,
    st.one_of(st.integers(-(10**19), 10**19), _DECIMALS),
    st.times(),
    st.one_of(st.times(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3))),
    st.text(max_size=3),
    st.one_of(st.integers(0, 9), st.text(max_size=2)),  # mixed: refused, batched or not
]


@st.composite
def _columns(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 12))
    a, b = (draw(st.lists(st.one_of(st.none(), draw(st.sampled_from(_KINDS))), min_size=n, max_size=n)) for _ in "ab")
    return [{"a": x, "b": y} for x, y in zip(a, b, strict=True)]


@given(rows=_columns(), size=st.integers(1, 5))
def test_batches_give_the_table_all_rows_at_once_give(rows: list[dict[str, Any]], size: int) -> None:
    batches = [rows[i : i + size] for i in range(0, len(rows), size)]
    schemas = {"a": {"type": "int64"}}
    try:
        whole = arrow_table("t", rows, ("a", "b"), schemas)
    except DualrunError:
        with pytest.raises(DualrunError, match="mixed types"):
            arrow_batches("t", batches, ("a", "b"), schemas)
        return
    together = arrow_batches("t", batches, ("a", "b"), schemas)
    assert together.schema == whole.schema
    assert together.to_pylist() == whole.to_pylist()


def test_a_column_typed_differently_by_two_batches_is_typed_over_all_its_values() -> None:
    for values, kind in (
        ([Decimal("1.50"), Decimal("123456789012345678901.25")], pa.decimal128(38, 2)),
        ([1, 2**64 - 1], pa.decimal128(20, 0)),
        ([time(1, 2), timedelta(hours=30)], pa.duration("us")),
    ):
        rows = [{"a": v} for v in values]
        assert arrow_batches("t", [rows[:1], rows[1:]], ("a",)).schema.field("a").type == kind
        assert arrow_table("t", rows, ("a",)).schema.field("a").type == kind
