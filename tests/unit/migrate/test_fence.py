"""The offset fence's pure part in migrate: an output as its job last wrote it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from migrate.fence import CheckSpan, FenceMark, check_span, current_rows, unexplained_keys, written_versions
from migrate.spec.lineage import TableLineage
from migrate.window import Window, WindowEvent, in_flight_keys
from tests.unit.migrate.stream.test_tap import _write


def test_current_rows_are_the_last_record_per_key_in_write_order_tombstones_removed(tmp_path: Path) -> None:
    rows = [
        (b"1", b'{"v": 1}', None, 0, 0), (b"2", b'{"v": 5}', None, 0, 1), (b"1", b'{"v": 2}', None, 0, 2),
        (b"2", None, None, 0, 3), (b"3", b'{"v": 7}', None, 1, 0),
    ]  # fmt: skip
    root = _write(tmp_path, rows, ["id"])
    current = current_rows(root, ["id"], pa.schema([("id", pa.int64()), ("v", pa.int64())]))
    assert sorted(current.to_pylist(), key=lambda r: r["id"]) == [{"id": 1, "v": 2}, {"id": 3, "v": 7}]
    assert all(not name.startswith("__") for name in current.column_names)


def test_current_rows_of_a_tap_never_read_are_empty_and_shaped_like_the_batch(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.int64())])
    assert current_rows(tmp_path, ["id"], schema).schema == schema


def test_keys_written_past_the_output_fence_must_be_in_flight(tmp_path: Path) -> None:
    rows = [(b"1", b'{"v": 1}', None, 0, 4), (b"2", b'{"v": 2}', None, 0, 5), (b"3", b'{"v": 3}', None, 1, 2),
            (b"4", b'{"v": 4}', None, 1, 3)]  # fmt: skip
    root = _write(tmp_path, rows, ["id"])
    flying = pa.table({"id": pa.array([2], pa.int64())})
    # Output fence at offset 5 on partition 0 and 3 on partition 1: keys 2 and 4 were written past it.
    assert unexplained_keys(root, ["id"], {0: 5, 1: 3}, flying).to_pylist() == [{"id": 4}]
    assert unexplained_keys(root, ["id"], {0: 5, 1: 4}, flying).num_rows == 0
    assert unexplained_keys(root, ["id"], {}, flying).num_rows == 0


ORDERS, CUSTOMERS = ("ks.shop.orders", 0), ("ks.shop.customers", 0)
OUT = ("ks-enriched", 0)


def _order(oid: int, customer: int, value: int) -> tuple[bytes, bytes, None, int, int]:
    return (str(oid).encode(), f'{{"customer_id": {customer}, "v": {value}}}'.encode(), None, 0, 0)


def test_a_customer_change_between_runs_shows_an_incomplete_lineage(tmp_path: Path) -> None:
    """The defect the self-check had: it read only the records written past this run's own output
    fence E, i.e. while the outputs were being read (a handful), so a lineage without the customers
    table went unnoticed in most runs. Since the previous run's E, every record counts."""
    # Output offsets: 0-1 before the previous run's E (2); 2-4 orders 1-3 re-emitted for a change of
    # customer 7 between the runs; this run's E is 5; 5 order 9, changed inside this run's window.
    rows = [_order(1, 7, 1), _order(2, 8, 1), _order(1, 7, 2), _order(2, 7, 2), _order(3, 7, 2), _order(9, 8, 2)]
    root = _write(tmp_path, [(k, v, h, 0, offset) for offset, (k, v, h, _, _) in enumerate(rows)], ["order_id"])
    previous = FenceMark("g", {ORDERS: 10, CUSTOMERS: 3}, {OUT: 2})
    lower, ends = {ORDERS: 20, CUSTOMERS: 4}, {OUT: 5}
    span = check_span(previous, "g", lower, ends, {ORDERS: 0, CUSTOMERS: 0})
    assert span == CheckSpan({ORDERS: 10, CUSTOMERS: 3}, {OUT: 2}, previous=True)
    window = Window("offsets", {}, {}, (WindowEvent("shop.orders", None, {"order_id": 9, "customer_id": 8}),))
    checked = Window("offsets", {}, {}, (*window.events, WindowEvent("shop.customers", {"id": 7}, {"id": 7})))
    schema = pa.schema([("order_id", pa.int64()), ("customer_id", pa.int64()), ("v", pa.int64())])
    stream = current_rows(root, ["order_id"], schema)
    orders_only: dict[str, TableLineage] = {"shop.orders": {"order_id": "order_id"}}
    full: dict[str, TableLineage] = {**orders_only, "shop.customers": {"customer_id": "id"}}

    def unexplained(since: dict[int, int], events: Window, lineage: dict[str, TableLineage]) -> list[Any]:
        written = written_versions(root, ["order_id"], since, schema.names)
        explained = in_flight_keys("enriched", ["order_id"], (stream, written), events, lineage)
        return unexplained_keys(root, ["order_id"], since, explained).to_pylist()

    # This run's own span: nothing to see, even with the customers missing from the lineage.
    assert unexplained({0: 5}, window, orders_only) == []
    # Since the previous run's fence: the re-emitted orders are unexplained, and explained by the full lineage.
    assert unexplained({0: 2}, checked, orders_only) == [{"order_id": 1}, {"order_id": 2}, {"order_id": 3}]
    assert unexplained({0: 2}, checked, full) == []


def test_the_check_span_keeps_to_this_run_unless_the_previous_fences_apply() -> None:
    lower, ends, lows = {ORDERS: 20, CUSTOMERS: 4}, {OUT: 5, ("ks-enriched", 1): 9}, {ORDERS: 0, CUSTOMERS: 0}
    own = CheckSpan(lower, ends, previous=False)
    previous = FenceMark("g", {ORDERS: 10, CUSTOMERS: 3}, {OUT: 2})
    assert check_span(None, "g", lower, ends, lows) == own
    assert check_span(previous, "other-group", lower, ends, lows) == own
    assert check_span(previous, "g", lower, ends, {ORDERS: 11, CUSTOMERS: 0}) == own  # lost to retention
    assert check_span(FenceMark("g", {ORDERS: 10}, {OUT: 2}), "g", lower, ends, lows) == own  # a new table
    assert check_span(previous, "g", lower, ends, lows, max_events=10) == own
    # A new output partition starts at its own E; a fence that went back keeps the lower one.
    assert check_span(previous, "g", {ORDERS: 8, CUSTOMERS: 4}, ends, lows) == CheckSpan(
        {ORDERS: 8, CUSTOMERS: 3}, {OUT: 2, ("ks-enriched", 1): 9}, previous=True
    )


def test_a_fence_mark_round_trips() -> None:
    mark = FenceMark("g", {ORDERS: 10, CUSTOMERS: 3}, {OUT: 2})
    assert FenceMark.from_dict(mark.to_dict()) == mark
