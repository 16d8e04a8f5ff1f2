"""Row-level reconciliation on small hand-built pairs, with exact expected counts."""

from __future__ import annotations

from decimal import Decimal as D

import duckdb
import pyarrow as pa
import pytest

from comparators import Settings, reconcile
from comparators.errors import EmptySideError, SpecError
from tests.unit.comparators.conftest import rec, table

LEFT = table(
    id=[1, 2, 3, 4, 5, 6],
    amount=[D("10.00"), D("20.00"), D("30.00"), D("40.00"), D("50.00"), None],
    name=["a", "b", "c", "d", "e", "f"],
)


def test_identical_sides_are_clean() -> None:
    r = rec(LEFT, LEFT)
    assert r.verdict == "clean" and r.exit_code == 0
    assert (r.left.rows, r.right.rows, r.matched_rows) == (6, 6, 6)
    assert r.unexplained == 0 and r.samples == ()
    assert all(c.mismatches == 0 and c.within_tolerance == 0 for c in r.columns)


def test_only_in_left_and_only_in_right() -> None:
    right = table(id=[1, 2, 3, 7, 8], amount=[D("10.00"), D("20.00"), D("30.00"), D(1), D(2)],
                  name=["a", "b", "c", "x", "y"])  # fmt: skip
    r = rec(LEFT, right)
    assert (r.only_in_left, r.only_in_right, r.matched_rows) == (3, 2, 3)
    assert r.causes["missing_in_stream"] == 3 and r.causes["missing_in_batch"] == 2
    assert r.mismatched_rows == 0 and r.exit_code == 1
    missing = [dict(s.key)["id"] for s in r.samples if s.cause == "missing_in_stream"]
    assert missing == [4, 5, 6]


def test_value_mismatches_per_column_with_null_vs_value_and_max_diff() -> None:
    right = table(
        id=[1, 2, 3, 4, 5, 6],
        amount=[D("10.00"), D("20.50"), D("29.00"), None, D("50.00"), D("1.00")],
        name=["a", "B", "c", "d", "e", "f"],
    )
    r = rec(LEFT, right)
    cols = {c.name: c for c in r.columns}
    assert cols["amount"].mismatches == 4
    assert cols["amount"].null_vs_value == 2  # 40.00 vs NULL and NULL vs 1.00
    assert cols["amount"].max_abs_diff == D("1.00")
    assert cols["name"].mismatches == 1 and cols["name"].null_vs_value == 0
    assert r.mismatched_rows == 4  # row 2 differs in both columns but counts once
    sample = next(s for s in r.samples if dict(s.key)["id"] == 2)
    assert sample.cause == "value_mismatch"
    assert {c: (lv, rv) for c, lv, rv in sample.values} == {
        "amount": (D("20.00"), D("20.50")),
        "name": ("b", "B"),
    }


def test_decimals_compare_exactly_without_tolerance() -> None:
    left = table(id=[1, 2], v=[D("0.1") + D("0.2"), D("1.000000000000000001")])
    right = table(id=[1, 2], v=[D("0.3"), D("1.000000000000000002")])
    r = rec(left, right)
    assert r.columns[0].mismatches == 1  # 0.1 + 0.2 == 0.3 exactly; the 1e-18 step is real
    assert r.columns[0].max_abs_diff == D("0.000000000000000001")


def test_duplicate_keys_are_counted_sampled_and_not_joined() -> None:
    # 3000 copies of one key on each side would be 9M rows if joined naively.
    left = table(id=[1] * 3000 + [2, 3], v=[1] * 3002)
    right = table(id=[1] * 3000 + [2, 3, 3], v=[1] * 3003)
    r = rec(left, right)
    assert (r.left.duplicate_keys, r.left.duplicate_rows) == (1, 3000)
    assert (r.right.duplicate_keys, r.right.duplicate_rows) == (2, 3002)
    assert r.causes["duplicate_key"] == 3
    assert r.matched_rows == 1 and r.only_in_left == 0 and r.only_in_right == 0
    dups = {dict(s.key)["id"]: (s.left_count, s.right_count) for s in r.samples}
    assert dups == {1: (3000, 3000), 3: (1, 2)}
    assert r.exit_code == 1


def test_composite_keys_with_nulls_and_awkward_names() -> None:
    left = table(**{'region "x"': ["eu", "eu", None], "order id": [1, 2, 3], "v": [1, 2, 3]})
    right = table(**{'region "x"': ["eu", "us", None], "order id": [1, 2, 3], "v": [1, 2, 4]})
    r = rec(left, right, ['region "x"', "order id"])
    assert (r.only_in_left, r.only_in_right, r.mismatched_rows, r.matched_rows) == (1, 1, 1, 2)


def test_keys_only_tables_and_key_type_widening() -> None:
    left = pa.table({"id": pa.array([1, 2, 3], pa.int32())})
    right = pa.table({"id": pa.array([2, 3, 4], pa.int64())})
    r = rec(left, right)
    assert (r.only_in_left, r.only_in_right, r.matched_rows) == (1, 1, 2)
    assert r.columns == () and r.schema.type_mismatches == ()


