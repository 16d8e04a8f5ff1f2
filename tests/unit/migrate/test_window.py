"""The window classifier: exact outside the window's lineage, honest inside it.

The property test simulates what the offset fence sees: a random source history over two tables
(orders, customers) captured into two change topics; a join-and-aggregate processor (the
OrderEnricher's semantics: an order joined with its customer's tier, revenue per customer) that
consumes the two topics in a random interleaving and emits the current value of every key it
touches; a random batch position P and a random read time after the processor passed the fence.
The window is then the events between the fence f_P and the processor's consumed offsets, as
design-byo §3 defines it, and `classify` must report exactly the injected defects outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.errors import SpecError
from migrate.window import Coverage, Window, WindowEvent, classify, in_flight_keys

ORDERS, CUSTOMERS = "shop.orders", "shop.customers"
ENRICHED = {ORDERS: {"order_id": "order_id"}, CUSTOMERS: {"customer_id": "id"}}
REVENUE = {ORDERS: {"customer_id": "customer_id"}}
ENRICHED_SCHEMA = pa.schema([("order_id", pa.int64()), ("customer_id", pa.int64()), ("amount", pa.decimal128(12, 2)),
                             ("tier", pa.string())])  # fmt: skip
REVENUE_SCHEMA = pa.schema([("customer_id", pa.int64()), ("revenue", pa.decimal128(18, 2)), ("orders", pa.int64())])


@dataclass
class Source:
    """The source database: applies a change, returns its event with before and after images."""

    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)

    def apply(self, table: str, row_id: int, after: dict[str, Any] | None) -> WindowEvent:
        rows = self.orders if table == ORDERS else self.customers
        before = rows.get(row_id)
        if after is None:
            rows.pop(row_id, None)
        else:
            rows[row_id] = after
        return WindowEvent(table, before, after)


def enriched(orders: dict[int, dict[str, Any]], customers: dict[int, dict[str, Any]], oid: int) -> dict[str, Any]:
    order = orders[oid]
    tier = customers.get(order["customer_id"], {}).get("tier")
    return {"order_id": oid, "customer_id": order["customer_id"], "amount": order["amount"], "tier": tier}


def revenue(orders: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    groups: dict[int, dict[str, Any]] = {}
    for order in orders.values():
        group = groups.setdefault(order["customer_id"], {"revenue": Decimal("0.00"), "orders": 0})
        group["revenue"] += order["amount"]
        group["orders"] += 1
    return {c: {"customer_id": c, **g} for c, g in groups.items()}


@dataclass
class Processor:
    """A keyed join and an aggregate over two change topics, emitting the new value of every key a
    change touches (KTable-KTable foreign-key join semantics); `bad` keys get a wrong amount."""

    bad: frozenset[int] = frozenset()
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    out: dict[int, dict[str, Any]] = field(default_factory=dict)
    sums: dict[int, dict[str, Any]] = field(default_factory=dict)

    def emit(self, oid: int) -> None:
        row = enriched(self.orders, self.customers, oid)
        if oid in self.bad:
            row["amount"] += Decimal("0.01")
        self.out[oid] = row

    def consume(self, event: WindowEvent) -> None:
        if event.table == CUSTOMERS:
            cid = (event.after or event.before or {})["id"]
            if event.after is None:
                self.customers.pop(cid, None)
            else:
                self.customers[cid] = event.after
            for oid, order in self.orders.items():
                if order["customer_id"] == cid:
                    self.emit(oid)
            return
        oid = (event.after or event.before or {})["order_id"]
        if event.after is None:
            self.orders.pop(oid, None)
            self.out.pop(oid, None)
        else:
            self.orders[oid] = event.after
            self.emit(oid)
        self.sums = revenue(self.orders)


def table(rows: dict[Any, dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(list(rows.values()), schema=schema)


change = st.one_of(
    st.tuples(st.just(ORDERS), st.integers(1, 6), st.none() | st.tuples(st.integers(1, 3), st.integers(1, 500))),
    st.tuples(st.just(CUSTOMERS), st.integers(1, 3), st.none() | st.sampled_from(["GOLD", "SILVER", "BRONZE"])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_key_outside_the_window_is_misreported_and_every_defect_outside_it_is_found(data: st.DataObject) -> None:
    history = data.draw(st.lists(change, min_size=1, max_size=30), label="history")
    source, topics = Source(), {ORDERS: [], CUSTOMERS: []}  # type: dict[str, list[tuple[int, WindowEvent]]]
    snapshots = []
    for tbl, row_id, value in history:
        if value is None and row_id not in (source.orders if tbl == ORDERS else source.customers):
            continue  # deleting a missing row changes nothing: no change event
        pos = len(snapshots)
        if value is None:
            after = None
        elif tbl == ORDERS:
            after = {"order_id": row_id, "customer_id": value[0], "amount": Decimal(value[1]) / 4}
        else:
            after = {"id": row_id, "tier": value}
        topics[tbl].append((pos, source.apply(tbl, row_id, after)))
        snapshots.append(({k: dict(v) for k, v in source.orders.items()}, dict(source.customers)))
    p = data.draw(st.integers(-1, len(snapshots) - 1), label="batch position")
    at_p = snapshots[p] if p >= 0 else ({}, {})
    fence = {t: sum(1 for pos, _ in events if pos <= p) for t, events in topics.items()}

    # The processor reads the two topics in a random interleaving; the read happens once it has
    # passed the fence on both, after a random number of further steps (its commit interval).
    n = len(snapshots)
    picks = data.draw(st.lists(st.booleans(), min_size=n, max_size=n), label="interleaving")
    extra = data.draw(st.integers(0, n), label="steps after the fence")
    bad_stream = frozenset(data.draw(st.sets(st.integers(1, 6), max_size=2), label="processor defects"))
    bad_batch = data.draw(st.sets(st.integers(1, 6), max_size=2), label="batch defects")
    bad_group = data.draw(st.sets(st.integers(1, 3), max_size=1), label="batch revenue defects")

    def run(bad: frozenset[int]) -> tuple[Processor, dict[str, int]]:
        proc, done = Processor(bad), {ORDERS: 0, CUSTOMERS: 0}
        after_fence = 0
        for pick in picks:
            if all(done[t] >= fence[t] for t in topics):
                if after_fence == extra:
                    break
                after_fence += 1
            order_first = (pick and done[ORDERS] < len(topics[ORDERS])) or done[CUSTOMERS] >= len(topics[CUSTOMERS])
            t = ORDERS if order_first else CUSTOMERS
            proc.consume(topics[t][done[t]][1])
            done[t] += 1
        return proc, done

    clean_proc, upper = run(frozenset())
    defect_proc, upper_again = run(bad_stream)
    assert upper == upper_again and all(upper[t] >= fence[t] for t in topics)
    window = Window(
        "offsets", fence, upper, tuple(e for t, events in topics.items() for _, e in events[fence[t] : upper[t]])
    )

    truth_orders = {oid: enriched(at_p[0], at_p[1], oid) for oid in at_p[0]}
    batch_orders = {k: dict(v) for k, v in truth_orders.items()}
    for oid in bad_batch & set(batch_orders):
        batch_orders[oid]["amount"] += Decimal("1000")
    truth_revenue = revenue(at_p[0])
    batch_revenue = {k: dict(v) for k, v in truth_revenue.items()}
    for cid in bad_group & set(batch_revenue):
        batch_revenue[cid]["orders"] += 1

    fan_out = {ORDERS: 1, CUSTOMERS: 6}  # an order image names one order; a customer image up to 6
    for name, keys, schema, lineage, truth, batch, clean, defect in [
        ("orders_enriched", ["order_id"], ENRICHED_SCHEMA, ENRICHED, truth_orders, batch_orders,
         clean_proc.out, defect_proc.out),
        ("customer_revenue", ["customer_id"], REVENUE_SCHEMA, REVENUE, truth_revenue, batch_revenue,
         clean_proc.sums, defect_proc.sums),
    ]:  # fmt: skip
        honest = classify(name, keys, table(truth, schema), table(clean, schema), window, lineage)
        assert honest.defects == (), (name, honest.to_dict())  # no key outside the window misreported
        found = classify(name, keys, table(batch, schema), table(defect, schema), window, lineage)
        flying = set(found.in_flight)
        injected = {
            (k,) for k in set(truth) | set(batch) | set(clean) | set(defect)
            if truth.get(k) != batch.get(k) or clean.get(k) != defect.get(k)
        }  # fmt: skip
        assert set(found.defects) == injected - flying, (name, found.to_dict(), injected)
        assert not flying & set(found.defects)  # in flight is never a defect
        bound = sum(2 * (fan_out[e.table] if lineage.get(e.table) else 0) for e in window.events)
        assert len(flying) <= bound, (name, len(flying), bound)
        if not window.events:
            assert not flying and found.coverage.ratio == 1.0


def test_a_quiet_window_verifies_every_key_and_a_coarse_rule_none() -> None:
    batch = pa.table({"order_id": [1, 2, 3], "amount": [1, 2, 3]})
    quiet = classify("o", ["order_id"], batch, batch, Window("offsets", {}, {}), {CUSTOMERS: "all"})
    assert quiet.coverage == Coverage(3, 0) and quiet.verdict == "clean"
    busy = Window("offsets", {}, {}, (WindowEvent(CUSTOMERS, None, {"id": 1}),))
    coarse = classify("o", ["order_id"], batch, batch, busy, {CUSTOMERS: "all"})
    assert coarse.coverage.to_dict() == {"verified_keys": 0, "in_flight_keys": 3, "coverage": 0.0}


def test_a_moved_order_puts_its_old_and_new_group_in_flight() -> None:
    day = {ORDERS: {"customer_id": "customer_id", "order_day": "CAST(created_at AS DATE)"}}
    d11, d12 = date(2023, 12, 11), date(2023, 12, 12)
    rows = pa.table({"customer_id": [7, 8, 7], "order_day": [d11, d11, d12]})
    late = datetime(2023, 12, 11, 23, 59, 59)  # a naive DATETIME: its date, whatever the machine's zone
    moved = WindowEvent(ORDERS, {"customer_id": 7, "created_at": late}, {"customer_id": 8, "created_at": late})
    keys = in_flight_keys("daily", ["customer_id", "order_day"], [rows], Window("offsets", {}, {}, (moved,)), day)
    assert keys.to_pylist() == [{"customer_id": 7, "order_day": d11}, {"customer_id": 8, "order_day": d11}]


def test_a_lineage_naming_a_column_the_output_lacks_is_a_spec_error() -> None:
    rows = pa.table({"order_id": [1]})
    window = Window("offsets", {}, {}, (WindowEvent(ORDERS, None, {"order_id": 1}),))
    with pytest.raises(SpecError, match=r"outputs.o.lineage.shop.orders: 'oid' is not a column of output o"):
        in_flight_keys("o", ["order_id"], [rows], window, {ORDERS: {"oid": "order_id"}})
    with pytest.raises(SpecError, match=r"the expressions do not apply to the changes of shop.orders"):
        in_flight_keys("o", ["order_id"], [rows], window, {ORDERS: {"order_id": "no_such_column"}})
