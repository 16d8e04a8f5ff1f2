"""Transaction-ordered release across input topics (no broker: hand-built records)."""

from __future__ import annotations

import orjson

from cdc.envelope import ChangeEvent, Tombstone
from cdc.position import Position
from migrate.stream.ordering import Item, TransactionOrder, parse_marker

ORDERS, CUSTOMERS, MARKERS = "p.shop.orders", "p.shop.customers", "p.transaction"


def change(topic: str, offset: int, pos: int, txn: str | None, snapshot: bool = False) -> Item:
    op, table = "r" if snapshot else "u", topic.split(".")[-1]
    position = Position.binlog("mysql-bin.000001", pos)
    event = ChangeEvent(topic, {"id": offset}, op, None, {"id": offset}, position, 0, 0, snapshot, table, txn)
    return Item(topic, 0, offset, 0.0, event)


def marker(offset: int, status: str, txn: str, counts: dict[str, int] | None = None) -> Item:
    collections = [{"data_collection": c, "event_count": n} for c, n in (counts or {}).items()]
    payload = {
        "status": status,
        "id": txn,
        "event_count": sum((counts or {}).values()),
        "data_collections": collections,
    }
    return Item(MARKERS, 0, offset, 0.0, marker=parse_marker(orjson.dumps({"schema": {}, "payload": payload})))


def order() -> TransactionOrder:
    o = TransactionOrder(MARKERS, {ORDERS: "shop.orders", CUSTOMERS: "shop.customers"}, stall_after=5.0)
    o.assign([(ORDERS, 0), (CUSTOMERS, 0), (MARKERS, 0)])
    return o


def released(items: list[Item]) -> list[tuple[str, int]]:
    return [(i.topic.split(".")[-1], i.offset) for i in items]


def test_a_later_customer_change_waits_for_the_earlier_order_change() -> None:
    o = order()
    # The customer change (txn 0-1-2) arrives first, though the order change (0-1-1) committed first.
    o.add(change(CUSTOMERS, 0, 200, "0-1-2"))
    o.add(marker(0, "BEGIN", "0-1-1"))
    o.add(marker(1, "END", "0-1-1", {"shop.orders": 1}))
    o.add(marker(2, "BEGIN", "0-1-2"))
    o.add(marker(3, "END", "0-1-2", {"shop.customers": 1}))
    assert released(o.release(now=1.0)) == [("transaction", 0)]  # only the BEGIN: txn 1 lacks its order event
    o.add(change(ORDERS, 0, 100, "0-1-1"))
    assert released(o.release(now=1.1)) == [("orders", 0), ("transaction", 1), ("transaction", 2),
                                            ("customers", 0), ("transaction", 3)]  # fmt: skip
    assert o.stalled == 0 and len(o) == 0


def test_a_transaction_spanning_topics_is_released_whole_in_position_order() -> None:
    o = order()
    o.add(marker(0, "END", "0-1-5", {"shop.orders": 2, "shop.customers": 1}))
    o.add(change(ORDERS, 0, 510, "0-1-5"))
    o.add(change(CUSTOMERS, 0, 505, "0-1-5"))
    assert o.release(now=0.5) == []
    o.add(change(ORDERS, 1, 520, "0-1-5"))
    assert released(o.release(now=0.6)) == [("customers", 0), ("orders", 0), ("orders", 1), ("transaction", 0)]


def test_snapshot_reads_tombstones_and_poison_need_no_transaction() -> None:
    o = order()
    o.add(change(ORDERS, 0, 50, None, snapshot=True))
    o.add(Item(ORDERS, 0, 1, 0.0, Tombstone(ORDERS, {"id": 1})))
    o.add(Item(CUSTOMERS, 0, 0, 0.0, None, error="not JSON"))
    assert released(o.release(now=0.0)) == [("orders", 0), ("orders", 1), ("customers", 0)]


def test_an_incomplete_transaction_is_released_only_after_the_inputs_are_drained() -> None:
    drained = {"value": False}
    o = TransactionOrder(MARKERS, {ORDERS: "shop.orders"}, stall_after=5.0, drained=lambda: drained["value"])
    o.assign([(ORDERS, 0), (MARKERS, 0)])
    o.add(marker(0, "END", "0-1-9", {"shop.orders": 2}))
    o.add(change(ORDERS, 0, 900, "0-1-9"))
    assert o.release(now=1.0) == []
    assert o.release(now=60.0) == []  # a backlog is not a loss: still fetching
    drained["value"] = True
    assert released(o.release(now=60.0)) == [("orders", 0), ("transaction", 0)]
    assert o.stalled == 1


