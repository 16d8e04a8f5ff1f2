"""The workload generator: a deterministic stream of order and customer changes on the source.

Used by `dualrun demo` and the benchmarks. Every operation is one autocommitted
statement, so each becomes exactly one binlog transaction and one Debezium event
(plus a tombstone for deletes). The sequence of operations is planned by a pure,
seeded model (`Planner`) that mirrors the rows it has created, updated and
deleted; the `Workload` only executes the plan. Same seed and same starting
tables give the same statements, which makes demo failures reproducible.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from migrate.examples.shop_orders.rules import ALERT_ABOVE, CANCELLED, GOLD_ABOVE, SILVER_ABOVE

OPS = ("insert", "update", "delete", "cancel", "customer_change")
TIERS = ("GOLD", "SILVER", "BRONZE")
# Forward-only order lifecycle; CANCELLED is reached only through the 'cancel' op.
NEXT_STATUS = {"NEW": "PAID", "PAID": "SHIPPED", "SHIPPED": "SHIPPED", CANCELLED: CANCELLED}
CENT = Decimal("0.01")
# Amount bands split at the business thresholds: updates jump to another band, so
# loyalty tier and alert membership change often, which is what parity must survive.
BANDS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("0.99"), SILVER_ABOVE),
    (SILVER_ABOVE, GOLD_ABOVE),
    (GOLD_ABOVE, ALERT_ABOVE),
    (ALERT_ABOVE, Decimal("2500.00")),
)
# Exactly-on-threshold amounts catch '>' vs '>=' mistakes on either side.
EDGES = tuple(t + d for t in (SILVER_ABOVE, GOLD_ABOVE, ALERT_ABOVE) for d in (Decimal("0.00"), CENT))
EDGE_SHARE = 0.03
HISTORY_DAYS = 4  # created_at spreads over today and the previous days: several daily aggregates
FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie", "Niklaus",
         "Margaret", "John", "Katherine", "Dennis", "Sophie")  # fmt: skip
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
        "Lamport", "Wirth", "Hamilton", "Backus", "Johnson", "Ritchie", "Wilson")  # fmt: skip


@dataclass(frozen=True)
class WorkloadMix:
    """Relative weights of the operations (they need not sum to 1)."""

    insert: float = 0.55
    update: float = 0.25
    delete: float = 0.05
    cancel: float = 0.05
    customer_change: float = 0.10

    def __post_init__(self) -> None:
        weights = self.weights()
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"workload mix weights must be >= 0 with a positive sum, got {self}")

    def weights(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, op)) for op in OPS)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class WorkloadStats:
    """What a run applied: counts per operation, wall seconds and the achieved rate."""

    insert: int
    update: int
    delete: int
    cancel: int
    customer_change: int
    seconds: float
    target_rate: float | None = None
    stopped: bool = False  # True when the stop event ended the run early

    @property
    def events(self) -> int:
        return self.insert + self.update + self.delete + self.cancel + self.customer_change

    @property
    def rate(self) -> float:
        """Operations per second actually achieved."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "events": self.events, "rate": round(self.rate, 1), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Op:
    """One planned statement. `order_id`/`customer_id` name the row it touches."""

    kind: str
    order_id: int | None = None
    customer_id: int | None = None
    amount: Decimal | None = None
    status: str | None = None
    name: str | None = None
    tier: str | None = None
    age_ms: int | None = None  # insert: how long before now the order was created

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def params(self) -> dict[str, Any]:
        """Bind parameters of this op's statement."""
        return {k: v for k, v in self.to_dict().items() if k != "kind"}


class LiveSet:
    """Ids with O(1) add, remove and seeded uniform choice (swap-remove keeps it dense)."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self.items: list[int] = sorted(ids)
        self.index = {v: i for i, v in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, value: int) -> None:
        if value not in self.index:
            self.index[value] = len(self.items)
            self.items.append(value)

    def remove(self, value: int) -> None:
        i = self.index.pop(value)
        last = self.items.pop()
        if last != value:
            self.items[i] = last
            self.index[last] = i

    def choice(self, rng: random.Random) -> int:
        return self.items[rng.randrange(len(self.items))]


def amount(rng: random.Random, high_value_share: float) -> Decimal:
    """An order amount: `high_value_share` above the alert threshold, the rest spread over the tiers."""
    if rng.random() < EDGE_SHARE:
        return rng.choice(EDGES)
    if rng.random() < high_value_share:
        return band_amount(rng, BANDS[-1])
    return band_amount(rng, BANDS[rng.randrange(len(BANDS) - 1)])


def band_amount(rng: random.Random, band: tuple[Decimal, Decimal]) -> Decimal:
    """A whole-cent amount in (low, high]: bands are open below like the rules' `amount > threshold`."""
    low, high = (int(x * 100) for x in band)
    return (Decimal(rng.randrange(low + 1, high + 1)) * CENT).quantize(CENT)


