"""The streaming side of the reference pipeline, event by event, with the batch job's semantics.

State holds the latest customers and orders with the source position of the
change that set them. Every output row is recomputed from state (never
accumulated), so re-applying an event yields the same rows, and an event at or
before the position already applied to its entity is skipped: Debezium's
at-least-once redelivery after a restart changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from cdc.envelope import ChangeEvent, as_decimal
from cdc.errors import EnvelopeError
from cdc.position import OFFSET_BITS, Position
from migrate.pipeline import counts_for_revenue, is_alert, loyalty_tier

# Deliberately wrong transforms for `dualrun demo --inject-defect`: each must be caught
# by reconciliation with its own cause.
DEFECTS = {
    "ignore-customer-changes": "customer name/tier changes are not applied to existing orders",
    "double-count-updates": "order updates add their amount to daily revenue again",
    "drop-deletes": "deleted orders stay in the outputs",
}


@dataclass
class Customer:
    name: str | None
    tier: str | None
    pos: int


@dataclass(slots=True)
class Order:
    customer_id: int
    amount: Decimal
    status: str
    created_at: datetime
    updated_at: datetime
    pos: int
    day: date = field(init=False)  # kept, not derived: every change reads it

    def __post_init__(self) -> None:
        self.day = self.created_at.date()


# Named tuples rather than frozen dataclasses: immutable too, and several are built per event.
class OutputChange(NamedTuple):
    """One row of an output changelog: values after the change, or None for a delete."""

    output: str
    key: tuple[Any, ...]
    values: dict[str, Any] | None
    position: Position
    pos_order: int
    source_ts_ms: int


class KafkaRecord(NamedTuple):
    topic: str  # the logical output: "enriched", "alert" or "state"
    key: str
    value: dict[str, Any] | str | None  # None: a tombstone
    pos: int = 0  # source position (order value) of the change, sent as a header


@dataclass
class State:
    customers: dict[int, Customer] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    # Where each deleted entity was deleted: a redelivered older change must not bring it back.
    deleted_customers: dict[int, int] = field(default_factory=dict)
    deleted_orders: dict[int, int] = field(default_factory=dict)
    by_customer: defaultdict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    revenue_extra: defaultdict[tuple[int, date], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    # (customer, day) -> (orders counted, revenue): kept exact as orders come and go, so a
    # change costs O(1) instead of a pass over the customer's orders that day.
    revenue: dict[tuple[int, date], tuple[int, Decimal]] = field(default_factory=dict)

    def _count(self, order: Order, sign: int) -> None:
        if not counts_for_revenue(order.status):
            return
        key = (order.customer_id, order.day)
        count, total = self.revenue.get(key, (0, Decimal("0.00")))
        count, total = count + sign, total + sign * order.amount
        if count:
            self.revenue[key] = (count, total)
        else:
            self.revenue.pop(key, None)

    def put_order(self, order_id: int, order: Order | None) -> None:
        old = self.orders.pop(order_id, None)
        if old is not None:
            self.by_customer[old.customer_id].discard(order_id)
            self._count(old, -1)
        if order is not None:
            self.orders[order_id] = order
            self.by_customer[order.customer_id].add(order_id)
            self._count(order, +1)


def _order_from(row: dict[str, Any], pos: int) -> Order:
    try:
        amount = as_decimal(row["amount"])
        if amount is None:
            raise EnvelopeError("orders.amount is NULL")
        return Order(int(row["customer_id"]), amount, str(row["status"]), row["created_at"], row["updated_at"], pos)
    except KeyError as exc:
        raise EnvelopeError(f"orders change lacks column {exc.args[0]!r} (schema change?)") from None


class Transform:
    """Applies change events to state and returns output rows and Kafka records."""

    def __init__(self, state: State | None = None, defect: str | None = None) -> None:
        if defect is not None and defect not in DEFECTS:
            raise ValueError(f"unknown defect {defect!r}; choose one of {', '.join(DEFECTS)}")
        self.state = state or State()
        self.defect = defect

    def apply(self, event: ChangeEvent) -> tuple[list[OutputChange], list[KafkaRecord]]:
        if event.table == "customers":
            return self._customer(event)
        if event.table == "orders":
            return self._order(event)
        raise EnvelopeError(f"no transform for table {event.table!r}")

    # -- customers -------------------------------------------------------------------------
    def _customer(self, event: ChangeEvent) -> tuple[list[OutputChange], list[KafkaRecord]]:
        customer_id = int(event.key.get("id") or (event.after or event.before or {})["id"])
        pos = event.position.order_value
        current = self.state.customers.get(customer_id)
        applied = current.pos if current is not None else self.state.deleted_customers.get(customer_id, -1)
        if applied >= pos:
            return [], []  # redelivered or stale
        row = event.row
        state_key = f"c:{customer_id}"
        if row is None:
            self.state.customers.pop(customer_id, None)
            self.state.deleted_customers[customer_id] = pos
            records = [KafkaRecord("state", state_key, {"deleted": True, "pos": pos}, pos)]
            new: Customer | None = None
        else:
            new = Customer(row.get("name"), row.get("tier"), pos)
            self.state.customers[customer_id] = new
            self.state.deleted_customers.pop(customer_id, None)
            records = [KafkaRecord("state", state_key, {"name": new.name, "tier": new.tier, "pos": pos}, pos)]
        changed = current is None or new is None or (current.name, current.tier) != (new.name, new.tier)
        if not changed or self.defect == "ignore-customer-changes" and current is not None:
            return [], records
        # The batch job recomputes every order's join: re-enrich this customer's orders.
        changes: list[OutputChange] = []
        for order_id in sorted(self.state.by_customer.get(customer_id, ())):
            order = self.state.orders[order_id]
            change, record = self._enriched(order_id, order, event, max(pos, order.pos))
            changes.append(change)
            records.append(record)
        return changes, records

    # -- orders ----------------------------------------------------------------------------
    def _order(self, event: ChangeEvent) -> tuple[list[OutputChange], list[KafkaRecord]]:
        image = event.after or event.before or {}
        order_id = int(event.key.get("order_id") or image["order_id"])
        pos = event.position.order_value
        old = self.state.orders.get(order_id)
        applied = old.pos if old is not None else self.state.deleted_orders.get(order_id, -1)
        if applied >= pos:
            return [], []
        if event.op == "d" and self.defect == "drop-deletes":
            return [], []
        new = None if event.row is None else _order_from(event.row, pos)
        self.state.put_order(order_id, new)
        if new is None:
            self.state.deleted_orders[order_id] = pos
        else:
            self.state.deleted_orders.pop(order_id, None)
        double_count = self.defect == "double-count-updates" and event.op == "u"
        if double_count and new is not None and counts_for_revenue(new.status):
            self.state.revenue_extra[(new.customer_id, new.day)] += new.amount

        # No state record for orders: the compacted enriched topic, written in the same transaction,
        # carries every field of the order and its position (see `restore_enriched`).
        changes: list[OutputChange] = []
        records: list[KafkaRecord] = []
        if new is None:
            changes.append(self._change("orders_enriched", (order_id,), None, event, pos))
            records.append(KafkaRecord("enriched", str(order_id), None, pos))
        else:
            customer = self.state.customers.get(new.customer_id)
            change, record = self._enriched(order_id, new, event, max(pos, customer.pos if customer else 0))
            changes.append(change)
            records.append(record)

        was_alert = old is not None and is_alert(old.amount)
        now_alert = new is not None and is_alert(new.amount)
        if now_alert and new is not None:
            alert = {"customer_id": new.customer_id, "amount": new.amount}
            if not was_alert or old is None or (old.customer_id, old.amount) != (new.customer_id, new.amount):
                changes.append(self._change("order_alerts", (order_id,), alert, event, pos))
            if not was_alert:
                # The article's alert consumer reads the order id from the value.
                records.append(KafkaRecord("alert", str(order_id), str(order_id), pos))
        elif was_alert:
            changes.append(self._change("order_alerts", (order_id,), None, event, pos))

        groups = [(o.customer_id, o.day) for o in (old, new) if o is not None]
        if len(groups) == 2 and groups[0] == groups[1]:
            groups.pop()
        for customer_id, day in sorted(groups):
            changes.append(self._revenue(customer_id, day, event, pos))
        return changes, records

    def _revenue(self, customer_id: int, day: date, event: ChangeEvent, pos: int) -> OutputChange:
        key = (customer_id, day)
        if key not in self.state.revenue:
            return self._change("daily_revenue", key, None, event, pos)
        count, revenue = self.state.revenue[key]
        if self.state.revenue_extra:  # only the double-count-updates defect fills it
            revenue += self.state.revenue_extra.get(key, Decimal(0))
        return self._change("daily_revenue", key, {"order_count": count, "revenue": revenue}, event, pos)

    def _enriched(self, order_id: int, order: Order, event: ChangeEvent, pos: int) -> tuple[OutputChange, KafkaRecord]:
        customer = self.state.customers.get(order.customer_id)
        # The key rides along in the values (the changelog takes only its schema's columns), so
        # one dict serves both the changelog row and the Kafka record.
        values = {
            "order_id": order_id,
            "customer_id": order.customer_id,
            "customer_name": customer.name if customer else None,
            "customer_tier": customer.tier if customer else None,
            "amount": order.amount,
            "status": order.status,
            "loyalty_tier": loyalty_tier(order.amount),
            "order_day": order.day,
            "created_at": order.created_at,
            "updated_at": order.updated_at,
        }
        change = self._change("orders_enriched", (order_id,), values, event, pos)
        return change, KafkaRecord("enriched", str(order_id), values, pos)

    @staticmethod
    def _change(
        output: str, key: tuple[Any, ...], values: dict[str, Any] | None, event: ChangeEvent, pos: int
    ) -> OutputChange:
        position = event.position
        if pos != position.order_value:
            position = _position_at(position, pos)
        return OutputChange(output, key, values, position, pos, event.source_ts_ms)

    # -- restoring from the state topic ----------------------------------------------------
    def restore(self, key: str, value: dict[str, Any] | None) -> None:
        kind, _, ident = key.partition(":")
        deleted = value is None or bool(value.get("deleted"))
        if kind == "c":
            self.state.customers.pop(int(ident), None)
            if value is not None and deleted:
                self.state.deleted_customers[int(ident)] = int(value["pos"])
            elif value is not None:
                self.state.customers[int(ident)] = Customer(value["name"], value["tier"], int(value["pos"]))
        elif kind == "o" and value is not None:  # written by versions before orders came from `enriched`
            self._restore_order(int(ident), None if deleted else _order_restored(value), int(value["pos"]))

    def restore_enriched(self, order_id: int, value: dict[str, Any] | None, pos: int) -> None:
        """An order as the enriched topic holds it (None: its tombstone), at the position in its header.

        That position may be a later customer change that re-enriched the order; as the redelivery
        check only tells changes already applied from new ones, which all come later, it serves.
        """
        order = None
        if value is not None:
            order = Order(
                int(value["customer_id"]), Decimal(value["amount"]), value["status"],
                datetime.fromisoformat(value["created_at"]), datetime.fromisoformat(value["updated_at"]), pos,
            )  # fmt: skip
        self._restore_order(order_id, order, pos)

    def _restore_order(self, order_id: int, order: Order | None, pos: int) -> None:
        current = self.state.orders.get(order_id)
        if pos < (current.pos if current is not None else self.state.deleted_orders.get(order_id, -1)):
            return  # an older copy of what is already restored
        self.state.put_order(order_id, order)
        if order is None:
            self.state.deleted_orders[order_id] = pos
        else:
            self.state.deleted_orders.pop(order_id, None)


def _position_at(position: Position, order_value: int) -> Position:
    """The event's position, or the later one (same server) that an enriched row depends on."""
    if order_value == position.order_value or position.kind != "binlog" or position.file is None:
        return position
    seq, offset = order_value >> OFFSET_BITS, order_value & ((1 << OFFSET_BITS) - 1)
    base = position.file.rsplit(".", 1)[0]
    width = len(position.file.rsplit(".", 1)[1])
    return Position.binlog(f"{base}.{seq:0{width}d}", offset)


def _order_restored(value: dict[str, Any]) -> Order:
    return Order(
        int(value["customer_id"]), Decimal(value["amount"]), value["status"],
        datetime.fromisoformat(value["created_at"]), datetime.fromisoformat(value["updated_at"]), int(value["pos"]),
    )  # fmt: skip