def test_unreadable_markers_do_not_block() -> None:
    o = order()
    o.add(Item(MARKERS, 0, 0, 0.0, marker=parse_marker(b"garbage")))
    assert released(o.release(now=0.0)) == [("transaction", 0)]


def test_events_redelivered_after_a_connector_restart_do_not_wait() -> None:
    o = order()
    o.add(marker(0, "END", "0-1-7", {"shop.orders": 1}))
    o.add(change(ORDERS, 0, 700, "0-1-7"))
    assert released(o.release(now=0.0)) == [("orders", 0), ("transaction", 0)]
    # Debezium restarts and sends transaction 7 again, then transaction 8.
    o.add(marker(1, "BEGIN", "0-1-7"))
    o.add(change(ORDERS, 1, 700, "0-1-7"))
    o.add(marker(2, "END", "0-1-7", {"shop.orders": 1}))
    o.add(change(ORDERS, 2, 800, "0-1-8"))
    o.add(marker(3, "END", "0-1-8", {"shop.orders": 1}))
    assert released(o.release(now=0.1)) == [("transaction", 1), ("transaction", 2), ("orders", 1), ("orders", 2),
                                            ("transaction", 3)]  # fmt: skip
    assert o.stalled == 0


def test_events_of_a_transaction_whose_end_was_lost_go_before_later_ones() -> None:
    o = order()
    o.add(change(ORDERS, 0, 300, "0-1-3"))  # its END never arrives
    o.add(change(ORDERS, 1, 400, "0-1-4"))
    o.add(marker(0, "END", "0-1-4", {"shop.orders": 1}))
    assert released(o.release(now=0.0)) == [("orders", 0), ("orders", 1), ("transaction", 0)]


def test_a_quiet_source_is_not_a_loss_but_a_later_transaction_is() -> None:
    """While Kafka Connect restarts nothing arrives and it sends the rest again: hold on (up to quiet_after);
    once a later transaction's marker came after the END, the missing events are lost: release."""
    o = TransactionOrder(MARKERS, {ORDERS: "shop.orders"}, stall_after=5.0, quiet_after=60.0)
    o.assign([(ORDERS, 0), (MARKERS, 0)])
    o.add(marker(0, "END", "0-1-9", {"shop.orders": 2}))
    o.add(change(ORDERS, 0, 900, "0-1-9"))
    assert o.release(now=30.0) == [] and o.stalled == 0  # drained, but nothing came after it
    o.add(marker(1, "END", "0-1-10", {"shop.orders": 1}))
    assert released(o.release(now=30.0))[:2] == [("orders", 0), ("transaction", 0)]
    assert o.stalled == 1


def pg_change(topic: str, offset: int, last_commit: int, lsn: int, txid: int) -> Item:
    """A PostgreSQL change: Debezium's transaction id is `txId:lsn` with this record's own LSN."""
    position = Position.lsn(last_commit, lsn)
    event = ChangeEvent(topic, {"id": offset}, "u", None, {"id": offset}, position, 0, 0, False, "orders",
                        f"{txid}:{lsn}")  # fmt: skip
    return Item(topic, 0, offset, 0.0, event)


def test_a_postgresql_transaction_with_a_delete_inside_is_released_whole_with_its_tombstone() -> None:
    o = order()
    o.add(marker(0, "BEGIN", "3176:28496"))
    o.add(marker(1, "END", "3176:31064", {"shop.orders": 3}))  # END's LSN is the commit's
    o.add(pg_change(ORDERS, 0, 1000, 28496, 3176))
    o.add(pg_change(ORDERS, 1, 1000, 30040, 3176))  # a delete ...
    o.add(Item(ORDERS, 0, 2, 0.0, Tombstone(ORDERS, {"id": 1})))  # ... its tombstone ...
    o.add(pg_change(ORDERS, 3, 1000, 30744, 3176))  # ... and the transaction goes on
    assert released(o.release(now=0.1)) == [("transaction", 0), ("orders", 0), ("orders", 1), ("orders", 2),
                                            ("orders", 3), ("transaction", 1)]  # fmt: skip
    assert o.stalled == 0 and len(o) == 0
