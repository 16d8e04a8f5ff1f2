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
from migrate.pipeline import KEYS, SCHEMAS, counts_for_revenue, is_alert, loyalty_tier

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
    day: date  # kept, not derived: every change reads it (see `_new_order`)


# Named tuples rather than frozen dataclasses: immutable too, and several are built per event.
class OutputChange(NamedTuple):
    """One row of an output changelog, as the changelog stores it: the output's columns in schema
    order (None for a delete's value columns), then the changelog's own, `Meta`.

    Built whole by the transform, so the writer turns a transaction's rows into columns with one
    transpose in C instead of a Python pass per column.
    """

    output: str
    row: tuple[Any, ...]

    @property
    def key(self) -> tuple[Any, ...]:
        return self.row[: len(KEYS[self.output])]

    @property
    def values(self) -> dict[str, Any] | None:
        """The value columns after the change, or None for a delete."""
        names = SCHEMAS[self.output].names
        if self.row[len(names)] == "d":
            return None
        width = len(KEYS[self.output])
        return dict(zip(names[width:], self.row[width : len(names)], strict=True))

    @property
    def pos_order(self) -> int:
        return int(self.row[-1])


# The changelog's own columns after an output's: op, binlog file, binlog offset, GTID, LSN,
# source commit time (ms), position order. `__processed_at` is stamped by the writer.
Meta = tuple[str, str | None, int | None, str | None, str | None, int, int]
META_COLUMNS = ("__op", "__pos_file", "__pos_offset", "__gtid", "__lsn", "__source_ts_ms", "__pos_order")


def meta(op: str, position: Position, pos_order: int, source_ts_ms: int) -> Meta:
    """
    >>> meta("u", Position.binlog("mysql-bin.000003", 4242, gtid="0-1-17"), 42, 1700000000000)
    ('u', 'mysql-bin.000003', 4242, '0-1-17', None, 1700000000000, 42)
    """
    binlog = position.kind == "binlog"
    return (op, position.file, position.minor if binlog else None, position.gtid, None, source_ts_ms, pos_order)


class KafkaRecord(NamedTuple):
    topic: str  # an output name (its stream.topic in the spec), or "state"
    key: str
    value: dict[str, Any] | str | None  # None: a tombstone
    pos: int = 0  # source position (order value) of the change, sent as a header


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
    revenue_extra: defaultdict[tuple[int, date], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
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
        if applied >= pos:
            return [], []
        deleting = event.op == "d"
        if deleting and self.defect == "drop-deletes":
            return [], []
        new = None if deleting else _order_from(event.after or {}, pos)
        state.put_order(order_id, new)
        if new is None:
            state.deleted_orders[order_id] = pos
        elif state.deleted_orders:
            state.deleted_orders.pop(order_id, None)
        double_count = self.defect == "double-count-updates" and event.op == "u"
        if double_count and new is not None and counts_for_revenue(new.status):
            state.revenue_extra[(new.customer_id, new.day)] += new.amount

        # No state record for orders: the compacted enriched topic, written in the same transaction,
        # carries every field of the order and its position (see `restore_enriched`).
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
        if self.state.revenue_extra:  # only the double-count-updates defect fills it
            revenue += self.state.revenue_extra.get(key, Decimal(0))
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
            pos = int(value["pos"])
            self._restore_order(int(ident), None if deleted else _order_restored(value, pos), pos)

    def restore_enriched(self, order_id: int, value: dict[str, Any] | None, pos: int) -> None:
        """An order as the enriched topic holds it (None: its tombstone), at the position in its header.

        That position may be a later customer change that re-enriched the order; as the redelivery
        check only tells changes already applied from new ones, which all come later, it serves.
        """
        self._restore_order(order_id, None if value is None else _order_restored(value, pos), pos)

    def _restore_order(self, order_id: int, order: Order | None, pos: int) -> None:
        current = self.state.orders.get(order_id)
        if pos < (current.pos if current is not None else self.state.deleted_orders.get(order_id, -1)):
            return  # an older copy of what is already restored
        self.state.put_order(order_id, order)
        if order is None:
            self.state.deleted_orders[order_id] = pos
        else:
            self.state.deleted_orders.pop(order_id, None)


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
    """An order as the job serialises it (enriched record, or a legacy `o:` state record)."""
    return _new_order(
        int(value["customer_id"]), Decimal(value["amount"]), value["status"],
        datetime.fromisoformat(value["created_at"]), datetime.fromisoformat(value["updated_at"]), pos,
    )  # fmt: skip
