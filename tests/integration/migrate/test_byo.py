"""Bring your own pipeline: a pipeline that is not the shop one, end to end through the CLI.

Its own MariaDB database and table (ledger transfers), its own batch SQL (balances per account)
and a small streaming job written here (confluent-kafka, transactional, copies the `dbz.source`
header from input to output) that no dualrun code runs. `dualrun cdc register --spec`,
`dualrun run batch --spec` and `dualrun reconcile --spec` run as subprocesses; no dualrun process
runs beside the job. A second copy of the job, with deletes dropped, is a seeded defect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from cdc.envelope import ChangeEvent, decode
from cdc.topics import TopicAdmin, quiet_logger
from migrate.stackconfig import StackConfig
from migrate.stream.tap import segment_files
from tests.integration.conftest import ROOT, Database

pytestmark = pytest.mark.integration


class BalanceJob(threading.Thread):
    """The user's streaming job: balance per account from the transfers' change events, exactly once."""

    def __init__(
        self, bootstrap: str, group: str, source: str, output: str, *, drop_deletes: bool = False, copy: bool = True
    ) -> None:
        super().__init__(name=group, daemon=True)
        self.bootstrap, self.group, self.source, self.output = bootstrap, group, source, output
        self.drop_deletes = drop_deletes
        self.copy = copy  # False: the job forgets to copy the position header
        self.halt = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.failure = exc

    def _run(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": self.group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "isolation.level": "read_committed", "topic.metadata.refresh.interval.ms": 500,
        }, logger=quiet_logger())  # fmt: skip
        producer = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": f"{self.group}-tx"},
                            logger=quiet_logger())  # fmt: skip
        producer.init_transactions(30)
        consumer.subscribe([self.source])
        balances: dict[int, Decimal] = {}
        counts: dict[int, int] = {}
        try:
            while not self.halt.is_set():
                messages = [m for m in consumer.consume(500, timeout=0.2) if m.error() is None]
                if not messages:
                    continue
                producer.begin_transaction()
                for msg in messages:
                    event = decode(msg.topic(), msg.key(), msg.value())  # type: ignore[arg-type]
                    if not isinstance(event, ChangeEvent):
                        continue  # Debezium's tombstone after a delete
                    header = [(k, v) for k, v in msg.headers() or [] if k == "dbz.source" and self.copy]
                    touched = set()
                    if event.before is not None and not (self.drop_deletes and event.op == "d"):
                        account = event.before["account_id"]
                        balances[account] -= event.before["amount"]
                        counts[account] -= 1
                        touched.add(account)
                    if event.after is not None:
                        account = event.after["account_id"]
                        balances[account] = balances.get(account, Decimal(0)) + event.after["amount"]
                        counts[account] = counts.get(account, 0) + 1
                        touched.add(account)
                    for account in touched:
                        value = None if counts[account] == 0 else orjson.dumps(
                            {"account_id": account, "balance": str(balances[account])})  # fmt: skip
                        producer.produce(self.output, key=orjson.dumps({"account_id": account}), value=value,
                                         headers=header)  # fmt: skip
                producer.send_offsets_to_transaction(
                    consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
                )
                producer.commit_transaction(30)
        finally:
            consumer.close()


def _commit(stack: StackConfig, group: str, offsets: list[tuple[str, int, int]]) -> None:
    consumer = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": group}, logger=quiet_logger())
    try:
        consumer.commit(offsets=[TopicPartition(t, p, o) for t, p, o in offsets], asynchronous=False)
    finally:
        consumer.close()


def _dualrun(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrate.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)  # fmt: skip


def _spec(stack: StackConfig, state: Path, database: str, name: str, group: str, topic: str, server_id: int) -> Path:
    spec = {
        "name": name,
        "state_dir": str(state),
        "source": {"kind": "mariadb", "url": f"mysql+pymysql://{stack.db_user}@127.0.0.1:{stack.ports.mariadb}/{database}",
                   "password_env": "LEDGER_DB_PASSWORD"},
        "cdc": {"connect_url": stack.connect_url, "connector": name, "topic_prefix": name,
                "tables": [f"{database}.transfers"], "user": stack.debezium_user,
                "password_env": "LEDGER_DEBEZIUM_PASSWORD", "server_id": server_id},
        "kafka": {"bootstrap_servers": stack.bootstrap_servers},
        "stream": {"group": group},
        "outputs": {"account_balance": {
            "keys": ["account_id"],
            "batch": {"sql": "SELECT account_id, SUM(amount) AS balance FROM transfers GROUP BY account_id",
                      "columns": {"balance": "DECIMAL(18,2)"}},
            "stream": {"topic": topic},
            "tolerances": {"balance": "exact"},
        }},
        "compare": {"wait_seconds": 90},
    }  # fmt: skip
    path = state / "ledger.yaml"
    state.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def jobs() -> Iterator[list[BalanceJob]]:
    started: list[BalanceJob] = []
    yield started
    for job in started:
        job.halt.set()
    for job in started:
        job.join(30)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_a_users_own_pipeline_reconciles_clean_and_a_seeded_defect_is_caught(
    stack: StackConfig, db: Database, tmp_path: Path, jobs: list[BalanceJob]
) -> None:
    uid = uuid.uuid4().hex[:8]
    database = f"ledger_{uid}"
    db.run(
        f"CREATE DATABASE `{database}`",
        f"CREATE TABLE `{database}`.transfers (id INT PRIMARY KEY, account_id INT NOT NULL, "
        "amount DECIMAL(12,2) NOT NULL)",
        f"INSERT INTO `{database}`.transfers VALUES (1, 1, 100.10), (2, 1, 0.05), (3, 2, 12.50), (4, 2, 7.25), "
        "(5, 3, 99.99), (6, 3, 1.01)",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEDGER_DB_PASSWORD": stack.db_password,
           "LEDGER_DEBEZIUM_PASSWORD": stack.debezium_password}  # fmt: skip
    name = f"ledger-{uid}"
    server_id = 400000 + uuid.uuid4().int % 100000
    clean = _spec(stack, tmp_path / "clean", database, name, f"balance-job-{uid}", f"account-balance-{uid}", server_id)
    defect = _spec(stack, tmp_path / "defect", database, name, f"balance-drop-deletes-{uid}",
                   f"account-balance-drop-deletes-{uid}", server_id)  # fmt: skip
    bare = _spec(stack, tmp_path / "bare", database, name, f"balance-no-header-{uid}",
                 f"account-balance-no-header-{uid}", server_id)  # fmt: skip
    admin = TopicAdmin(stack.bootstrap_servers)
    for topic in (f"account-balance-{uid}", f"account-balance-drop-deletes-{uid}", f"account-balance-no-header-{uid}"):
        admin.create(topic, partitions=2)

    registered = _dualrun("cdc", "register", "--spec", str(clean), env=env)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert "HeaderFrom" in registered.stdout and "RUNNING" in registered.stdout
    changes = f"{name}.{database}.transfers"
    _wait(lambda: admin.exists(changes), f"Debezium to create {changes}")
    jobs.append(BalanceJob(stack.bootstrap_servers, f"balance-job-{uid}", changes, f"account-balance-{uid}"))
    jobs.append(BalanceJob(stack.bootstrap_servers, f"balance-drop-deletes-{uid}", changes,
                           f"account-balance-drop-deletes-{uid}", drop_deletes=True))  # fmt: skip
    jobs.append(BalanceJob(stack.bootstrap_servers, f"balance-no-header-{uid}", changes,
                           f"account-balance-no-header-{uid}", copy=False))  # fmt: skip
    for job in jobs:
        job.start()

    # Changes before the batch reads: an update, a delete (account 1 keeps a transfer), a new account.
    # Account 5 comes and goes: its delete (a tombstone on the output) must hide it as of the batch.
    db.run(f"UPDATE `{database}`.transfers SET amount = 13.75 WHERE id = 3",
           f"DELETE FROM `{database}`.transfers WHERE id = 2",
           f"INSERT INTO `{database}`.transfers VALUES (7, 4, 5.00), (9, 5, 3.00)",
           f"DELETE FROM `{database}`.transfers WHERE id = 9")  # fmt: skip
    for spec in (clean, defect, bare):
        batch = _dualrun("run", "batch", "--spec", str(spec), env=env)
        assert batch.returncode == 0, batch.stdout + batch.stderr
    # Changes after the batch position: the stream has them, the as-of comparison must not count them.
    db.run(f"INSERT INTO `{database}`.transfers VALUES (8, 1, 1000.00)",
           f"DELETE FROM `{database}`.transfers WHERE id = 4",
           f"UPDATE `{database}`.transfers SET amount = 0.01 WHERE id = 5",
           f"DELETE FROM `{database}`.transfers WHERE id IN (6, 5)")  # account 3 empties: a tombstone  # fmt: skip

    ok = _dualrun("reconcile", "--spec", str(clean), "--format", "json", env=env)
    assert all(job.failure is None for job in jobs), [job.failure for job in jobs]
    assert ok.returncode == 0, ok.stdout + ok.stderr
    result: dict[str, Any] = json.loads(ok.stdout)
    assert result["verdict"] == "clean" and result["stream"]["reached"] is True
    balance = result["outputs"]["account_balance"]
    assert balance["verdict"] == "clean" and balance["left"]["rows"] == 4 and balance["right"]["rows"] == 4
    tap = result["checks"]["account_balance"]["tap"]
    assert tap["records"] > 0 and tap["without_position"] == 0 and tap["reordered_around"] == 0

    caught = _dualrun("reconcile", "--spec", str(defect), "--format", "json", env=env)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    wrong = json.loads(caught.stdout)
    assert wrong["verdict"] == "differences"
    causes = {k: v for k, v in wrong["outputs"]["account_balance"]["causes"].items() if v}
    # Account 1 still counts the deleted 0.05; account 5 never got its tombstone.
    assert causes == {"value_mismatch": 1, "missing_in_batch": 1}, causes

    # A job that drops the header: no positions, neither clean nor a defect, with the evidence.
    unplaced = _dualrun("reconcile", "--spec", str(bare), "--format", "json", env=env)
    assert unplaced.returncode == 1, unplaced.stdout + unplaced.stderr
    blind = json.loads(unplaced.stdout)
    assert blind["verdict"] == "no_positions" and blind["outputs"] == {}
    check = blind["checks"]["account_balance"]
    assert check["cause"] == "no_positions" and check["tap"]["without_position"] == check["tap"]["records"] > 0
    assert check["tap"]["without_position_samples"][0]["offsets"]
    text = _dualrun("reconcile", "--spec", str(bare), env=env).stdout
    assert "NO_POSITIONS" in text and "carry no position header ('dbz.source')" in text

    # A job that stopped early (its group committed only the first change): "stream behind" with the
    # lag, after the bounded wait, never a defect.
    idle = _spec(stack, tmp_path / "idle", database, name, f"balance-idle-{uid}", f"account-balance-{uid}", server_id)
    _commit(stack, f"balance-idle-{uid}", [(changes, 0, 1)])
    assert _dualrun("run", "batch", "--spec", str(idle), env=env).returncode == 0
    behind = _dualrun("reconcile", "--spec", str(idle), "--wait", "2", "--format", "json", env=env)
    assert behind.returncode == 1, behind.stdout + behind.stderr
    late = json.loads(behind.stdout)
    assert late["verdict"] == "stream_behind" and late["outputs"] == {} and late["stream"]["lag"] > 0

    # The checklist reads the user's job through its group and the tap; the header checks pass here.
    checks = ("events_fresh", "exactly_once", "outputs_carry_positions", "positions_monotone", "data_quality")
    listed = _dualrun("checklist", "--spec", str(clean), "--format", "json",
                      *[a for c in checks for a in ("--check", c)], env=env)  # fmt: skip
    statuses = {c["name"]: c["status"] for c in json.loads(listed.stdout)["checks"]}
    assert statuses == {"events_fresh": "pass", "exactly_once": "warn", "outputs_carry_positions": "pass",
                        "positions_monotone": "pass", "data_quality": "pass"}, listed.stdout  # fmt: skip
    missing = _dualrun("checklist", "--spec", str(bare), "--format", "json", "--check", "outputs_carry_positions",
                       env=env)  # fmt: skip
    assert json.loads(missing.stdout)["checks"][0]["status"] == "fail", missing.stdout

    # A second reconcile of the clean spec reads only what is new: no record twice in the tap.
    again = _dualrun("reconcile", "--spec", str(clean), "--format", "json", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    root = tmp_path / "clean" / "tap" / f"balance-job-{uid}" / "account_balance"
    with duckdb.connect() as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (__kafka_partition, __kafka_offset)) FROM read_parquet(?)",
            [[str(p) for p in segment_files(root)]],
        ).fetchone() or (0, 0)
    second = json.loads(again.stdout)["checks"]["account_balance"]
    assert total == distinct == second["tap"]["records"] > 0
    assert second["records_read"] < second["tap"]["records"]  # only what the job wrote since
