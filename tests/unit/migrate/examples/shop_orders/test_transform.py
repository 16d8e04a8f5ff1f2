"""The streaming transform against hand-built change events: the batch job's semantics, event by event."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from cdc.envelope import ChangeEvent
from cdc.errors import EnvelopeError
from cdc.position import Position
from migrate.errors import DualrunError
from migrate.examples.shop_orders import PIPELINE
from migrate.examples.shop_orders.defects import DEFECTS, defect_spec
from migrate.examples.shop_orders.rules import SCHEMAS
from migrate.examples.shop_orders.transform import ShopOrdersTransform
from migrate.pipeline.contract import Transform
from migrate.pipeline.records import META_COLUMNS, OutputChange
from migrate.pipeline.registry import load_pipeline
from migrate.spec import example_spec_path, load_spec

DAY = datetime(2026, 11, 24, 10, 0)


class Source:
    """Makes Debezium-like events with increasing binlog positions."""

    def __init__(self) -> None:
        self.pos = 1000

    def event(self, table: str, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> ChangeEvent:
        self.pos += 100
        row = after or before or {}
        key = {"id": row["id"]} if table == "customers" else {"order_id": row["order_id"]}
        position = Position.binlog("mysql-bin.000001", self.pos, gtid=f"0-1-{self.pos}")
        return ChangeEvent(f"p.shop.{table}", key, op, before, after, position, 0, 0, False, table, f"0-1-{self.pos}")


def order(order_id: int, customer: int, amount: str, status: str = "NEW") -> dict[str, Any]:
    return {"order_id": order_id, "customer_id": customer, "amount": Decimal(amount), "status": status,
            "created_at": DAY, "updated_at": DAY}  # fmt: skip


def latest(changes: list[OutputChange], output: str) -> dict[tuple[Any, ...], dict[str, Any] | None]:
    result: dict[tuple[Any, ...], dict[str, Any] | None] = {}
    out = PIPELINE.outputs[output]
    for change in changes:
        if change.output == output:
            result[out.key_of(change)] = out.values_of(change)
    return result


def transform_for(defect: str | None) -> Transform:
    return load_pipeline(DEFECTS[defect][1]).transform() if defect else PIPELINE.transform()


def run(events: list[ChangeEvent], defect: str | None = None) -> tuple[list[OutputChange], list[Any]]:
    transform, changes, records = transform_for(defect), [], []
    for event in events:
        c, r = transform.apply(event)
        changes += c
        records += r
    return changes, records


def scenario() -> list[ChangeEvent]:
    s = Source()
    ada = {"id": 1, "name": "Ada", "tier": "GOLD"}
    return [
        s.event("customers", "c", None, ada),
        s.event("orders", "c", None, order(10, 1, "150.00")),
        s.event("orders", "c", None, order(11, 1, "650.00")),
        s.event("orders", "u", order(10, 1, "150.00"), order(10, 1, "250.00")),  # SILVER -> GOLD
        s.event("customers", "u", ada, {"id": 1, "name": "Ada L.", "tier": "SILVER"}),
        s.event("orders", "u", order(11, 1, "650.00"), order(11, 1, "400.00")),  # leaves the alerts
        s.event("orders", "c", None, order(12, 1, "99.99")),
        s.event("orders", "u", order(12, 1, "99.99"), order(12, 1, "99.99", "CANCELLED")),
        s.event("orders", "d", order(10, 1, "250.00"), None),
    ]


def test_outputs_match_what_the_batch_job_would_compute_at_the_end() -> None:
    changes, records = run(scenario())
    enriched = latest(changes, "orders_enriched")
    assert enriched[(10,)] is None  # deleted
    assert enriched[(11,)] is not None and enriched[(11,)]["customer_name"] == "Ada L."  # re-enriched
    assert enriched[(11,)]["loyalty_tier"] == "GOLD" and enriched[(11,)]["amount"] == Decimal("400.00")
    assert enriched[(12,)] is not None and enriched[(12,)]["loyalty_tier"] == "BRONZE"
    assert latest(changes, "order_alerts") == {(11,): None}
    # Order 11 (400.00) is the only one counted: 10 was deleted, 12 cancelled.
    assert latest(changes, "daily_revenue") == {
        (1, date(2026, 11, 24)): {"order_count": 1, "revenue": Decimal("400.00")}
    }
    alerts = [r for r in records if r.topic == "order_alerts"]
    assert [(r.key, r.value) for r in alerts] == [("11", "11")]


def test_redelivered_events_change_nothing() -> None:
    events = scenario()
    once, _ = run(events)
    twice, _ = run(events + events[3:])  # Debezium resends a suffix after a restart
    assert latest(twice, "orders_enriched") == latest(once, "orders_enriched")
    assert latest(twice, "daily_revenue") == latest(once, "daily_revenue")
    assert len(twice) == len(once)


@pytest.mark.parametrize(
    ("defect", "upto", "output", "column"),
    [
        # Right after the customer change, before order 11's own update re-enriches it.
        ("ignore-customer-changes", 5, "orders_enriched", "customer_name"),
        ("double-count-updates", None, "daily_revenue", "revenue"),
        ("drop-deletes", None, "orders_enriched", None),
    ],
)
def test_each_defect_changes_its_output(defect: str, upto: int | None, output: str, column: str | None) -> None:
    good, _ = run(scenario()[:upto])
    bad, _ = run(scenario()[:upto], defect=defect)
    assert latest(bad, output) != latest(good, output)
    if column is not None:
        differing = {
            k
            for k, v in latest(bad, output).items()
            if v and latest(good, output)[k] and v[column] != latest(good, output)[k][column]  # type: ignore[index]
        }
        assert differing


def test_a_defect_is_its_own_pipeline_and_an_unknown_one_is_refused() -> None:
    spec = load_spec(example_spec_path())
    bad = defect_spec(spec, "drop-deletes")
    assert bad.stream.pipeline == "migrate.examples.shop_orders.defects:DROP_DELETES"
    assert bad.stream.group == f"{spec.stream.group}-drop-deletes" and spec.stream.pipeline != bad.stream.pipeline
    assert load_pipeline(bad.stream.pipeline).outputs == PIPELINE.outputs
    with pytest.raises(DualrunError, match="unknown defect 'make-it-fast'; choose one of"):
        defect_spec(spec, "make-it-fast")


def test_state_restored_from_the_state_and_enriched_records_equals_the_live_state() -> None:
    """What a restarted job rebuilds from its two compacted topics (as they would serialise)."""
    import orjson

    from migrate.stream.wire import encode

    live = ShopOrdersTransform()
    latest_record: dict[tuple[str, str], Any] = {}
    for event in scenario():
        for record in live.apply(event)[1]:
            if record.topic in ("state", "orders_enriched"):
                latest_record[(record.topic, record.key)] = record  # compaction keeps the last per key
    restored = ShopOrdersTransform()
    for (topic, key), record in latest_record.items():
        value = orjson.loads(encode(record.value)) if record.value is not None else None
        restored.restore(topic, key, value, record.pos)
    assert restored.state.orders == live.state.orders
    assert restored.state.customers == live.state.customers
    assert restored.state.deleted_orders == live.state.deleted_orders == {10: restored.state.deleted_orders[10]}
    assert restored.state.revenue == live.state.revenue
    # Restored, a redelivered old change is still recognised as applied.
    changes, records = restored.apply(scenario()[5])
    assert changes == [] and records == []


def test_enriched_rows_follow_the_changelog_schema() -> None:
    """The enriched row is the Kafka value's fields in order: the changelog's columns, then META."""
    changes, records = run(scenario()[:2])
    row = next(c.row for c in changes if c.output == "orders_enriched")
    value = next(r.value for r in records if r.topic == "orders_enriched")
    assert isinstance(value, dict) and list(value) == SCHEMAS["orders_enriched"].names
    assert row == (*value.values(), *row[len(value) :]) and len(row) == len(value) + len(META_COLUMNS)


def test_a_delete_of_an_order_whose_insert_was_poison_removes_it_and_touches_no_revenue() -> None:
    """The insert went to the dead-letter topic (NULL amount); the later delete must not stop the job."""
    s = Source()
    poison = {**order(7, 1, "1.00"), "amount": None}
    transform = ShopOrdersTransform()
    with pytest.raises(EnvelopeError, match="amount is NULL"):
        transform.apply(s.event("orders", "c", None, poison))
    changes, records = transform.apply(s.event("orders", "d", poison, None))
    enriched = PIPELINE.outputs["orders_enriched"]
    assert [(c.output, enriched.key_of(c), enriched.values_of(c)) for c in changes] == [("orders_enriched", (7,), None)]
    assert [(r.topic, r.key, r.value) for r in records] == [("orders_enriched", "7", None)]


def test_two_changes_to_one_order_in_one_postgresql_transaction_both_apply_and_a_redelivery_does_not() -> None:
    """On PostgreSQL a transaction's changes share their order value (the previous commit's LSN):
    the change's own LSN tells the transaction's second change from a redelivered first one."""

    def pg(op: str, before: dict[str, Any] | None, after: dict[str, Any], lsn: int) -> ChangeEvent:
        position = Position.lsn(5000, lsn)
        return ChangeEvent("p.shop.orders", {"order_id": 1}, op, before, after, position, 0, 0, False, "orders",
                           f"77:{lsn}")  # fmt: skip

    inserted, paid = order(1, 3, "120.00"), order(1, 3, "120.00", "PAID")
    transform = ShopOrdersTransform()
    transform.apply(pg("c", None, inserted, 100))
    transform.apply(pg("u", inserted, paid, 200))
    assert transform.state.orders[1].status == "PAID"
    assert transform.apply(pg("c", None, inserted, 100)) == ([], [])  # Debezium re-sent the insert
    assert transform.state.orders[1].status == "PAID"
