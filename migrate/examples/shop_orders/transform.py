"""The shop pipeline's streaming transform, event by event, with the batch job's semantics.

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
from typing import Any

from cdc.envelope import ChangeEvent, as_decimal
from cdc.errors import EnvelopeError
from cdc.position import OFFSET_BITS, Position
from migrate.examples.shop_orders.rules import SCHEMAS, counts_for_revenue, is_alert, loyalty_tier
from migrate.pipeline.records import KafkaRecord, Meta, OutputChange, meta


@dataclass
class Customer:
    name: str | None
    tier: str | None
    pos: int
    lsn: int = field(default=-1, compare=False)  # PostgreSQL: the change's own LSN (`_stale`); -1 unknown


@dataclass(slots=True)
class Order:
    customer_id: int
    amount: Decimal
    status: str
    created_at: datetime
    updated_at: datetime
    pos: int
    day: date  # kept, not derived: every change reads it (see `_new_order`)
    lsn: int = field(default=-1, compare=False)  # PostgreSQL: the change's own LSN (`_stale`); -1 unknown


_NO_REVENUE = (0, Decimal("0.00"))
_NO_ENRICHED = (None,) * (len(SCHEMAS["orders_enriched"]) - 1)  # a deleted order's value columns


def _new_order(
    customer_id: int, amount: Decimal, status: str, created_at: datetime, updated_at: datetime, pos: int
) -> Order:
    return Order(customer_id, amount, status, created_at, updated_at, pos, created_at.date())


@dataclass
class State:
    customers: dict[int, Customer] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    # Where each deleted entity was deleted: a redelivered older change must not bring it back.
    deleted_customers: dict[int, int] = field(default_factory=dict)
    deleted_orders: dict[int, int] = field(default_factory=dict)
    by_customer: defaultdict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    # (customer, day) -> (orders counted, revenue): kept exact as orders come and go, so a
    # change costs O(1) instead of a pass over the customer's orders that day.
    revenue: dict[tuple[int, date], tuple[int, Decimal]] = field(default_factory=dict)

    def _count(self, order: Order, sign: int) -> None:
        if not counts_for_revenue(order.status):
            return
        key = (order.customer_id, order.day)
        count, total = self.revenue.get(key, _NO_REVENUE)
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
        amount = row["amount"]
        if type(amount) is not Decimal:  # already decoded by the envelope, except in hand-built events
            amount = as_decimal(amount)
            if amount is None:
                raise EnvelopeError("orders.amount is NULL")
        customer_id, status = int(row["customer_id"]), str(row["status"])
        return _new_order(customer_id, amount, status, row["created_at"], row["updated_at"], pos)
    except KeyError as exc:
        raise EnvelopeError(f"orders change lacks column {exc.args[0]!r} (schema change?)") from None


class ShopOrdersTransform:
    """Applies change events to state and returns output rows and Kafka records
    (a `migrate.pipeline.contract.Transform`)."""

    def __init__(self, state: State | None = None) -> None:
        self.state = state or State()

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
        if current is not None:
            applied, lsn = current.pos, current.lsn
        else:
            applied, lsn = self.state.deleted_customers.get(customer_id, -1), -1
        if _stale(applied, lsn, event.position):
            return [], []  # redelivered or stale
        row = event.row
        state_key = f"c:{customer_id}"
        if row is None:
            self.state.customers.pop(customer_id, None)
            self.state.deleted_customers[customer_id] = pos
            records = [KafkaRecord("state", state_key, {"deleted": True, "pos": pos}, pos)]
            new: Customer | None = None
        else:
            new = Customer(row.get("name"), row.get("tier"), pos, event.position.minor)
            self.state.customers[customer_id] = new
            self.state.deleted_customers.pop(customer_id, None)
            records = [KafkaRecord("state", state_key, {"name": new.name, "tier": new.tier, "pos": pos}, pos)]
        changed = current is None or new is None or (current.name, current.tier) != (new.name, new.tier)
        if not changed:
            return [], records
        # The batch job recomputes every order's join: re-enrich this customer's orders.
        changes: list[OutputChange] = []
        here = meta("u", event.position, pos, event.source_ts_ms)
        for order_id in sorted(self.state.by_customer.get(customer_id, ())):
            order = self.state.orders[order_id]
            change, record = self._enriched(order_id, order, new, _no_earlier(here, order.pos, event))
            changes.append(change)
            records.append(record)
        return changes, records

    # -- orders ----------------------------------------------------------------------------
    def _order(self, event: ChangeEvent) -> tuple[list[OutputChange], list[KafkaRecord]]:
        # The hot path (one call per order event): locals over repeated attribute lookups.
        state = self.state
        order_id = int(event.key.get("order_id") or (event.after or event.before or {})["order_id"])
        position = event.position
        pos = position.order_value
        old = state.orders.get(order_id)
        applied = old.pos if old is not None else state.deleted_orders.get(order_id, -1)
        if applied >= pos and (applied > pos or _stale(applied, old.lsn if old is not None else -1, position)):
            return [], []
        new = None if event.op == "d" else _order_from(event.after or {}, pos)
        if new is not None:
            new.lsn = position.minor
        state.put_order(order_id, new)
        if new is None:
            state.deleted_orders[order_id] = pos
        elif state.deleted_orders:
            state.deleted_orders.pop(order_id, None)

        # No state record for orders: the compacted enriched topic, written in the same transaction,
        # carries every field of the order and its position (see `restore`).
        upsert = meta("u", position, pos, event.source_ts_ms)
        delete = ("d", *upsert[1:])
        changes: list[OutputChange]
        records: list[KafkaRecord]
        if new is None:
            changes = [OutputChange("orders_enriched", (order_id, *_NO_ENRICHED, *delete))]
            records = [KafkaRecord("orders_enriched", str(order_id), None, pos)]
        else:
            customer = state.customers.get(new.customer_id)
            at = upsert if customer is None else _no_earlier(upsert, customer.pos, event)
            change, record = self._enriched(order_id, new, customer, at)
            changes, records = [change], [record]

        was_alert = old is not None and is_alert(old.amount)
        if new is not None and is_alert(new.amount):
            if not was_alert or old is None or old.customer_id != new.customer_id or old.amount != new.amount:
                changes.append(OutputChange("order_alerts", (order_id, new.customer_id, new.amount, *upsert)))
            if not was_alert:
                # The article's alert consumer reads the order id from the value.
                records.append(KafkaRecord("order_alerts", str(order_id), str(order_id), pos))
        elif was_alert:
            changes.append(OutputChange("order_alerts", (order_id, None, None, *delete)))

        if old is not None and new is not None and (old.customer_id != new.customer_id or old.day != new.day):
            for group in sorted(((old.customer_id, old.day), (new.customer_id, new.day))):
                changes.append(self._revenue(group, upsert, delete))
        elif (held := new or old) is not None:  # None: deleting an order never held (its insert was dead-lettered)
            changes.append(self._revenue((held.customer_id, held.day), upsert, delete))
        return changes, records

    def _revenue(self, key: tuple[int, date], upsert: Meta, delete: Meta) -> OutputChange:
        entry = self.state.revenue.get(key)
        if entry is None:
            return OutputChange("daily_revenue", (*key, None, None, *delete))
        count, revenue = entry
        return OutputChange("daily_revenue", (*key, count, revenue, *upsert))

    def _enriched(
        self, order_id: int, order: Order, customer: Customer | None, at: Meta
    ) -> tuple[OutputChange, KafkaRecord]:
        # In the changelog schema's column order (a unit test holds them together): the row is
        # the dict's values, and the dict is the Kafka record's value.
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
        change = OutputChange("orders_enriched", (*values.values(), *at))
        return change, KafkaRecord("orders_enriched", str(order_id), values, at[-1])

    # -- restoring from the state topic and the enriched topic ---------------------------------
    def restore(self, topic: str, key: str, value: Any, order: int | None) -> None:
        """A committed record of the state topic (customers) or of the orders_enriched topic (orders).

        An enriched record's position (`order`, from its header) may be a later customer change that
        re-enriched the order; as the redelivery check only tells changes already applied from new
        ones, which all come later, it serves.
        """
        if topic == "orders_enriched":
            if order is None:
                raise EnvelopeError(f"orders_enriched record {key} has no position header")
            self._restore_order(int(key), None if value is None else _order_restored(value, order), order)
            return
        kind, _, ident = key.partition(":")
        if kind != "c":
            return
        self.state.customers.pop(int(ident), None)
        if value is not None and value.get("deleted"):
            self.state.deleted_customers[int(ident)] = int(value["pos"])
        elif value is not None:
            self.state.customers[int(ident)] = Customer(value["name"], value["tier"], int(value["pos"]))

    def _restore_order(self, order_id: int, order: Order | None, pos: int) -> None:
        current = self.state.orders.get(order_id)
        if pos < (current.pos if current is not None else self.state.deleted_orders.get(order_id, -1)):
            return  # an older copy of what is already restored
        self.state.put_order(order_id, order)
        if order is None:
            self.state.deleted_orders[order_id] = pos
        else:
            self.state.deleted_orders.pop(order_id, None)


def _stale(applied: int, applied_lsn: int, position: Position) -> bool:
    """Has the entity already had this change (redelivered) or a later one?

    Positions order by `order_value`; on PostgreSQL every change of one transaction shares it
    (the previous commit's LSN), so a second change to the same row in one transaction is told
    from a redelivery of the first by its own LSN. A restored entity's LSN is unknown (-1): a
    change of the same transaction is then applied again, as Debezium re-sends it in order.
    """
    pos = position.order_value
    if applied != pos or position.kind != "lsn":
        return applied >= pos
    return applied_lsn >= position.minor


def _no_earlier(at: Meta, pos: int, event: ChangeEvent) -> Meta:
    """An enriched row depends on both the order's and the customer's last change: it sits at the
    later of `at` (this event's upsert columns) and `pos`."""
    if pos <= at[-1]:
        return at
    return meta("u", _position_at(event.position, pos), pos, event.source_ts_ms)


def _position_at(position: Position, order_value: int) -> Position:
    """The event's position, or the later one (same server) that an enriched row depends on."""
    if order_value == position.order_value or position.kind != "binlog" or position.file is None:
        return position
    seq, offset = order_value >> OFFSET_BITS, order_value & ((1 << OFFSET_BITS) - 1)
    base = position.file.rsplit(".", 1)[0]
    width = len(position.file.rsplit(".", 1)[1])
    return Position.binlog(f"{base}.{seq:0{width}d}", offset)


def _order_restored(value: dict[str, Any], pos: int) -> Order:
    """An order as the job serialises it in its enriched record."""
    return _new_order(
        int(value["customer_id"]), Decimal(value["amount"]), value["status"],
        datetime.fromisoformat(value["created_at"]), datetime.fromisoformat(value["updated_at"]), pos,
    )  # fmt: skip
