"""A changelog read as of a position: latest version per key at or before it, deletes removed."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from comparators.changelog import ChangelogSource
from comparators.errors import PositionError, SourceError
from comparators.positions import binlog_order
from comparators.sources import FrameSource, open_source
from tests.unit.comparators.conftest import rec, table

# (id, v, op, file, offset, gtid, lsn): positions chosen so string order is wrong.
EVENTS = [
    (1, "a0", "r", None, None, None, None),
    (2, "b0", "r", None, None, None, None),
    (1, "a1", "u", "bin.000009", 500, "0-1-99", "9/FFFFFFF0"),
    (3, "c1", "c", "bin.000009", 900, "0-1-100", "A/10"),
    (2, "b1", "d", "bin.000010", 4, "0-1-101", "10/0"),
    (1, "a2", "u", "bin.000010", 80, "1-1-5", "10/50"),
]


def changelog(with_order: bool = False) -> pa.Table:
    cols: dict[str, list[Any]] = {
        name: [e[i] for e in EVENTS]
        for i, name in enumerate(["id", "v", "__op", "__pos_file", "__pos_offset", "__gtid", "__lsn"])
    }
    cols["__source_ts_ms"] = list(range(len(EVENTS)))
    if with_order:
        cols["__pos_order"] = [
            None if f is None else binlog_order(f, o)
            for f, o in zip(cols["__pos_file"], cols["__pos_offset"], strict=True)
        ]
    return pa.table(cols)


def as_of(position: str | None, data: pa.Table | None = None) -> dict[int, str]:
    src = ChangelogSource(FrameSource(changelog() if data is None else data), position)
    expected = table(id=[0], v=["-"])  # reconcile against a dummy to read the view back
    r = rec(expected, src, samples=100)
    return {dict(s.key)["id"]: dict((c, rv) for c, _, rv in s.values)["v"]
            for s in r.samples if s.cause == "missing_in_batch"}  # fmt: skip


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        ("bin.000009:499", {1: "a0", 2: "b0"}),
        ("bin.000009:500", {1: "a1", 2: "b0"}),
        ("bin.000009:999", {1: "a1", 2: "b0", 3: "c1"}),
        ("bin.000010:4", {1: "a1", 3: "c1"}),  # the delete hides key 2
        ("bin.000010:80", {1: "a2", 3: "c1"}),
        ("9/FFFFFFF0", {1: "a1", 2: "b0"}),
        ("A/10", {1: "a1", 2: "b0", 3: "c1"}),
        ("10/50", {1: "a2", 3: "c1"}),
        ("0-1-100", {1: "a1", 2: "b0", 3: "c1"}),
        ("0-1-101", {1: "a1", 3: "c1"}),  # domain 1 is not covered, so a2 is after
        ("0-1-101,1-1-5", {1: "a2", 3: "c1"}),
        (None, {1: "a2", 3: "c1"}),
    ],
)
def test_as_of_positions(position: str | None, expected: dict[int, str]) -> None:
    assert as_of(position) == expected


def test_pos_order_column_is_used_when_present() -> None:
    assert as_of("bin.000009:999", changelog(with_order=True)) == {1: "a1", 2: "b0", 3: "c1"}
    assert as_of(str(binlog_order("bin.000010", 4)), changelog(with_order=True)) == {
        1: "a1", 3: "c1"
    }  # fmt: skip


def test_integer_position_needs_pos_order() -> None:
    with pytest.raises(PositionError, match="no __pos_order"):
        as_of("12345")


def test_missing_columns_are_explained() -> None:
    with pytest.raises(PositionError, match="needs the changelog column __lsn"):
        as_of("10/0", changelog().drop(["__lsn"]))
    with pytest.raises(SourceError, match="lacks an __op column"):
        as_of("10/0", changelog().drop(["__op"]))


def test_reconcile_batch_against_stream_as_of_the_batch_position() -> None:
    batch = table(id=[1, 3], v=["a1", "c1"])
    stream = open_source(changelog(), position="bin.000010:4")
    r = rec(batch, stream)
    assert r.verdict == "clean" and r.right.position == "bin.000010:4"
    later = rec(batch, open_source(changelog(), position="bin.000010:80"))
    assert later.mismatched_rows == 1  # a2 arrived after the batch's snapshot
