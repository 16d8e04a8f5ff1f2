"""Deliberately wrong versions of the shop pipeline, for `dualrun demo --inject-defect NAME`.

Each is the reference transform wrapped by a small wrong rule, offered as its own pipeline
(`stream.pipeline: migrate.examples.shop_orders.defects:DROP_DELETES`), so the reference's hot path
carries no defect branch and the generic spec, status and warehouse know nothing of defects.
Reconciliation must catch each with its own cause and nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from cdc.envelope import ChangeEvent
from migrate.examples.shop_orders import PIPELINE
from migrate.examples.shop_orders.rules import counts_for_revenue
from migrate.examples.shop_orders.transform import ShopOrdersTransform
from migrate.pipeline.contract import Pipeline
from migrate.pipeline.records import KafkaRecord, OutputChange
from migrate.spec import PipelineSpec

Applied = tuple[Sequence[OutputChange], Sequence[KafkaRecord]]


class _Wrapper:
    """Forwards to the reference transform; subclasses bend `apply`."""

    def __init__(self) -> None:
        self.inner = ShopOrdersTransform()

    def apply(self, event: ChangeEvent) -> Applied:
        return self.inner.apply(event)

    def restore(self, topic: str, key: str, value: Any, order: int | None) -> None:
        self.inner.restore(topic, key, value, order)


class DropDeletes(_Wrapper):
    """Deleted orders stay in the outputs: order deletes are ignored."""

    def apply(self, event: ChangeEvent) -> Applied:
        if event.table == "orders" and event.op == "d":
            return [], []
        return self.inner.apply(event)


class IgnoreCustomerChanges(_Wrapper):
    """A customer's name/tier change is kept in state but not applied to the customer's existing
    orders (new orders still see it)."""

    def apply(self, event: ChangeEvent) -> Applied:
        if event.table != "customers":
            return self.inner.apply(event)
        customer_id = int(event.key.get("id") or (event.after or event.before or {})["id"])
        existed = customer_id in self.inner.state.customers
        changes, records = self.inner.apply(event)
        if not existed:
            return changes, records
        return [], [r for r in records if r.topic == "state"]


class DoubleCountUpdates(_Wrapper):
    """Every order update adds the order's amount to its daily revenue once more."""

    def __init__(self) -> None:
        super().__init__()
        self.extra: defaultdict[tuple[int, date], Decimal] = defaultdict(Decimal)

    def apply(self, event: ChangeEvent) -> Applied:
        changes, records = self.inner.apply(event)
        if changes and event.table == "orders" and event.op == "u":
            order = self.inner.state.orders.get(int(event.key.get("order_id") or (event.after or {})["order_id"]))
            if order is not None and counts_for_revenue(order.status):
                self.extra[(order.customer_id, order.day)] += order.amount
        if not self.extra:
            return changes, records
        return [self._inflate(c) if c.output == "daily_revenue" else c for c in changes], records

    def _inflate(self, change: OutputChange) -> OutputChange:
        customer_id, day, count, revenue, *meta = change.row
        if revenue is None:  # the group's delete
            return change
        return OutputChange(
            change.output, (customer_id, day, count, revenue + self.extra.get((customer_id, day), 0), *meta)
        )


def _variant(name: str, transform: Callable[[], Any]) -> Pipeline:
    return replace(PIPELINE, name=f"{PIPELINE.name}+{name}", transform=transform)


IGNORE_CUSTOMER_CHANGES = _variant("ignore-customer-changes", IgnoreCustomerChanges)
DOUBLE_COUNT_UPDATES = _variant("double-count-updates", DoubleCountUpdates)
DROP_DELETES = _variant("drop-deletes", DropDeletes)

# name -> (what it breaks, its pipeline reference for stream.pipeline)
DEFECTS: dict[str, tuple[str, str]] = {
    "ignore-customer-changes": (
        "customer name/tier changes are not applied to existing orders",
        f"{__name__}:IGNORE_CUSTOMER_CHANGES",
    ),
    "double-count-updates": (
        "order updates add their amount to daily revenue again",
        f"{__name__}:DOUBLE_COUNT_UPDATES",
    ),
    "drop-deletes": ("deleted orders stay in the outputs", f"{__name__}:DROP_DELETES"),
}


def defect_spec(spec: PipelineSpec, defect: str) -> PipelineSpec:
    """A second streaming job running the defective pipeline with its own identity (group, topics,
    changelog), so a defect never touches the real outputs."""
    if defect not in DEFECTS:
        from migrate.errors import DualrunError

        raise DualrunError(f"unknown defect {defect!r}; choose one of {', '.join(DEFECTS)}")
    return spec.variant(defect, pipeline=DEFECTS[defect][1])