def band_of(value: Decimal) -> int:
    """Which band an amount is in; two amounts in different bands differ in loyalty tier or alert."""
    return next((i for i, (_, high) in enumerate(BANDS) if value <= high), len(BANDS) - 1)


def customer_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


class Planner:
    """The seeded model of the source tables that decides every next operation.

    It needs no database: it starts from the rows that exist (customers with name
    and tier, orders with amount and status, the next free order id) and updates
    its mirror as it plans, so deletes and updates always hit existing rows.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        customers: dict[int, tuple[str, str]],
        orders: dict[int, tuple[Decimal, str]],
        next_order_id: int,
        mix: WorkloadMix = WorkloadMix(),
        high_value_share: float = 0.1,
    ) -> None:
        if not customers:
            raise ValueError("the workload needs customers; call Workload.seed() first")
        self.rng = rng
        self.customers = dict(customers)
        self.customer_ids = sorted(customers)
        self.orders = dict(orders)
        self.live = LiveSet(orders)
        self.open = LiveSet(k for k, (_, s) in orders.items() if s != CANCELLED)
        self.next_order_id = next_order_id
        self.weights = mix.weights()
        self.high_value_share = high_value_share

    def next(self) -> Op:
        kind = self.rng.choices(OPS, self.weights)[0]
        # Nothing to touch yet (an empty table): create something instead, deterministically.
        if (kind in ("update", "delete") and not self.live) or (kind == "cancel" and not self.open):
            kind = "insert"
        planned: Op = getattr(self, f"_{kind}")()
        return planned

    def _insert(self) -> Op:
        order_id = self.next_order_id
        self.next_order_id += 1
        value = amount(self.rng, self.high_value_share)
        age_ms = self.rng.randrange(HISTORY_DAYS * 86_400_000)
        customer_id = self.rng.choice(self.customer_ids)
        self.orders[order_id] = (value, "NEW")
        self.live.add(order_id)
        self.open.add(order_id)
        return Op("insert", order_id=order_id, customer_id=customer_id, amount=value, status="NEW", age_ms=age_ms)

    def _update(self) -> Op:
        order_id = self.live.choice(self.rng)
        old, status = self.orders[order_id]
        # Always into another band: the update moves the order across a tier or alert threshold.
        bands = [i for i in range(len(BANDS)) if i != band_of(old)]
        weights = [self.high_value_share * 3 if i == len(BANDS) - 1 else 1.0 for i in bands]
        value = band_amount(self.rng, BANDS[self.rng.choices(bands, weights)[0]])
        status = NEXT_STATUS[status]
        self.orders[order_id] = (value, status)
        return Op("update", order_id=order_id, amount=value, status=status)

    def _delete(self) -> Op:
        order_id = self.live.choice(self.rng)
        del self.orders[order_id]
        self.live.remove(order_id)
        if order_id in self.open.index:
            self.open.remove(order_id)
        return Op("delete", order_id=order_id)

    def _cancel(self) -> Op:
        order_id = self.open.choice(self.rng)
        self.orders[order_id] = (self.orders[order_id][0], CANCELLED)
        self.open.remove(order_id)
        return Op("cancel", order_id=order_id, status=CANCELLED)

    def _customer_change(self) -> Op:
        customer_id = self.rng.choice(self.customer_ids)
        name, tier = self.customers[customer_id]
        what = self.rng.choice(("name", "tier", "both"))
        if what in ("name", "both"):
            # A different name for sure: an UPDATE that changes nothing writes no binlog row event.
            old, name = name, customer_name(self.rng)
            while name == old:
                name = customer_name(self.rng)
        if what in ("tier", "both"):
            tier = self.rng.choice([t for t in TIERS if t != tier])
        self.customers[customer_id] = (name, tier)
        return Op("customer_change", customer_id=customer_id, name=name, tier=tier)


SQL = {
    "insert": "INSERT INTO orders (order_id, customer_id, amount, status, created_at) "
    "VALUES (:order_id, :customer_id, :amount, :status, NOW(3) - INTERVAL :age_ms * 1000 MICROSECOND)",
    "update": "UPDATE orders SET amount = :amount, status = :status WHERE order_id = :order_id",
    "delete": "DELETE FROM orders WHERE order_id = :order_id",
    "cancel": "UPDATE orders SET status = :status WHERE order_id = :order_id",
    "customer_change": "UPDATE customers SET name = :name, tier = :tier WHERE id = :customer_id",
}


class Workload:
    """Executes a seeded plan of inserts, updates, deletes, cancels and customer changes.

    It assumes it is the only writer of the two tables while it runs: it picks new order
    ids itself (after the highest existing one) and knows which rows exist from its mirror.
    Each `run()` reloads that mirror from the tables, so runs may be interleaved with other
    writes as long as they do not overlap in time.
    """

    def __init__(
        self,
        url: str,
        password: str,
        *,
        database: str = "shop",
        seed: int = 7,
        customers: int = 50,
        mix: WorkloadMix = WorkloadMix(),
        high_value_share: float = 0.1,
    ) -> None:
        if customers < 1:
            raise ValueError("the workload needs at least one customer")
        if not 0 <= high_value_share <= 1:
            raise ValueError("high_value_share must be between 0 and 1")
        self.url = make_url(url).set(database=database)
        self.database = database
        self.seed_value = seed
        self.customers = customers
        self.mix = mix
        self.high_value_share = high_value_share
        # One random stream per Workload: consecutive runs continue the sequence.
        self.rng = random.Random(seed)
        # AUTOCOMMIT: each statement is its own transaction, one binlog event group per op,
        # without the extra BEGIN/COMMIT round trips that would cap the rate.
        self.engine: Engine = sa.create_engine(
            self.url.set(password=password), isolation_level="AUTOCOMMIT", pool_pre_ping=True
        )

    def seed(self, orders: int = 0) -> None:
        """Create customers 1..N if missing and top the orders table up to `orders` rows. Idempotent."""
        rng = random.Random(f"seed-{self.seed_value}")
        rows = [{"id": i, "name": customer_name(rng), "tier": rng.choice(TIERS)} for i in range(1, self.customers + 1)]
        with self.engine.connect() as conn:
            conn.execute(sa.text("INSERT IGNORE INTO customers (id, name, tier) VALUES (:id, :name, :tier)"), rows)
            have = conn.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar_one()
            missing = orders - int(have)
            if missing <= 0:
                return
            # Seeding is setup, not workload: batched multi-row inserts keep it fast.
            new = [
                {"customer_id": rng.randint(1, self.customers), "amount": amount(rng, self.high_value_share),
                 "status": rng.choice(("NEW", "PAID", "SHIPPED")), "age_ms": rng.randrange(HISTORY_DAYS * 86_400_000)}
                for _ in range(missing)
            ]  # fmt: skip
            insert = sa.text(
                "INSERT INTO orders (customer_id, amount, status, created_at) "
                "VALUES (:customer_id, :amount, :status, NOW(3) - INTERVAL :age_ms * 1000 MICROSECOND)"
            )
            for start in range(0, len(new), 1000):
                conn.execute(insert, new[start : start + 1000])

    def planner(self, conn: Connection) -> Planner:
        """A planner starting from the tables as they are now."""
        rows = conn.execute(sa.text("SELECT id, name, tier FROM customers"))
        customers = {int(i): (str(n), str(t)) for i, n, t in rows}
        rows = conn.execute(sa.text("SELECT order_id, amount, status FROM orders"))
        orders = {int(i): (Decimal(a), str(s)) for i, a, s in rows}
        top = conn.execute(sa.text("SELECT COALESCE(MAX(order_id), 0) FROM orders")).scalar_one()
        return Planner(self.rng, customers=customers, orders=orders, next_order_id=int(top) + 1, mix=self.mix,
                       high_value_share=self.high_value_share)  # fmt: skip

    def run(
        self,
        *,
        events: int,
        rate: float | None = None,
        progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> WorkloadStats:
        """Apply `events` operations, paced at `rate` per second (None: as fast as possible)."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (or None for as fast as possible)")
        counts = dict.fromkeys(OPS, 0)
        statements = {kind: sa.text(sql) for kind, sql in SQL.items()}
        stopped = False
        with self.engine.connect() as conn:
            plan = self.planner(conn)
            started = time.monotonic()
            for done in range(events):
                if stop is not None and stop.is_set():
                    stopped = True
                    break
                if rate is not None:
                    # Pace against the schedule, not the previous op, so short stalls are caught up.
                    delay = started + done / rate - time.monotonic()
                    if delay > 0:
                        if stop is not None:
                            if stop.wait(delay):
                                stopped = True
                                break
                        else:
                            time.sleep(delay)
                op = plan.next()
                conn.execute(statements[op.kind], op.params())
                counts[op.kind] += 1
                if progress is not None:
                    progress(done + 1)
            seconds = time.monotonic() - started
        return WorkloadStats(**counts, seconds=seconds, target_rate=rate, stopped=stopped)

    def close(self) -> None:
        self.engine.dispose()
