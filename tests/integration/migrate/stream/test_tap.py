"""The tap against a real topic: transactional writes (committed and aborted) read into the
changelog contract with read_committed, incrementally."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pytest
from confluent_kafka import Producer

from cdc.position import Position
from cdc.topics import TopicAdmin, quiet_logger
from migrate.stackconfig import StackConfig
from migrate.stream.findings import tap_report
from migrate.stream.tap import segment_files, tap_output

pytestmark = pytest.mark.integration


def _source(pos: int) -> bytes:
    return orjson.dumps({"connector": "mariadb", "file": "mysql-bin.000001", "pos": pos, "row": 0,
                         "gtid": f"0-1-{pos}", "ts_ms": 1, "snapshot": "false"})  # fmt: skip


def _producer(stack: StackConfig) -> Producer:
    producer = Producer(
        {"bootstrap.servers": stack.bootstrap_servers, "transactional.id": f"tap-test-{uuid.uuid4().hex[:8]}",
         "enable.idempotence": True},
        logger=quiet_logger(),
    )  # fmt: skip
    producer.init_transactions(30)
    return producer


def _transaction(producer: Producer, topic: str, records: list[tuple[int, str | None, int]], commit: bool) -> None:
    producer.begin_transaction()
    for account, balance, pos in records:
        value = None if balance is None else orjson.dumps({"account_id": account, "balance": balance})
        key = orjson.dumps({"account_id": account})
        producer.produce(topic, key=key, value=value, headers=[("dbz.source", _source(pos))], partition=account % 2)
    producer.flush(30)
    (producer.commit_transaction if commit else producer.abort_transaction)(30)


def _rows(root: Path) -> list[tuple[int, Decimal | None, str, int]]:
    files = [str(p) for p in segment_files(root)]
    with duckdb.connect() as con:
        return con.execute(
            "SELECT account_id, balance, __op, __kafka_offset FROM read_parquet(?, union_by_name = true) "
            "ORDER BY account_id, __kafka_offset", [files]
        ).fetchall()  # fmt: skip


def test_the_tap_reads_committed_records_only_and_each_record_once(
    stack: StackConfig, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    topic = unique("balances")
    TopicAdmin(stack.bootstrap_servers).create(topic, partitions=2)
    producer = _producer(stack)
    _transaction(producer, topic, [(1, "10.00", 100), (2, "5.5", 101)], commit=True)
    _transaction(producer, topic, [(1, "999.99", 102), (3, "1", 102)], commit=False)  # aborted: never seen
    _transaction(producer, topic, [(1, "12.50", 103)], commit=True)
    schema = pa.schema([("account_id", pa.int64()), ("balance", pa.decimal128(18, 2))])
    root = tmp_path / "tap" / "g" / "account_balance"

    first = tap_output(stack.bootstrap_servers, topic, root, ["account_id"], schema=schema)
    assert first.complete and first.records_read == 3 and first.undecodable == 0
    rows = _rows(root)
    assert [(a, b, op) for a, b, op, _ in rows] == [
        (1, Decimal("10.00"), "u"), (1, Decimal("12.50"), "u"), (2, Decimal("5.50"), "u")]  # fmt: skip

    again = tap_output(stack.bootstrap_servers, topic, root, ["account_id"], schema=schema)
    assert again.complete and again.records_read == 0  # nothing new: nothing re-read
    _transaction(producer, topic, [(2, None, 104), (4, "7", 105)], commit=True)  # a delete and a new key
    _transaction(producer, topic, [(4, "8", 106)], commit=False)
    third = tap_output(stack.bootstrap_servers, topic, root, ["account_id"], schema=schema)
    assert third.complete and third.records_read == 2
    rows = _rows(root)
    assert len(rows) == 5 and len({(a, o) for a, _, _, o in rows}) == 5  # each record exactly once
    assert [(a, b, op) for a, b, op, _ in rows if a in (2, 4)] == [
        (2, Decimal("5.50"), "u"), (2, None, "d"), (4, Decimal("7.00"), "u")]  # fmt: skip

    report = tap_report(root, ["account_id"], Position.binlog("mysql-bin.000001", 103).order_value)
    assert report.records == 5 and report.has_positions and report.monotone and report.reordered_around == 0
