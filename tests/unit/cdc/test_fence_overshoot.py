"""Overshoot: change events past the batch position P that sit below the fence f_P.

Debezium delivers at least once: after a connector restart it resends from its last committed source
offset, so a change topic's positions fall back and then replay. The fence search takes positions as
growing; on such a log it may put f_P after a resent event at or before P while an original event past P
lies below it. The properties: the incremental scan finds exactly the events past P below f_P, whatever
the restarts and the sequence of batch positions; and with them in the window, the classifier never
reports a defect that is not one, and still reports every defect outside the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc.fence import ScanMark, scan_ranges, update_marks
from cdc.position import Position
from cdc.progress import partition_fence
from migrate.window import Window, WindowEvent, classify

TP = ("src.shop.orders", 0)
ORDERS = "shop.orders"
LINEAGE = {ORDERS: {"order_id": "order_id"}}
SCHEMA = pa.schema([("order_id", pa.int64()), ("amount", pa.int64())])


def pos(i: int) -> Position:
    return Position.binlog("mysql-bin.000001", 14 + 10 * i)  # i = -1: before every event


@dataclass
class LogReader:
    """The fence search's reader over an in-memory partition: `log[offset]` is a history index."""

    log: list[int]

    def first_positioned(self, topic: str, partition: int, start: int, stop: int) -> tuple[int, Position] | None:
        return (start, pos(self.log[start])) if start < min(stop, len(self.log)) else None


def delivered(n: int, restarts: list[tuple[int, int]]) -> list[int]:
    """History indexes 0..n-1 as Debezium writes them: at each (after, back), once event `after` is
    written, a restart resends the last `back` events (from its last committed source offset)."""
    log: list[int] = []
    pending = dict(restarts)
    i = 0
    while i < n:
        log.append(i)
        i = max(0, i + 1 - pending.pop(i, 0))
    return log


def fence_of(log: list[int], target: int) -> int:
    # Debezium passed P: the fence is known even when every event is at or before it.
    return partition_fence(LogReader(log), TP[0], TP[1], 0, len(log), pos(target), True)  # type: ignore[arg-type]


def overshot(log: list[int], target: int, fence: int, marks: dict[tuple[str, int], ScanMark]) -> set[int]:
    """What `cdc.fence.overshoot` returns, with the in-memory log in place of `read_changes`."""
    ranges = scan_ranges({TP: fence}, {TP: 0}, pos(target), marks)
    start, stop = ranges[TP]
    update_marks(marks, ranges, [(TP, pos(log[o])) for o in range(start, stop)])
    return {o for o in range(start, stop) if log[o] > target}


restarts = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 6)), max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 40), restarts=restarts, targets=st.lists(st.integers(-1, 45), min_size=1, max_size=6))
def test_the_incremental_scan_finds_exactly_the_events_past_p_below_the_fence(
    n: int, restarts: list[tuple[int, int]], targets: list[int]
) -> None:
    log = delivered(n, restarts)
    marks: dict[tuple[str, int], ScanMark] = {}
    for target in targets:  # successive batch runs, P mostly later, sometimes earlier
        fence = fence_of(log, target)
        expected = {o for o in range(fence) if log[o] > target}
        assert overshot(log, target, fence, marks) == expected, (log, target, fence)


def test_a_restart_puts_an_event_past_p_below_the_fence() -> None:
    # e0 e1 e2, restart, resent e1 e2, then e3: the fence of P = e1 falls after the resent e1.
    log = delivered(4, [(2, 2)])
    assert log == [0, 1, 2, 1, 2, 3]
    assert fence_of(log, 1) == 4
    assert overshot(log, 1, 4, {}) == {2}


@dataclass(frozen=True)
class Change:
    order_id: int
    amount: int | None  # None: a delete


changes = st.lists(st.builds(Change, st.integers(1, 5), st.none() | st.integers(1, 9)), min_size=1, max_size=25)


def state(history: list[Change], upto: int) -> dict[int, dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for change in history[: upto + 1]:
        if change.amount is None:
            rows.pop(change.order_id, None)
        else:
            rows[change.order_id] = {"order_id": change.order_id, "amount": change.amount}
    return rows


def event(history: list[Change], i: int) -> WindowEvent:
    before = state(history, i - 1).get(history[i].order_id)
    return WindowEvent(ORDERS, before, state(history, i).get(history[i].order_id))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_with_overshoot_in_the_window_no_false_defect_and_every_defect_outside_is_found(data: st.DataObject) -> None:
    drawn = data.draw(changes, label="history")
    # Deleting a missing row changes nothing: no change event.
    history = [c for i, c in enumerate(drawn) if c.amount is not None or c.order_id in state(drawn, i - 1)]
    if not history:
        return
    n = len(history)
    log = delivered(n, data.draw(restarts, label="restarts"))
    p = data.draw(st.integers(0, n - 1), label="batch position")
    fence = fence_of(log, p)
    upper = data.draw(st.integers(fence, len(log)), label="consumed offsets (upper fence)")
    # The job: a KTable upsert by order id, consuming the log up to U (resends re-apply their after image).
    stream: dict[int, dict[str, Any]] = {}
    for o in range(upper):
        change = history[log[o]]
        after = state(history, log[o]).get(change.order_id)
        if after is None:
            stream.pop(change.order_id, None)
        else:
            stream[change.order_id] = dict(after)
    truth = state(history, p)
    early = overshot(log, p, fence, {})
    events = tuple(event(history, log[o]) for o in sorted(early)) + tuple(
        event(history, log[o]) for o in range(fence, upper)
    )
    window = Window("offsets", {"t[0]": fence}, {"t[0]": upper}, events, overshoot=len(early))

    def table(rows: dict[int, dict[str, Any]]) -> pa.Table:
        return pa.Table.from_pylist(list(rows.values()), schema=SCHEMA)

    honest = classify("orders", ["order_id"], table(truth), table(stream), window, LINEAGE)
    assert honest.defects == (), (log, p, fence, upper, honest.to_dict())
    bad = data.draw(st.sets(st.integers(1, 5), max_size=2), label="batch defects")
    batch = {k: {**v, "amount": v["amount"] + 100} if k in bad else v for k, v in truth.items()}
    found = classify("orders", ["order_id"], table(batch), table(stream), window, LINEAGE)
    flying = set(found.in_flight)
    injected = {(k,) for k in bad if k in truth}
    assert set(found.defects) == injected - flying, found.to_dict()
    assert not flying & set(found.defects)
