"""PostgreSQL as the batch source, end to end on the real stack: the shop pipeline's batch SQL in a
REPEATABLE READ snapshot, Debezium's PostgreSQL connector from the spec, dualrun's reference job,
concurrent writers with interleaved transactions (some open across the snapshot), a clean dual run
and a seeded defect caught."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import yaml

from cdc.connect import ConnectClient
from cdc.visibility import transaction_topic, widen
from migrate import pgsource
from migrate.asof import reconcile_spec
from migrate.batch import load_run, run_batch
from migrate.connector import connector_settings, ensure_connector
from migrate.demo import defect_spec
from migrate.examples import shop_orders
from migrate.spec import PipelineSpec, SourceSpec
from migrate.stackconfig import StackConfig
from migrate.stream.status import read_status
from tests.integration.cdc.test_postgres import PgDatabase, drop_slot
from tests.integration.migrate.conftest import JobThread, pipeline_spec
from tests.integration.migrate.test_pipelines import assert_clean, causes, mismatched_columns

pytestmark = pytest.mark.integration

WRITERS = 4
CUSTOMERS = 20


def make_pg_pipeline(stack: StackConfig, pg: PgDatabase, state_dir: Path, name: str) -> PipelineSpec:
    """Its own schema (customers, orders like shop's), publication and connector; the example's SQL."""
    schema = f"src_{name}"
    pg.run(
        f"CREATE SCHEMA {schema}",
        f"CREATE TABLE {schema}.customers (LIKE shop.customers INCLUDING ALL)",
        f"CREATE TABLE {schema}.orders (LIKE shop.orders INCLUDING ALL)",
        f"ALTER TABLE {schema}.customers REPLICA IDENTITY FULL",
        f"ALTER TABLE {schema}.orders REPLICA IDENTITY FULL",
        f"CREATE PUBLICATION {schema} FOR TABLE {schema}.customers, {schema}.orders",
        f"GRANT USAGE ON SCHEMA {schema} TO {stack.debezium_user}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {stack.debezium_user}",
    )
    example = yaml.safe_load((Path(shop_orders.__file__).parent / "spec-postgres.yaml").read_text())
    source = SourceSpec(
        kind="postgres",
        url=f"postgresql+psycopg://{stack.db_user}@127.0.0.1:{stack.ports.postgres}/{stack.database}"
        f"?options=-csearch_path%3D{schema}",
        password_env="DUALRUN_DB_PASSWORD",
        default_password=stack.db_password,
    )  # fmt: skip
    assert example["source"]["kind"] == "postgres"  # the shipped variant runs the same SQL files
    return pipeline_spec(
        stack, state_dir, name, source, (f"{schema}.customers", f"{schema}.orders"), publication=schema
    )


@pytest.fixture
def pg(postgres_stack: StackConfig) -> PgDatabase:
    return PgDatabase(postgres_stack)


@pytest.fixture
def pg_pipeline(
    postgres_stack: StackConfig, pg: PgDatabase, tmp_path: Path, unique: Callable[[str], str]
) -> Iterator[PipelineSpec]:
    spec = make_pg_pipeline(postgres_stack, pg, tmp_path, unique("pgp"))
    seed(spec)
    ensure_connector(spec)
    yield spec
    ConnectClient(spec.cdc.connect_url).delete(spec.cdc.connector)
    drop_slot(pg, connector_settings(spec).pg_slot)


def connect(spec: PipelineSpec) -> psycopg.Connection:  # type: ignore[type-arg]
    from sqlalchemy.engine import make_url

    url = make_url(spec.source.url)
    return psycopg.connect(
        host=url.host, port=url.port, user=url.username, password=spec.source.password(), dbname=url.database,
        options=str(url.query["options"]),
    )  # fmt: skip


def seed(spec: PipelineSpec) -> None:
    rng = random.Random(5)
    with connect(spec) as conn:
        conn.cursor().executemany(
            "INSERT INTO customers (id, name, tier) VALUES (%s, %s, %s)",
            [(i, f"customer {i}", rng.choice(("STANDARD", "GOLD"))) for i in range(1, CUSTOMERS + 1)],
        )


class Writers:
    """Concurrent writers, each in its own multi-statement transactions over its own orders (so they
    interleave without deadlocks), pausing inside them; one more holds a transaction open for a
    second at a time, so the batch snapshot has transactions in progress that commit after it."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self.stop = threading.Event()
        self.committed = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._writer, args=(i,), daemon=True) for i in range(WRITERS)]
        self.threads.append(threading.Thread(target=self._long, daemon=True))
        self.errors: list[BaseException] = []

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        assert not self.errors, self.errors

    def wait_for(self, transactions: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.committed < transactions:
            assert time.monotonic() < deadline and not self.errors, (self.committed, self.errors)
            time.sleep(0.05)

    def _writer(self, index: int) -> None:
        rng = random.Random(index)
        mine: dict[int, Decimal] = {}
        next_id = 1
        try:
            with connect(self.spec) as conn:
                while not self.stop.is_set():
                    with conn.transaction():  # a row may change twice in one transaction
                        for _ in range(rng.randint(1, 3)):
                            self._op(conn, rng, index, mine, next_id)
                            next_id += 1
                            time.sleep(rng.random() * 0.02)
                    with self.lock:
                        self.committed += 1
        except BaseException as exc:  # surfaced by __exit__
            self.errors.append(exc)

    @staticmethod
    def _op(conn: psycopg.Connection, rng: random.Random, index: int, mine: dict[int, Decimal], serial: int) -> None:  # type: ignore[type-arg]
        roll = rng.random()
        if roll < 0.45 or not mine:
            order_id = serial * WRITERS + index
            amount = Decimal(rng.choice((rng.randint(100, 45_000), rng.randint(50_000, 99_999)))) / 100
            conn.execute(
                "INSERT INTO orders (order_id, customer_id, amount, status, created_at, updated_at) VALUES "
                "(%s, %s, %s, 'NEW', LOCALTIMESTAMP(3) - %s * INTERVAL '1 day', LOCALTIMESTAMP(3))",
                (order_id, rng.randint(1, CUSTOMERS), amount, rng.randint(0, 3)),
            )
            mine[order_id] = amount
        elif roll < 0.9:
            # Often the order this transaction just inserted or updated: two changes to one row.
            order_id = max(mine) if rng.random() < 0.3 else rng.choice(list(mine))
            amount = Decimal(rng.randint(100, 99_999)) / 100
            status = rng.choice(("PAID", "SHIPPED", "CANCELLED"))
            conn.execute("UPDATE orders SET amount = %s, status = %s WHERE order_id = %s", (amount, status, order_id))
            mine[order_id] = amount
        else:
            order_id = rng.choice(list(mine))
            conn.execute("DELETE FROM orders WHERE order_id = %s", (order_id,))
            del mine[order_id]

    def _long(self) -> None:
        rng = random.Random(99)
        try:
            with connect(self.spec) as conn:
                while not self.stop.is_set():
                    with conn.transaction():
                        customer = rng.randint(1, CUSTOMERS)
                        conn.execute(
                            "UPDATE customers SET name = %s, tier = %s WHERE id = %s",
                            (f"customer {customer} v{rng.randint(1, 10**6)}", rng.choice(("STANDARD", "GOLD")),
                             customer),
                        )  # fmt: skip
                        self.stop.wait(1.0)
        except BaseException as exc:
            self.errors.append(exc)


def test_a_dual_run_on_postgresql_is_clean_under_interleaved_writers_and_catches_a_seeded_defect(
    pg_pipeline: PipelineSpec,
) -> None:
    spec = pg_pipeline
    defective = defect_spec(spec, "double-count-updates")
    jobs = [JobThread(spec).start(), JobThread(defective).start()]
    try:
        with Writers(spec) as writers:
            writers.wait_for(150)
            run = run_batch(spec)
            writers.wait_for(writers.committed + 150)
        assert run.snapshot is not None
        result = reconcile_spec(spec, run.run_id)
        assert_clean(result)
        rows = {name: rec.left.rows for name, rec in result.outputs.items()}
        assert all(n > 0 for n in rows.values()), rows

        # The snapshot had transactions in progress that committed after it, ahead of others in
        # xid order: visibility, not xid or LSN order, decides what the batch saw.
        stored = load_run(spec.warehouse_path, run.run_id)
        assert stored.snapshot == run.snapshot
        cut = pgsource.resolve(spec, run.snapshot, int(run.started_at.timestamp() * 1000))
        assert cut.exact and cut.first_invisible is not None and cut.last_visible is not None
        assert result.run.position.major == cut.bound
        assert run.snapshot.xip, f"no transaction open across the snapshot {run.snapshot}"

        status = read_status(spec)
        assert status is not None and status.stalled_transactions == 0 and status.dead_letters == 0
        print(
            f"\nsnapshot {run.snapshot} ({len(run.snapshot.xip)} in progress), cut {cut.to_dict()}, "
            f"{writers.committed} writer transactions, rows {rows}"
        )

        defect = reconcile_spec(defective, run.run_id).outputs
        revenue = defect["daily_revenue"]
        assert causes(revenue) == {"value_mismatch": revenue.mismatched_rows} and revenue.mismatched_rows > 0
        assert mismatched_columns(revenue) == {"revenue"}
        print(f"defect double-count-updates: daily_revenue {revenue.mismatched_rows} value mismatches")
        assert defect["orders_enriched"].verdict == defect["order_alerts"].verdict == "clean"
    finally:
        for job in jobs:
            job.stop()


def test_debezium_txid_is_the_32_bit_xid_and_sequence_carries_the_previous_commit(
    pg_pipeline: PipelineSpec,
) -> None:
    """Pins `cdc.visibility`'s evidence: txId = pg_current_xact_id() mod 2**32 (= the xid8 at epoch
    0, widened back exactly), END ids are `txId:commitLsn`, and the next transaction's changes carry
    that commit LSN in `source.sequence`; an interleaved older transaction committing later comes later."""
    from confluent_kafka import Consumer

    spec = pg_pipeline
    with connect(spec) as first, connect(spec) as second:
        first.execute("INSERT INTO orders (order_id, customer_id, amount, status) VALUES (1, 1, 1.00, 'NEW')")
        older = int(first.execute("SELECT pg_current_xact_id()::text").fetchone()[0])  # type: ignore[index]
        second.execute("INSERT INTO orders (order_id, customer_id, amount, status) VALUES (2, 1, 2.00, 'NEW')")
        younger = int(second.execute("SELECT pg_current_xact_id()::text").fetchone()[0])  # type: ignore[index]
        epoch = int(second.execute("SELECT pg_current_xact_id()::text::numeric / 4294967296")  # type: ignore[index]
                    .fetchone()[0])  # fmt: skip
        second.commit()
        first.commit()
    assert older < younger
    consumer = Consumer({"bootstrap.servers": spec.kafka.bootstrap_servers, "group.id": f"pin-{time.time_ns()}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([transaction_topic(spec.cdc.topic_prefix), spec.cdc.topic(f"src_{spec.name}.orders")])
    ends: list[tuple[int, int]] = []
    changes: list[dict] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    import json

    while (len(ends) < 2 or len(changes) < 2) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() or msg.value() is None:
            continue
        payload = json.loads(msg.value())
        payload = payload.get("payload", payload)
        if payload.get("status") == "END":
            txid, lsn = payload["id"].split(":")
            ends.append((int(txid), int(lsn)))
        elif "source" in payload:
            changes.append(payload["source"])
    consumer.close()
    assert [t for t, _ in ends] == [younger % 2**32, older % 2**32]  # commit order, not xid order
    assert all(widen(t, younger + 1) == x for (t, _), x in zip(ends, (younger, older), strict=True))
    assert epoch == 0  # the stack's fresh cluster; widen's epoch arithmetic is unit-tested
    by_tx = {int(s["txId"]): s for s in changes}
    assert json.loads(by_tx[older % 2**32]["sequence"])[0] == str(ends[0][1])  # the younger's commit LSN


def test_a_batch_on_a_quiet_postgresql_is_placed_once_debezium_passes_its_wal_position(
    pg_pipeline: PipelineSpec,
) -> None:
    """No transaction after the snapshot: only Debezium's committed offset can say every visible
    transaction is in; the cut then ends at the last one and the run is clean."""
    spec = pg_pipeline
    job = JobThread(spec).start()
    try:
        with Writers(spec) as writers:
            writers.wait_for(60)
        run = run_batch(spec)
        assert run.snapshot is not None and not run.snapshot.xip
        result = reconcile_spec(spec, run.run_id, wait=60)
        assert_clean(result)
        cut = pgsource.resolve(spec, run.snapshot, int(run.started_at.timestamp() * 1000))
        assert cut.exact and cut.first_invisible is None and cut.last_visible is not None
    finally:
        job.stop()


def test_rollback_ready_opens_a_postgresql_snapshot_and_rechecks_of_one_batch_run_count_once(
    pg_pipeline: PipelineSpec,
) -> None:
    """rollback_ready reads a PostgreSQL source through the one snapshot loop (`migrate.snapshot`),
    not MariaDB's statement; reconciling one batch run again never lengthens the parity streak."""
    from comparators import history
    from migrate.checklist import Context
    from migrate.checklist.rollback import rollback_ready

    spec = pg_pipeline
    job = JobThread(spec).start()
    try:
        with Writers(spec) as writers:
            writers.wait_for(30)
        run = run_batch(spec)
        for _ in range(2):  # the same batch run reconciled twice
            assert_clean(reconcile_spec(spec, run.run_id, wait=60))
        name = f"{spec.name}/orders_enriched"
        assert [c.batch_run for c in history.runs(spec.history_path, name)] == [run.run_id] * 2
        assert history.parity_streak(spec.history_path, name) == 1
        result = rollback_ready(Context(spec))
        assert result.status == "pass", result.evidence
        assert f"({len(spec.outputs)} batch queries prepared)" in result.evidence
        assert result.evidence.startswith("batch snapshot at lsn "), result.evidence
        assert f"last batch run {run.run_id}" in result.evidence
    finally:
        job.stop()
    # A query PostgreSQL cannot plan: the batch job cannot run, said in PostgreSQL's words.
    alerts = spec.outputs["order_alerts"].model_dump(by_alias=True)
    alerts["batch"] = {"sql": "SELECT no_such_column FROM orders"}
    broken = spec.with_changes(outputs={"order_alerts": alerts})
    result = rollback_ready(Context(broken))
    assert result.status == "fail" and "the batch job cannot run" in result.evidence, result.evidence
    assert "no_such_column" in result.evidence, result.evidence