def test_missing_key_column_is_a_spec_error_naming_the_side() -> None:
    with pytest.raises(SpecError, match="key column 'nope' not in the left side"):
        rec(LEFT, LEFT, ["nope"])
    with pytest.raises(SpecError, match="right side"):
        rec(LEFT, LEFT.drop(["amount"]).rename_columns(["k", "name"]), ["amount"])


def test_empty_side_is_every_row_missing_unless_rows_are_required() -> None:
    r = rec(LEFT, LEFT.slice(0, 0))
    assert (r.exit_code, r.only_in_left, r.right.rows) == (1, LEFT.num_rows, 0)
    r = rec(LEFT.slice(0, 0), LEFT)
    assert (r.exit_code, r.only_in_right) == (1, LEFT.num_rows)
    assert rec(LEFT.slice(0, 0), LEFT.slice(0, 0)).verdict == "clean"
    with pytest.raises(EmptySideError, match="right side"):
        reconcile(LEFT, LEFT.slice(0, 0), ["id"], settings=Settings(allow_empty=False))


def test_counts_agree_with_a_duckdb_reference_diff() -> None:
    """DuckDB computes the expected counts with a plain FULL OUTER JOIN."""
    con = duckdb.connect()
    left = con.sql(
        "SELECT i AS id, (i % 97)::DECIMAL(10,2) AS a, 'n' || (i % 13) AS s,"
        " CASE WHEN i % 11 = 0 THEN NULL ELSE i * 1.5 END AS d FROM range(2000) t(i)"
    ).to_arrow_table()
    con.register("l", left)
    right = con.sql(
        "SELECT id + CASE WHEN id % 401 = 0 THEN 100000 ELSE 0 END AS id,"
        " CASE WHEN id % 37 = 0 THEN a + 1 ELSE a END AS a,"
        " CASE WHEN id % 53 = 0 THEN upper(s) ELSE s END AS s,"
        " CASE WHEN id % 59 = 0 THEN NULL ELSE d END AS d FROM l WHERE id % 307 <> 0"
    ).to_arrow_table()
    con.register("r", right)
    expected = con.execute(
        "SELECT count(*) FILTER (r.id IS NULL), count(*) FILTER (l.id IS NULL),"
        " count(*) FILTER (l.id = r.id AND (l.a IS DISTINCT FROM r.a OR l.s IS DISTINCT FROM r.s"
        " OR l.d IS DISTINCT FROM r.d)),"
        " count(*) FILTER (l.a IS DISTINCT FROM r.a AND l.id = r.id),"
        " count(*) FILTER (l.d IS DISTINCT FROM r.d AND l.id = r.id)"
        " FROM l FULL OUTER JOIN r ON l.id = r.id"
    ).fetchone()
    r = rec(left, right)
    cols = {c.name: c.mismatches for c in r.columns}
    assert (r.only_in_left, r.only_in_right, r.mismatched_rows, cols["a"], cols["d"]) == expected
    assert r.only_in_left > 0 and r.mismatched_rows > 0


def test_in_flight_explains_differences_after_the_cutoff_without_positions() -> None:
    from datetime import datetime

    from comparators import InFlight

    t1, t2, cut = datetime(2024, 5, 1, 1), datetime(2024, 5, 1, 3), datetime(2024, 5, 1, 2)
    left = table(id=[1, 2, 3, 4], v=[1, 2, 3, 4], at=[t1, t1, t1, t1])
    right = table(id=[1, 2, 3, 5], v=[1, 9, 8, 5], at=[t1, t2, t1, t2])
    r = rec(left, right, in_flight=InFlight("at", cut), ignore=["at"])
    # key 2 changed after the cut (in flight), key 3 before it (a real mismatch),
    # key 5 arrived after the cut (in flight), key 4 is missing for real.
    assert (r.in_flight_rows, r.mismatched_rows, r.only_in_left, r.only_in_right) == (2, 1, 1, 0)
    assert r.causes["in_flight"] == 2 and r.exit_code == 1
    flights = sorted(dict(s.key)["id"] for s in r.samples if s.cause == "in_flight")
    assert flights == [2, 5]


def test_in_flight_is_refused_when_positions_align_the_sides() -> None:
    from datetime import datetime

    from comparators import ChangelogSource, FrameSource, InFlight

    log = table(id=[1], v=[1], __op=["c"], __gtid=["0-1-1"])
    stream = ChangelogSource(FrameSource(log), "0-1-1")
    with pytest.raises(SpecError, match="only for sides without a source position"):
        rec(table(id=[1], v=[1]), stream, in_flight=InFlight("v", datetime(2024, 1, 1)))


def test_a_file_that_goes_away_mid_read_is_a_source_error_to_retry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A changelog segment merged away between listing and reading: not an out-of-memory hint."""
    import pyarrow.parquet as pq

    from comparators import FrameSource
    from comparators.errors import SourceError

    class Vanishing:
        label = "segments"

        def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: list[str]) -> None:
            path = tmp_path / "seg.parquet"
            pq.write_table(pa.table({"id": [1], "v": [2]}), path)
            con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM read_parquet('{path}')")
            path.unlink()  # the writer's compaction removed it

    with pytest.raises(SourceError, match="went away while it was read"):
        reconcile(FrameSource(pa.table({"id": [1], "v": [2]})), Vanishing(), ["id"])  # type: ignore[arg-type]
