"""The pure parts of `cdc verify`: which filter leaves a table out, when the log reached the position."""

from __future__ import annotations

from cdc.position import Position
from migrate.verify.run import capture_setting, log_reached


def test_include_and_exclude_lists_are_whole_name_regular_expressions() -> None:
    assert capture_setting("shop.orders", {}) is None
    assert capture_setting("shop.orders", {"table.include.list": "shop.order"}) == "table.include.list=shop.order"
    assert capture_setting("shop.orders", {"table.include.list": "shop\\.o.*,shop.x"}) is None
    assert capture_setting("shop.orders", {"table.exclude.list": "shop.orders"}) == "table.exclude.list=shop.orders"
    assert capture_setting("shop.orders", {"database.include.list": "other"}) == "database.include.list=other"


def test_the_log_reached_the_position_only_past_it_and_outside_a_snapshot() -> None:
    at = Position.binlog_snapshot("bin.000002", 500)
    assert not log_reached([{"offset": {"file": "bin.000002", "pos": 499}}], at)
    assert log_reached([{"offset": {"file": "bin.000003", "pos": 4, "gtids": "0-1-9"}}], at)
    assert not log_reached([{"offset": {"file": "bin.000003", "pos": 4, "snapshot": True}}], at)
    assert not log_reached([], at)
