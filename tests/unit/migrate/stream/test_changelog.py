"""Changelog segments: exact contents, and the guard that ties a changelog to its consumer group."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from cdc.position import Position
from migrate.errors import ChangelogError
from migrate.pipeline.contract import Output
from migrate.pipeline.records import META_COLUMNS, OutputChange, meta
from migrate.stream.changelog import ChangelogWriter, changelog_schema, output_glob

AT = Position.binlog("mysql-bin.000003", 4242, 0, "0-1-17")
ALERTS = pa.schema([("order_id", pa.int64()), ("customer_id", pa.int32()), ("amount", pa.decimal128(12, 2))])
SCHEMAS = {"order_alerts": ALERTS}


def change(order_id: int, amount: str | None) -> OutputChange:
    at = meta("u" if amount else "d", AT, AT.order_value, 1_700_000_000_000)
    values = (None, None) if amount is None else (1, Decimal(amount))
    return OutputChange("order_alerts", (order_id, *values, *at))


def test_a_flush_writes_one_segment_with_exact_values_and_positions(tmp_path: Path) -> None:
    writer = ChangelogWriter(tmp_path, SCHEMAS)
    writer.add([change(1, "650.10"), change(2, "999999999.99"), change(1, None)])
    assert writer.flush() == 3
    rows = duckdb.sql(
        f"SELECT order_id, amount, __op, __pos_file, __pos_offset, __gtid, __pos_order, __processed_at "
        f"FROM read_parquet('{output_glob(tmp_path, 'order_alerts')}') ORDER BY __processed_at"
    ).fetchall()
    assert [r[:7] for r in rows] == [
        (1, Decimal("650.10"), "u", "mysql-bin.000003", 4242, "0-1-17", AT.order_value),
        (2, Decimal("999999999.99"), "u", "mysql-bin.000003", 4242, "0-1-17", AT.order_value),
        (1, None, "d", "mysql-bin.000003", 4242, "0-1-17", AT.order_value),
    ]
    stamps = [r[7] for r in rows]
    assert all(isinstance(s, datetime) for s in stamps) and stamps == sorted(set(stamps))  # distinct, in order


def test_a_fresh_job_claims_an_empty_changelog_and_marks_what_it_flushes(tmp_path: Path) -> None:
    writer = ChangelogWriter(tmp_path, SCHEMAS)
    writer.claim("group-a", resumed=None)
    writer.add([change(1, "650.10")])
    writer.flush(upto=AT.order_value)
    # Restarted at what it committed, or before (an aborted transaction): its own changelog.
    ChangelogWriter(tmp_path, SCHEMAS).claim("group-a", resumed=("mysql-bin.000003:4242", AT.order_value))
    ChangelogWriter(tmp_path, SCHEMAS).claim("group-a", resumed=("mysql-bin.000003:100", AT.order_value - 1))


def test_a_resumed_job_refuses_an_empty_changelog(tmp_path: Path) -> None:
    with pytest.raises(ChangelogError, match="committed up to mysql-bin.000003:4242, but its changelog .* is empty"):
        ChangelogWriter(tmp_path, SCHEMAS).claim("group-a", resumed=("mysql-bin.000003:4242", AT.order_value))


def test_a_resumed_job_refuses_a_changelog_that_missed_part_of_the_input(tmp_path: Path) -> None:
    """Another state directory ran the same group and took the events after this changelog's last flush."""
    writer = ChangelogWriter(tmp_path, SCHEMAS)
    writer.claim("group-a", resumed=None)
    writer.add([change(1, "650.10")])
    writer.flush(upto=AT.order_value)
    later = Position.binlog("mysql-bin.000003", 9000)
    with pytest.raises(ChangelogError, match="stops before that"):
        ChangelogWriter(tmp_path, SCHEMAS).claim("group-a", resumed=("mysql-bin.000003:9000", later.order_value))


def test_a_changelog_from_before_the_marker_existed_is_adopted(tmp_path: Path) -> None:
    writer = ChangelogWriter(tmp_path, SCHEMAS)
    writer.add([change(1, "650.10")])
    writer.flush()
    writer.claim("group-a", resumed=("mysql-bin.000003:4242", AT.order_value))
    assert (tmp_path / ".dualrun-group").exists()


def test_rows_follow_the_changelog_schema() -> None:
    """The transform builds rows in the schema's order; the writer relies on it."""
    assert [n for n in changelog_schema(ALERTS).names if n != "__processed_at"] == [
        "order_id", "customer_id", "amount", *META_COLUMNS
    ]  # fmt: skip
    change_, output = change(7, "650.10"), Output(ALERTS, ("order_id",))
    assert output.key_of(change_) == (7,) and output.values_of(change_) == {
        "customer_id": 1,
        "amount": Decimal("650.10"),
    }
    assert change_.pos_order == AT.order_value and output.values_of(change(7, None)) is None


def _orders(root: Path) -> list[int]:
    return [r[0] for r in duckdb.sql(f"SELECT __pos_order FROM read_parquet('{output_glob(root, 'order_alerts')}') "
                                     "ORDER BY 1").fetchall()]  # fmt: skip


def test_a_restarted_job_drops_rows_flushed_for_a_transaction_that_never_committed(tmp_path: Path) -> None:
    """Killed between flush and commit: the rows past the committed position are produced again."""
    later = Position.binlog("mysql-bin.000003", 9000, 0, "0-1-18")
    writer = ChangelogWriter(tmp_path, SCHEMAS)
    writer.claim("group-a", resumed=None)
    writer.add([change(1, "650.10")])
    writer.flush(upto=AT.order_value)  # committed
    writer.add([OutputChange("order_alerts", (2, 1, Decimal("700.00"), *meta("c", later, later.order_value, 0)))])
    writer.flush(upto=later.order_value)  # the commit after this flush never happened
    ChangelogWriter(tmp_path, SCHEMAS).claim("group-a", resumed=("mysql-bin.000003:4242", AT.order_value))
    assert _orders(tmp_path) == [AT.order_value]
    # The group's offsets are gone (a new cluster): the job starts over, and so does its changelog.
    ChangelogWriter(tmp_path, SCHEMAS).claim("group-a", resumed=None)
    assert _orders(tmp_path) == []
