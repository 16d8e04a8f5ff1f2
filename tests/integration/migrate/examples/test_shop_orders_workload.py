"""The workload generator against the real MariaDB, each test in its own database."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from migrate.examples.shop_orders.rules import ALERT_ABOVE, CANCELLED
from migrate.examples.shop_orders.workload import Planner, Workload
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database

pytestmark = pytest.mark.integration


@pytest.fixture
def source(db: Database, unique: Callable[[str], str]) -> Iterator[str]:
    """A fresh database with the reference tables, dropped afterwards."""
    name = unique("workload")
    db.run(f"CREATE DATABASE `{name}`", f"CREATE TABLE `{name}`.customers LIKE shop.customers",
           f"CREATE TABLE `{name}`.orders LIKE shop.orders")  # fmt: skip
    yield name
    db.run(f"DROP DATABASE IF EXISTS `{name}`")


def workload(stack: StackConfig, database: str, **kwargs: object) -> Workload:
    url = f"mysql+pymysql://{stack.db_user}@127.0.0.1:{stack.ports.mariadb}/{database}"
    return Workload(url, stack.db_password, database=database, **kwargs)  # type: ignore[arg-type]


def tables(db: Database, database: str) -> tuple[dict[int, tuple[Decimal, str]], dict[int, tuple[str, str]]]:
    orders = {int(i): (a, s) for i, a, s in db.run(f"SELECT order_id, amount, status FROM `{database}`.orders")}
    customers = {int(i): (n, t) for i, n, t in db.run(f"SELECT id, name, tier FROM `{database}`.customers")}
    return orders, customers


def test_seed_is_idempotent(stack: StackConfig, db: Database, source: str) -> None:
    w = workload(stack, source, customers=30)
    w.seed(orders=100)
    first = tables(db, source)
    w.seed(orders=100)
    assert tables(db, source) == first
    assert len(first[0]) == 100 and sorted(first[1]) == list(range(1, 31))
    w.seed(orders=150)  # tops up, never duplicates
    assert db.run(f"SELECT COUNT(*) FROM `{source}`.orders") == [(150,)]
    w.close()


def test_run_applies_exactly_the_planned_operations(stack: StackConfig, db: Database, source: str) -> None:
    w = workload(stack, source, seed=21, customers=20)
    w.seed(orders=40)
    orders, customers = tables(db, source)
    seen: list[int] = []
    stats = w.run(events=600, progress=seen.append)
    w.close()

    assert stats.events == 600 and not stats.stopped and seen == list(range(1, 601))
    assert min(stats.insert, stats.update, stats.delete, stats.cancel, stats.customer_change) > 0
    after, customers_after = tables(db, source)
    assert len(after) == 40 + stats.insert - stats.delete
    # Replaying the same seed on the starting rows predicts every row the database now holds.
    replay = Planner(random.Random(21), customers=customers, orders=orders, next_order_id=max(orders) + 1)
    for _ in range(600):
        replay.next()
    assert after == replay.orders and customers_after == replay.customers
    assert any(a > ALERT_ABOVE for a, _ in after.values()) and any(s == CANCELLED for _, s in after.values())
    days = db.run(f"SELECT COUNT(DISTINCT DATE(created_at)) FROM `{source}`.orders")[0][0]
    assert days >= 3  # daily aggregates get several days


def test_rate_paces_and_stop_ends_the_run(stack: StackConfig, db: Database, source: str) -> None:
    w = workload(stack, source, customers=5)
    w.seed()
    paced = w.run(events=100, rate=200)
    assert paced.seconds >= 99 / 200 and paced.events == 100  # the 100th op is due at 0.495 s
    assert paced.target_rate == 200 and paced.rate <= 205

    stop = threading.Event()

    def halt_at_50(done: int) -> None:
        if done == 50:
            stop.set()

    stopped = w.run(events=10_000, rate=1000, progress=halt_at_50, stop=stop)
    w.close()
    assert stopped.stopped and stopped.events == 50
    count = db.run(f"SELECT COUNT(*) FROM `{source}`.orders")[0][0]
    assert count == paced.insert - paced.delete + stopped.insert - stopped.delete
