"""The bracket classifier's rules (design-byo §4.2): outside the window reconciled as `dualrun
reconcile` does (tolerances, ignored columns); window keys tested against the stream versions valid
inside the bracket under the same rules, one changed row a defect, two unresolvable."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from migrate.consistency import PRESENT, BracketClassification, classify_bracket, versions_in_bracket
from migrate.window import Window, WindowEvent, lineage_rows

ORDERS, CUSTOMERS = "shop.orders", "shop.customers"
# enriched orders: order_id, customer_id, amount, tier (the customer's)
LINEAGE: dict[str, Any] = {ORDERS: {"order_id": "id"}, CUSTOMERS: {"customer_id": "id"}}
SCHEMA = pa.schema([("order_id", pa.int64()), ("customer_id", pa.int64()), ("amount", pa.decimal128(12, 2)),
                    ("tier", pa.string())])  # fmt: skip


def rows(*values: tuple[int, int, str, str]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"order_id": o, "customer_id": c, "amount": Decimal(a), "tier": t} for o, c, a, t in values], schema=SCHEMA
    )


def row(o: int, c: int, a: str, t: str) -> dict[str, Any]:
    return {"order_id": o, "customer_id": c, "amount": Decimal(a), "tier": t}


def order_event(oid: int, cid: int, before: str | None, after: str | None) -> WindowEvent:
    image = lambda a: None if a is None else {"id": oid, "customer_id": cid, "amount": Decimal(a)}  # noqa: E731
    return WindowEvent(ORDERS, image(before), image(after), row=(oid,))


def customer_event(cid: int, before: str, after: str) -> WindowEvent:
    return WindowEvent(CUSTOMERS, {"id": cid, "tier": before}, {"id": cid, "tier": after}, row=(cid,))


def window(*events: WindowEvent) -> Window:
    return Window("positions", {"source": "bin.000001:100"}, {"source": "bin.000001:900"}, events)


def versions(found: dict[tuple[int], list[dict[str, Any] | None]]) -> pa.Table:
    """Versions per key as `versions_in_bracket` returns them (None: no row at that point)."""
    out = []
    for (oid,), rows_ in found.items():
        for r in rows_:
            out.append({**(r or {name: None for name in SCHEMA.names}), "order_id": oid, PRESENT: r is not None})
    return pa.Table.from_pylist(out, schema=SCHEMA.append(pa.field(PRESENT, pa.bool_())))


def decide(batch: pa.Table, stream: pa.Table, found: Any, w: Window, **rules: Any) -> BracketClassification:
    changed = lineage_rows("enriched", ["order_id"], (batch, stream), w, LINEAGE)
    table = None if found is None else versions(found)
    return classify_bracket("enriched", ["order_id"], batch, stream, changed, table, **rules)


def sample_keys(result: BracketClassification, cause: str) -> list[Any]:
    return [dict(s.key)["order_id"] for s in result.reconciliation.samples if s.cause == cause]


def test_outside_the_window_is_exact_and_a_difference_is_a_defect() -> None:
    batch = rows((1, 10, "5.00", "gold"), (2, 20, "7.00", "basic"), (3, 20, "1.00", "basic"))
    stream = rows((1, 10, "5.00", "gold"), (2, 20, "7.50", "basic"), (3, 20, "1.00", "basic"))
    result = decide(batch, stream, {}, window())
    assert result.reconciliation.mismatched_rows == 1 and sample_keys(result, "value_mismatch") == [2]
    assert result.window == ()
    assert result.verdict == "differences"
    assert result.coverage.to_dict() == {"verified_keys": 3, "in_flight_keys": 0, "coverage": 1.0}


def test_a_row_on_one_side_only_is_a_defect_outside_the_window() -> None:
    result = decide(rows((1, 10, "5.00", "gold")), rows((1, 10, "5.00", "gold"), (2, 20, "1.00", "basic")), {},
                    window())  # fmt: skip
    assert sample_keys(result, "missing_in_batch") == [2]


def test_a_window_key_matching_a_version_inside_the_bracket_is_consistent() -> None:
    # Order 2 changed 7.00 -> 7.50 inside the bracket; the job read it before the change.
    w = window(order_event(2, 20, "7.00", "7.50"))
    batch = rows((1, 10, "5.00", "gold"), (2, 20, "7.00", "basic"))
    stream = rows((1, 10, "5.00", "gold"), (2, 20, "7.50", "basic"))
    found = {(2,): [row(2, 20, "7.00", "basic"), row(2, 20, "7.50", "basic")]}
    result = decide(batch, stream, found, w)
    assert result.outside == 1 and result.reconciliation.matched_rows == 1  # key 2 left out: consistent
    assert [(k.key, k.outcome, k.changed_rows, k.versions) for k in result.window] == [((2,), "consistent", 1, 2)]
    assert result.verdict == "clean"
    assert result.coverage.to_dict()["in_flight_keys"] == 1
    assert result.in_flight.to_pylist() == [{"order_id": 2}]


def test_a_window_key_matching_no_version_with_one_changed_row_is_a_defect() -> None:
    w = window(order_event(2, 20, "7.00", "7.50"))
    batch = rows((2, 20, "7.40", "basic"))  # never a value of order 2
    stream = rows((2, 20, "7.50", "basic"))
    found = {(2,): [row(2, 20, "7.00", "basic"), row(2, 20, "7.50", "basic")]}
    result = decide(batch, stream, found, w)
    assert result.window_defects == ((2,),)
    # Reconciled with the stream as of P_hi, so it shows among the differences with its values.
    [sample] = result.reconciliation.samples
    assert (sample.cause, sample.values) == ("value_mismatch", (("amount", Decimal("7.40"), Decimal("7.50")),))
    assert result.verdict == "differences"


def test_two_changed_rows_make_a_mismatch_unresolvable_never_a_defect() -> None:
    # Order 2 and its customer 20 both changed: the job may have read the order after its change
    # and the customer before its own, a combination no stream version ever held.
    w = window(order_event(2, 20, "7.00", "7.50"), customer_event(20, "basic", "gold"))
    batch = rows((2, 20, "7.50", "basic"))
    stream = rows((2, 20, "7.50", "gold"))
    # The stream applied the customer first: (7.00, basic), (7.00, gold), (7.50, gold).
    found = {(2,): [row(2, 20, "7.00", "basic"), row(2, 20, "7.00", "gold"), row(2, 20, "7.50", "gold")]}
    result = decide(batch, stream, found, w)
    assert [(k.key, k.outcome, k.changed_rows) for k in result.window] == [((2,), "unresolvable", 2)]
    assert result.verdict == "clean"


def test_two_changes_of_one_row_are_one_changed_row() -> None:
    w = window(order_event(2, 20, "7.00", "7.50"), order_event(2, 20, "7.50", "8.00"))
    found = {(2,): [row(2, 20, "7.00", "basic"), row(2, 20, "7.50", "basic"), row(2, 20, "8.00", "basic")]}
    result = decide(rows((2, 20, "9.00", "basic")), rows((2, 20, "8.00", "basic")), found, w)
    assert [(k.outcome, k.changed_rows) for k in result.window] == [("defect", 1)]


def test_an_insert_inside_the_bracket_lets_the_batch_lack_the_row() -> None:
    w = window(order_event(4, 20, None, "3.00"))
    found = {(4,): [None, row(4, 20, "3.00", "basic")]}
    result = decide(rows(), rows((4, 20, "3.00", "basic")), found, w)
    assert [(k.key, k.outcome) for k in result.window] == [((4,), "consistent")]
    assert result.verdict == "clean"


def test_without_stream_positions_window_keys_are_untested() -> None:
    w = window(order_event(2, 20, "7.00", "7.50"))
    result = decide(rows((2, 20, "1.00", "basic")), rows((2, 20, "7.50", "basic")), None, w)
    assert [(k.key, k.outcome) for k in result.window] == [((2,), "untested")]
    assert result.verdict == "clean"


def test_a_customer_change_puts_each_of_its_orders_in_the_window_with_one_row() -> None:
    w = window(customer_event(20, "basic", "gold"))
    batch = rows((1, 10, "5.00", "gold"), (2, 20, "7.00", "basic"), (3, 20, "1.00", "silver"))
    stream = rows((1, 10, "5.00", "gold"), (2, 20, "7.00", "gold"), (3, 20, "1.00", "gold"))
    found = {(2,): [row(2, 20, "7.00", "basic"), row(2, 20, "7.00", "gold")],
             (3,): [row(3, 20, "1.00", "basic"), row(3, 20, "1.00", "gold")]}  # fmt: skip
    result = decide(batch, stream, found, w)
    assert result.outside == 1
    assert {k.key: k.outcome for k in result.window} == {(2,): "consistent", (3,): "defect"}


def test_a_tolerated_difference_is_not_a_defect_outside_nor_inside_the_window() -> None:
    # The spec's tolerances apply as in `dualrun reconcile`: amount within abs:0.01.
    w = window(order_event(2, 20, "7.00", "7.50"))
    batch = rows((1, 10, "5.01", "gold"), (2, 20, "7.49", "basic"))
    stream = rows((1, 10, "5.00", "gold"), (2, 20, "8.00", "basic"))
    found = {(2,): [row(2, 20, "7.00", "basic"), row(2, 20, "7.50", "basic")]}
    exact = decide(batch, stream, found, w)
    assert exact.verdict == "differences" and exact.window_defects == ((2,),)
    tolerant = decide(batch, stream, found, w, rules={"amount": "abs:0.01"})
    assert tolerant.verdict == "clean", tolerant.to_dict()
    assert tolerant.reconciliation.within_tolerance_rows == 1  # key 1, outside the window
    assert [(k.key, k.outcome) for k in tolerant.window] == [((2,), "consistent")]  # 7.49 ~ 7.50


def test_an_ignored_column_is_not_compared() -> None:
    w = window(order_event(2, 20, "7.00", "7.50"))
    batch = rows((1, 10, "5.00", "stale"), (2, 20, "7.50", "stale"))
    stream = rows((1, 10, "5.00", "gold"), (2, 20, "7.50", "basic"))
    found = {(2,): [row(2, 20, "7.00", "basic"), row(2, 20, "7.50", "basic")]}
    assert decide(batch, stream, found, w).verdict == "differences"
    result = decide(batch, stream, found, w, ignore=("tier",))
    assert result.verdict == "clean", result.to_dict()
    assert [(k.key, k.outcome) for k in result.window] == [((2,), "consistent")]
    assert [c.name for c in result.reconciliation.columns] == ["customer_id", "amount"]


def test_money_stays_decimal_a_cent_on_a_large_amount_is_a_defect() -> None:
    # 10**16 + 0.01 and 10**16 + 0.02 are the same double: only exact DECIMAL tells them apart,
    # and a tolerance below a cent does not blur them.
    schema = pa.schema([("order_id", pa.int64()), ("amount", pa.decimal128(20, 2))])
    big = lambda *v: pa.Table.from_pylist([{"order_id": o, "amount": Decimal(a)} for o, a in v], schema=schema)  # noqa: E731
    assert float(Decimal("10000000000000000.01")) == float(Decimal("10000000000000000.02"))
    w = window(WindowEvent(ORDERS, {"id": 2, "amount": Decimal("1")}, {"id": 2, "amount": Decimal("2")}, row=(2,)))
    lineage: dict[str, Any] = {ORDERS: {"order_id": "id"}}
    batch = big((1, "10000000000000000.01"), (2, "10000000000000000.01"))
    stream = big((1, "10000000000000000.02"), (2, "10000000000000000.03"))
    changed = lineage_rows("o", ["order_id"], (batch, stream), w, lineage)
    found = pa.Table.from_pylist(
        [{"order_id": 2, "amount": Decimal("10000000000000000.02"), PRESENT: True},
         {"order_id": 2, "amount": Decimal("10000000000000000.03"), PRESENT: True}],
        schema=schema.append(pa.field(PRESENT, pa.bool_())),
    )  # fmt: skip
    result = classify_bracket("o", ["order_id"], batch, stream, changed, found, rules={"amount": "abs:0.005"})
    assert result.window_defects == ((2,),)
    values = {dict(s.key)["order_id"]: s.values for s in result.reconciliation.samples}
    assert values[1] == (("amount", Decimal("10000000000000000.01"), Decimal("10000000000000000.02")),)
    assert all(isinstance(v, Decimal) for _, lv, rv in values[2] for v in (lv, rv))
    assert result.reconciliation.columns[0].compared_as.startswith("DECIMAL")


def test_versions_in_bracket_from_a_changelog() -> None:
    log = pa.Table.from_pylist(
        [
            {"order_id": 1, "amount": Decimal("1.00"), "__op": "r", "__pos_order": None, "__processed_at": 1},
            {"order_id": 1, "amount": Decimal("2.00"), "__op": "u", "__pos_order": 50, "__processed_at": 2},
            {"order_id": 1, "amount": Decimal("3.00"), "__op": "u", "__pos_order": 100, "__processed_at": 3},
            {"order_id": 1, "amount": Decimal("3.00"), "__op": "d", "__pos_order": 200, "__processed_at": 4},
            {"order_id": 1, "amount": Decimal("9.00"), "__op": "c", "__pos_order": 201, "__processed_at": 5},
            {"order_id": 2, "amount": Decimal("5.00"), "__op": "c", "__pos_order": 150, "__processed_at": 6},
            {"order_id": 3, "amount": Decimal("4.00"), "__op": "c", "__pos_order": 10, "__processed_at": 7},
        ]
    )
    with duckdb.connect() as con:
        con.register("log", log)
        wanted = pa.table({"order_id": pa.array([1, 2, 3, 4], pa.int64())})
        found = versions_in_bracket(con, "log", ["order_id"], wanted, 100, 200)
    assert found.schema.field("amount").type == pa.decimal128(3, 2)  # money stays DECIMAL
    listed = sorted(((r["order_id"], r["amount"] if r[PRESENT] else None) for r in found.to_pylist()), key=repr)
    assert listed == sorted([
        (1, Decimal("2.00")), (1, Decimal("3.00")), (1, None),  # 9.00 is past the bracket
        (2, None), (2, Decimal("5.00")),
        (3, Decimal("4.00")),
        (4, None),
    ], key=repr)  # fmt: skip


def test_counts_are_of_every_row_read_and_a_duplicated_window_key_is_a_defect() -> None:
    """Issue 13 trial: the summary said batch rows without the window keys and 0 duplicate keys
    while the batch held order 2 twice. Rows read count; a duplicated key is never left out."""
    w = window(order_event(2, 20, "7.00", "7.50"), order_event(3, 20, "1.00", "1.50"))
    batch = rows((1, 10, "5.00", "gold"), (2, 20, "7.00", "basic"), (2, 20, "7.50", "basic"), (3, 20, "1.00", "basic"))
    stream = rows((1, 10, "5.00", "gold"), (2, 20, "7.50", "basic"), (3, 20, "1.50", "basic"))
    found = {(2,): [row(2, 20, "7.00", "basic"), row(2, 20, "7.50", "basic")],
             (3,): [row(3, 20, "1.00", "basic"), row(3, 20, "1.50", "basic")]}  # fmt: skip
    result = decide(batch, stream, found, w)
    rec = result.reconciliation
    assert (rec.left.rows, rec.right.rows) == (4, 3)  # all rows read, window keys included
    assert (rec.left.duplicate_keys, rec.left.duplicate_rows) == (1, 2)
    assert rec.causes["duplicate_key"] == 1 and rec.causes["in_flight"] == 1  # order 3, consistent, left out
    assert [(k.key, k.outcome) for k in result.window] == [((2,), "defect"), ((3,), "consistent")]
    assert result.verdict == "differences"
