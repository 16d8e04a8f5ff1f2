"""The causes `cdc verify` gives, from both sides as comparison text (DuckDB, no services)."""

from __future__ import annotations

from decimal import Decimal

from cdc.position import Position
from cdc.rebuild import LogExtent
from migrate.verify.compare import Scope, Side, reconcile
from migrate.verify.values import canonical

FULL = LogExtent("t", True, 0, 10, "r", Position.binlog("bin.000001", 4), snapshot_reads=3)


def side(rows: dict[str, tuple[object, object]]) -> Side:
    keys = sorted(rows)
    return Side(keys, {"id": keys[:], "amount": [canonical(rows[k][0]) for k in keys],
                       "note": [canonical(rows[k][1]) for k in keys]})  # fmt: skip


def check(db: Side, log: Side, extent: LogExtent = FULL, settings: dict[str, str] | None = None,
          scope: Scope = Scope()) -> list[tuple[str, int, str | None]]:  # noqa: B008  # fmt: skip
    result = reconcile("s.t", "p.s.t", db, log, extent, kinds={"amount": "decimal"}, settings=settings or {},
                       scope=scope)  # fmt: skip
    return [(f.cause, f.rows, f.setting) for f in result.findings]


DB = side({"1": (Decimal("1.5000"), "a"), "2": (Decimal("12345678901234.5678"), "b"), "3": (Decimal("0"), None)})


def test_the_same_rows_are_clean_whatever_the_scale_or_the_encoding() -> None:
    log = side({"1": (1.5, "a"), "2": (Decimal("12345678901234.5678"), "b"), "3": (Decimal("0.0000"), None)})
    assert check(DB, log) == []


def test_a_double_that_cannot_hold_the_decimal_is_decoding_when_the_connector_says_double() -> None:
    log = side({"1": (1.5, "a"), "2": (12345678901234.5678, "b"), "3": (0.0, None)})
    assert check(DB, log, settings={"decimal.handling.mode": "double"}) == [
        ("decoding", 1, "decimal.handling.mode=double")
    ]
    # Without the setting to explain it, the same difference is a lost update.
    assert check(DB, log, settings={"decimal.handling.mode": "precise"}) == [("lost_update", 1, None)]


def test_rows_missing_from_a_log_without_a_snapshot_are_a_snapshot_gap_else_lost_inserts() -> None:
    log = side({"1": (Decimal("1.5"), "a")})
    no_snapshot = LogExtent("t", True, 0, 1, "c", Position.binlog("bin.000001", 4))
    assert check(DB, log, no_snapshot, {"snapshot.mode": "no_data"}) == [("snapshot_gap", 2, "snapshot.mode=no_data")]
    assert check(DB, log) == [("lost_insert", 2, None)]


def test_no_snapshot_read_under_a_data_snapshot_mode_means_the_table_was_empty_then() -> None:
    """A connector that snapshots data but left no op=r read an empty table: rows missing now are
    inserts the log lost (a trial's unlogged insert was wrongly called a snapshot gap)."""
    log = side({"1": (Decimal("1.5"), "a")})
    no_snapshot = LogExtent("p.s.t", True, 0, 1, "c", Position.binlog("bin.000001", 4))
    for mode in ("initial", "when_needed", "always", "initial_only"):
        assert check(DB, log, no_snapshot, {"snapshot.mode": mode}) == [("lost_insert", 2, None)], mode
    assert check(DB, log, no_snapshot, {}) == [("lost_insert", 2, None)]  # Debezium's default: initial
    # ... unless the snapshot was told to leave the table out.
    excluded = {"snapshot.mode": "initial", "snapshot.include.collection.list": "s.other"}
    assert check(DB, log, no_snapshot, excluded) == [("snapshot_gap", 2, "snapshot.mode=initial")]
    included = {"snapshot.mode": "initial", "snapshot.include.collection.list": "s.other, s[.]t"}
    assert check(DB, log, no_snapshot, included) == [("lost_insert", 2, None)]
    for mode in ("no_data", "schema_only", "never", "recovery"):
        assert check(DB, log, no_snapshot, {"snapshot.mode": mode}) == [("snapshot_gap", 2, f"snapshot.mode={mode}")]


def test_rows_alive_only_in_the_log_are_lost_deletes_or_a_binlog_gap_after_a_resnapshot() -> None:
    log = side({"1": (Decimal("1.5"), "a"), "2": (Decimal("12345678901234.5678"), "b"), "3": (0, None), "9": (1, "x")})
    assert check(DB, log) == [("lost_delete", 1, None)]
    again = LogExtent("t", True, 0, 10, "r", FULL.first_position, 6, Position.binlog("bin.000002", 4))
    assert check(DB, log, again, {"snapshot.mode": "when_needed"}) == [("binlog_gap", 1, "snapshot.mode=when_needed")]


def test_a_log_cut_by_retention_verifies_only_the_keys_it_changed() -> None:
    log = side({"2": (Decimal("12345678901234.5678"), "b")})
    cut = LogExtent("t", True, 5, 10, "u", Position.binlog("bin.000004", 4))
    result = reconcile("s.t", "p.s.t", DB, log, cut, kinds={}, settings={}, scope=Scope(frozenset({"2"})))
    assert result.clean and (result.coverage, result.unverified_rows, result.matched_rows) == ("since_offset", 2, 1)
