"""External outputs: a sink table standing for the stream side, and the connector from a spec."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from cdc.position import Position
from comparators import ChangelogSource, FrameSource, reconcile
from migrate.batch import BatchRun
from migrate.connector import connector_settings
from migrate.external import check_output
from migrate.sides import InWriteOrder
from migrate.spec import PipelineSpec, parse_spec
from tests.unit.migrate.spec.test_load import LEDGER

P = Position.binlog_snapshot("mysql-bin.000002", 500)
BATCH = pa.table({"account_id": pa.array([1, 2], pa.int64()),
                  "balance": pa.array([Decimal("10.00"), Decimal("5.50")], pa.decimal128(18, 2))})  # fmt: skip


def _run() -> BatchRun:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return BatchRun("r1", now, now, P, {"account_balance": 2})


def _sink(tmp_path: Path, with_positions: bool) -> str:
    path = tmp_path / "sink.duckdb"
    with duckdb.connect(str(path)) as con:
        positions = ', "__op" VARCHAR, "__pos_order" BIGINT' if with_positions else ""
        con.execute(f"CREATE TABLE balances (account_id BIGINT, balance DECIMAL(18,2){positions})")
        if with_positions:
            before, after = Position.binlog("mysql-bin.000002", 400), Position.binlog("mysql-bin.000002", 900)
            con.execute(
                "INSERT INTO balances VALUES (1, 10.00, 'u', ?), (2, 5.50, 'u', ?), (2, 99.00, 'u', ?), "
                "(3, 1.00, 'u', ?)",
                [before.order_value, before.order_value, after.order_value, after.order_value],
            )
        else:
            con.execute("INSERT INTO balances VALUES (1, 10.00), (2, 5.50)")
    return f"duckdb:{path}?table=balances"


def _spec(table: str) -> PipelineSpec:
    raw = copy.deepcopy(LEDGER)
    raw["outputs"]["account_balance"]["stream"] = {"table": table}
    return parse_spec(raw, "test.yaml")


def test_a_sink_table_with_positions_is_read_as_of_the_batch_position(tmp_path: Path) -> None:
    check, stream, skip = check_output(_spec(_sink(tmp_path, True)), _run(), "account_balance", BATCH)
    assert check.cause is None and stream is not None and skip.num_rows == 0
    # Rows written after P (account 2 -> 99.00, account 3) are not part of the comparison.
    assert reconcile(FrameSource(BATCH), stream, ["account_id"]).verdict == "clean"


def test_a_sink_table_without_positions_is_not_compared(tmp_path: Path) -> None:
    check, stream, _ = check_output(_spec(_sink(tmp_path, False)), _run(), "account_balance", BATCH)
    assert stream is None and check.cause == "no_positions" and "no position columns" in check.detail


def test_the_connector_from_a_spec_carries_the_position_header_unless_opted_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGER_DEBEZIUM_PASSWORD", "pw")
    spec = parse_spec(copy.deepcopy(LEDGER), "test.yaml")
    settings = connector_settings(spec)
    config = settings.to_config()
    assert (settings.hostname, settings.port, settings.databases) == ("db", 3306, ("ledger",))
    assert config["table.include.list"] == "ledger.transfers" and config["topic.prefix"] == "ledger"
    assert config["transforms.dualrunPos.headers"] == "dbz.source"
    assert config["predicates.dualrunTableTopic.pattern"] == r"(ledger\.ledger\.transfers)"
    raw = copy.deepcopy(LEDGER)
    raw["cdc"]["position_header"] = None
    assert "transforms" not in connector_settings(parse_spec(raw, "test.yaml")).to_config()


# A join took a customer change (pos 130) before an order change MariaDB committed earlier (pos 120): the
# version at 130 lacks the order change (a state that never existed), the one written after it has both.
WRITTEN = pa.table({
    "order_id": [1, 1, 1],
    "amount": ["10.00", "10.00", "12.00"],
    "customer_name": ["Ada", "Ada L.", "Ada L."],
    "__op": ["u", "u", "u"],
    "__pos_file": ["bin.000001"] * 3,
    "__pos_offset": [100, 130, 120],
    "__pos_order": [100, 130, 120],
    "__kafka_partition": [0, 0, 0],
    "__kafka_offset": [0, 1, 2],
    "__processed_at": pa.array([1, 2, 3], pa.int64()).cast(pa.timestamp("us")),
})  # fmt: skip


def as_of(position: int, ordered: bool) -> list[tuple[object, ...]]:
    log = FrameSource(WRITTEN, name="tap")
    source = ChangelogSource(InWriteOrder(log) if ordered else log, position)
    with duckdb.connect() as con:
        source.register(con, "stream", ["order_id"])
        return con.sql("SELECT amount, customer_name FROM stream").fetchall()


def test_the_last_version_written_before_the_first_past_the_position_is_the_state_there() -> None:
    assert as_of(140, ordered=True) == [("12.00", "Ada L.")]
    # By raw position alone the version at 130 wins, and it never existed in the database.
    assert as_of(140, ordered=False) == [("10.00", "Ada L.")]
    assert as_of(110, ordered=True) == [("10.00", "Ada")]
    # Between 120 and 130 no version is right: that key is in flight (migrate.stream.findings.reordered_keys_around).


def test_versions_written_in_position_order_are_unchanged() -> None:
    monotone = WRITTEN.slice(0, 2)
    with duckdb.connect() as con:
        ChangelogSource(InWriteOrder(FrameSource(monotone, name="tap")), 200).register(con, "s", ["order_id"])
        assert con.sql("SELECT amount, customer_name FROM s").fetchall() == [("10.00", "Ada L.")]


def test_an_external_spec_refuses_a_batch_run_that_lacks_an_output(tmp_path: Path) -> None:
    # Without the guard, the missing output read as an empty batch side and an empty stream made CLEAN.
    from migrate.asof import reconcile_spec
    from migrate.batch import write_run
    from migrate.errors import DualrunError

    raw = copy.deepcopy(LEDGER)
    raw["outputs"]["account_balance"]["stream"] = {"table": _sink(tmp_path, True)}
    spec = parse_spec({**raw, "state_dir": str(tmp_path)}, "test.yaml")
    assert spec.is_external
    write_run(spec.warehouse_path, BatchRun("r0", _run().started_at, _run().finished_at, P, {}), {})
    with pytest.raises(DualrunError, match="batch run r0 has no output 'account_balance'"):
        reconcile_spec(spec, record=False)


def _sink_with_nulls(tmp_path: Path, op: bool = True) -> str:
    path = tmp_path / "nulls.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE balances (account_id BIGINT, balance DECIMAL(18,2){', __op VARCHAR' if op else ''}, "
                    "__pos_order BIGINT)")  # fmt: skip
        before = Position.binlog("mysql-bin.000002", 400).order_value
        ops = ", 'u'" if op else ""
        con.execute(f"INSERT INTO balances VALUES (1, 10.00{ops}, ?), (2, 5.50{ops}, NULL)", [before])
    return f"duckdb:{path}?table=balances"


def test_a_sink_table_with_null_positions_is_not_compared(tmp_path: Path) -> None:
    # The as-of filter would drop account 2 unseen; the batch has it, so this must not be compared.
    check, stream, _ = check_output(_spec(_sink_with_nulls(tmp_path)), _run(), "account_balance", BATCH)
    assert stream is None and check.cause == "no_positions" and "1 of 2 rows have a NULL position" in check.detail


def test_a_sink_table_without_op_is_not_compared(tmp_path: Path) -> None:
    check, stream, _ = check_output(_spec(_sink_with_nulls(tmp_path, op=False)), _run(), "account_balance", BATCH)
    assert stream is None and check.cause == "no_positions" and "no __op column" in check.detail


def test_the_checklist_evaluates_sink_tables_for_positions(tmp_path: Path) -> None:
    from migrate.checklist.context import Context
    from migrate.checklist.positions import outputs_carry_positions

    raw = copy.deepcopy(LEDGER)
    raw["outputs"]["account_balance"]["stream"] = {"table": _sink_with_nulls(tmp_path)}
    bad = parse_spec({**raw, "state_dir": str(tmp_path)}, "test.yaml")
    result = outputs_carry_positions(Context(bad))
    assert result.status == "fail" and "1 of 2 rows have a NULL position" in result.evidence
    raw["outputs"]["account_balance"]["stream"] = {"table": _sink(tmp_path, True)}
    good = parse_spec({**raw, "state_dir": str(tmp_path)}, "test.yaml")
    result = outputs_carry_positions(Context(good))
    assert result.status == "pass" and "account_balance 4 (sink table)" in result.evidence


def test_an_output_whose_every_key_is_in_flight_is_unverified_never_clean(tmp_path: Path) -> None:
    """Leaving every key out of both sides would compare two empty tables: that is no evidence."""
    from migrate.external import OutputCheck, _through_window
    from migrate.fence import CheckSpan, FencedWindow
    from migrate.stream.tap import tap_dir
    from migrate.window import Window, WindowEvent
    from tests.unit.migrate.stream.test_tap import _write

    raw = copy.deepcopy(LEDGER)
    raw["state_dir"] = str(tmp_path)
    raw["outputs"]["account_balance"]["lineage"] = {"ledger.transfers": "all"}
    spec = parse_spec(raw, "test.yaml")
    root = tap_dir(spec.path("."), spec.stream.group, "account_balance")
    root.mkdir(parents=True)
    _write(root, [(b"1", b'{"balance": "10.00"}', None, 0, 0), (b"2", b'{"balance": "7.00"}', None, 0, 1)],
           ["account_id"])  # fmt: skip
    window = Window("offsets", {"ledger.ledger.transfers[0]": 4}, {"ledger.ledger.transfers[0]": 5},
                    (WindowEvent("ledger.transfers", None, {"id": 9, "account_id": 2}),))  # fmt: skip
    check = OutputCheck("account_balance", "topic account-balance", "no_positions", "", 0, None)
    fenced = FencedWindow(window, window, CheckSpan({}, {}, previous=False))
    found, result = _through_window(spec, _run(), "account_balance", BATCH, check, fenced)
    assert result is None and found.cause == "unverified", found.to_dict()
    assert found.coverage is not None and (found.coverage.verified, found.coverage.in_flight) == (0, 2)
    assert "run again" in found.detail
