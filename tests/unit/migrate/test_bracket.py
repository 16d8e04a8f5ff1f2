"""The external batch's import: where the job wrote each output, typed exactly like the spec's
columns; a wrong import config fails in one line (exit 2)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from migrate.errors import SpecError
from migrate.intake import import_output
from migrate.spec import load_spec
from tests.unit.migrate.spec.test_load import changed, load_fails, write

BATCH = "outputs.account_balance.batch"


def imported(tmp_path: Path, where: dict[str, Any], columns: dict[str, str] | None = None) -> pa.Table:
    spec = load_spec(write(tmp_path, changed(BATCH, {"import": where, "columns": columns or {}})))
    return import_output(spec, "account_balance")


def test_a_csv_is_imported_with_exact_decimals(tmp_path: Path) -> None:
    (tmp_path / "out.csv").write_text("account_id,balance\n1,0.10\n2,12345678901234.35\n")
    table = imported(tmp_path, {"csv": "out.csv"}, {"balance": "DECIMAL(18,2)"})  # relative to the spec file
    assert table.schema.field("balance").type == pa.decimal128(18, 2)
    assert table.column("balance").to_pylist() == [Decimal("0.10"), Decimal("12345678901234.35")]


def test_parquet_columns_are_cast_to_the_declared_types(tmp_path: Path) -> None:
    pq.write_table(pa.table({"account_id": [1, 2], "balance": pa.array([Decimal("1.5"), Decimal("2.25")])}),
                   tmp_path / "out.parquet")  # fmt: skip
    table = imported(tmp_path, {"parquet": str(tmp_path / "out.parquet")}, {"balance": "DECIMAL(18,2)"})
    assert table.column("balance").type == pa.decimal128(18, 2)
    assert table.column("balance").to_pylist() == [Decimal("1.50"), Decimal("2.25")]


def test_a_value_that_does_not_fit_its_declared_type_fails(tmp_path: Path) -> None:
    (tmp_path / "out.csv").write_text("account_id,balance\n1,0.125\n")
    with pytest.raises(SpecError, match="column balance does not fit DECIMAL"):
        imported(tmp_path, {"csv": "out.csv"}, {"balance": "DECIMAL(18,2)"})


def test_a_sqlalchemy_url_with_a_query(tmp_path: Path) -> None:
    # SQLite stands in for the warehouse the job wrote
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    with sqlite3.connect(tmp_path / "w.sqlite") as lite:
        lite.execute("CREATE TABLE balances (account_id INTEGER, balance TEXT)")
        lite.execute("INSERT INTO balances VALUES (7, '3.50')")
    table = imported(tmp_path, {"url": url, "query": "SELECT account_id, balance FROM balances"},
                     {"balance": "DECIMAL(18,2)"})  # fmt: skip
    assert table.to_pylist() == [{"account_id": 7, "balance": Decimal("3.50")}]


def test_a_missing_column_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "out.csv").write_text("id,balance\n1,2\n")
    with pytest.raises(SpecError, match="has no column 'account_id'"):
        imported(tmp_path, {"csv": "out.csv"})


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"csv": "a.csv", "parquet": "b.parquet"}, "give exactly one of url (with table or query), parquet and csv"),
        ({"url": "postgresql://u@h/db"}, "with url, give exactly one of table and query"),
        ({"url": "postgresql://u:pw@h/db", "table": "t"}, "not in the URL"),
        ({"csv": "a.csv", "table": "t"}, "table, query and password_env go with url only"),
        ({"sqlfile": "x"}, "batch.import.sqlfile: unknown field"),
    ],
)  # fmt: skip
def test_a_wrong_import_fails_at_load_in_one_line(tmp_path: Path, where: dict[str, Any], message: str) -> None:
    load_fails(write(tmp_path, changed(BATCH, {"import": where})), message)


def test_an_imported_output_may_keep_its_sql_and_has_none_otherwise(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, changed(BATCH, {"import": {"csv": "o.csv"}})))
    with pytest.raises(SpecError, match="run it with `dualrun run batch --external"):
        spec.outputs["account_balance"].batch.sql_text()
    data = changed(f"{BATCH}.import", {"csv": "o.csv"})
    assert load_spec(write(tmp_path, data)).outputs["account_balance"].batch.sql_text().startswith("SELECT")


def test_batch_mark_without_begin_or_end_is_a_usage_error() -> None:
    from click.testing import CliRunner

    from migrate.cli import cli

    done = CliRunner().invoke(cli, ["batch", "mark"])
    assert done.exit_code == 2
    assert done.output.strip() == "error: batch mark: give --begin (before your job starts) or --end (after it ended)"


def test_a_begin_mark_keeps_its_offsets_and_an_older_mark_reads_without() -> None:
    from datetime import UTC, datetime

    from cdc.position import Position
    from migrate.marks import Mark

    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    mark = Mark("begin", Position.binlog_snapshot("mysql-bin.000003", 1234, "0-1-42"), at,
                {("dbserver1.shop.orders", 0): 17, ("dbserver1.shop.customers", 0): 5})  # fmt: skip
    data = mark.to_dict()
    assert data["offsets"][0] == {"topic": "dbserver1.shop.customers", "partition": 0, "offset": 5}
    assert Mark.from_dict(data) == mark
    older = {k: v for k, v in data.items() if k != "offsets"}  # written before offsets were recorded
    assert Mark.from_dict(older).offsets is None


def test_bracketed_runs_count_in_the_parity_streak_and_the_coverage_gate(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from cdc.position import Position
    from migrate.batch import BatchRun, write_run
    from migrate.bracket import record_bracket
    from migrate.checklist import Context, parity
    from migrate.checklist.reconciliation import coverage
    from migrate.consistency import classify_bracket
    from migrate.window import Window, WindowEvent, lineage_rows
    from tests.unit.report.builders import local_spec

    base = local_spec(tmp_path)
    spec = base.model_copy(update={"outputs": {"orders_enriched": base.outputs["orders_enriched"]}})
    orders = "shop.orders"
    lineage: dict[str, Any] = {orders: {"order_id": "id"}}
    schema = pa.schema([("order_id", pa.int64()), ("amount", pa.decimal128(12, 2))])

    def table(amounts: dict[int, str]) -> pa.Table:
        return pa.Table.from_pylist([{"order_id": k, "amount": Decimal(v)} for k, v in amounts.items()], schema=schema)

    written: set[str] = set()

    def bracketed_run(run_id: str, changed_ids: list[int], batch_amount_2: str) -> None:
        # Orders 1..4; the stream as of the end mark holds 2.00 for order 2, which changed 1.00 -> 2.00.
        events = tuple(WindowEvent(orders, {"id": i, "amount": Decimal("1.00")}, {"id": i, "amount": Decimal("2.00")},
                                   row=(i,)) for i in changed_ids)  # fmt: skip
        window = Window("positions", {"source": "a"}, {"source": "b"}, events)
        batch = table({1: "5.00", 2: batch_amount_2, 3: "2.00", 4: "4.00"})
        stream = table({1: "5.00", 2: "2.00", 3: "2.00", 4: "4.00"})
        changed = lineage_rows("orders_enriched", ["order_id"], (batch, stream), window, lineage)
        versions = pa.Table.from_pylist(
            [{"order_id": i, "amount": Decimal(a), "__present": True} for i in changed_ids for a in ("1.00", "2.00")],
            schema=schema.append(pa.field("__present", pa.bool_())),
        )
        decided = classify_bracket("orders_enriched", ["order_id"], batch, stream, changed, versions,
                                   name=f"{spec.name}/orders_enriched")  # fmt: skip
        record_bracket(spec, run_id, {"orders_enriched": decided})
        # The run in the warehouse, newest last (the parity check judges the warehouse's latest run).
        if run_id in written:
            return  # a `batch check` again of a run already in the warehouse
        written.add(run_id)
        started = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=int(run_id.rpartition("-")[2]))
        end = Position.binlog_snapshot("mysql-bin.000003", 100 * int(run_id.rpartition("-")[2]))
        write_run(spec.warehouse_path, BatchRun(run_id, started, started, end, {"orders_enriched": 4}),
                  {"orders_enriched": batch})  # fmt: skip

    # Order 2 changes during every batch window (always in flight), order 3 during one.
    for night, changed_ids in enumerate(([2], [2, 3], [2]), start=1):
        bracketed_run(f"night-{night}", changed_ids, "1.00")
    bracketed_run("night-3", [2], "1.00")  # `batch check` of the last run again: it counts once
    ctx = Context(spec)
    assert parity(ctx).status == "pass", parity(ctx).evidence
    assert "orders_enriched streak 3" in parity(ctx).evidence
    gate = coverage(ctx)
    assert gate.status == "fail"  # order 2 was never verified: 3 of 4 keys (75%) < 99%
    assert "orders_enriched 4 keys, 1 never verified over 3 run(s) (75.0%), 1 in flight in the latest" in gate.evidence
    assert coverage(Context(spec.with_changes(checklist={"min_coverage": 0.75}))).status == "pass"
    # A window defect (order 2 read as 9.99, a value it never had) breaks the streak.
    bracketed_run("night-4", [2], "9.99")
    assert parity(Context(spec)).status == "fail"
    assert "orders_enriched latest run has 1 unexplained differences (streak 0)" in parity(Context(spec)).evidence


def test_an_import_url_that_cannot_be_read_is_one_line_saying_so_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'absent' / 'w.db'}"
    with pytest.raises(SpecError) as raised:
        imported(tmp_path, {"url": url, "table": "order_alerts"})
    message = str(raised.value)
    assert message.startswith(f"{BATCH}.import: cannot read {url} (table order_alerts): ")
    assert message.count("cannot read") == 1 and "\n" not in message


def test_an_import_typed_otherwise_than_earlier_runs_is_refused_not_cast(tmp_path: Path) -> None:
    # An empty first CSV stores every column as text; appending typed rows would cast them silently.
    from migrate.batch import BatchRun, write_run
    from migrate.intake import _same_types

    spec = load_spec(write(tmp_path, changed(BATCH, {"import": {"csv": "out.csv"}})))
    (tmp_path / "out.csv").write_text("account_id,balance\n")
    empty = import_output(spec, "account_balance")
    run = BatchRun(run_id="r1", started_at=None, finished_at=None, position=None, rows={})  # type: ignore[arg-type]
    write_run(spec.warehouse_path, run, {"account_balance": empty}, run_id="r1")
    (tmp_path / "out.csv").write_text("account_id,balance\n1,2.50\n")
    with pytest.raises(SpecError, match="column account_id is BIGINT now but VARCHAR in earlier runs"):
        _same_types(spec, {"account_balance": import_output(spec, "account_balance")})


def test_batch_check_exits_as_reconcile_does_when_the_stream_is_behind() -> None:
    """Issue 13 trial: `batch check` exited 3 where `reconcile --spec` exits 1 for the same state; the
    contract (README, `--help`) is 0 clean, 1 anything not clean, 2 config errors."""
    from datetime import UTC, datetime

    from cdc.position import Position
    from migrate.batch import BatchRun
    from migrate.bracket import BracketCheck
    from migrate.marks import Bracket, Mark
    from migrate.progress import StreamProgress

    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    lo, hi = Position.binlog_snapshot("mysql-bin.000003", 100), Position.binlog_snapshot("mysql-bin.000003", 900)
    run = BatchRun("r1", at, at, hi)
    bracket = Bracket("r1", Mark("begin", lo, at), Mark("end", hi, at))
    behind = BracketCheck(run, bracket, StreamProgress(False, hi, None, 0, None, "running"), None, {})
    assert (behind.verdict, behind.exit_code) == ("stream behind", 1)
    assert "by 0" not in (behind.behind or "")
    passed = BracketCheck(run, bracket, StreamProgress(True, hi, hi, 0, None, "running"), None, {})
    assert (passed.verdict, passed.exit_code) == ("clean", 0)


def test_the_lineage_self_check_names_records_written_in_the_bracket_it_did_not_predict() -> None:
    """Issue 13: an enriched order rewritten for a customer change inside the bracket, with a lineage
    that names orders only, is a spec error said as such; with customers named it passes."""
    from migrate.bracket import self_check
    from migrate.spec import OutputSpec
    from migrate.window import Window, WindowEvent

    schema = pa.schema([("order_id", pa.int64()), ("customer_id", pa.int64()), ("tier", pa.string())])
    sides = pa.Table.from_pylist([{"order_id": 1, "customer_id": 10, "tier": "gold"},
                                  {"order_id": 2, "customer_id": 20, "tier": "gold"}], schema=schema)  # fmt: skip
    written = pa.Table.from_pylist([{"order_id": 2, "customer_id": 20, "tier": "gold"}], schema=schema)
    event = WindowEvent("shop.customers", {"id": 20, "tier": "basic"}, {"id": 20, "tier": "gold"}, row=(20,))
    window = Window("positions", {"source": "a"}, {"source": "b"}, (event,))
    orders_only: dict[str, Any] = {"shop.orders": {"order_id": "id"}}
    out = OutputSpec.model_validate({"keys": ["order_id"], "batch": {"sql": "SELECT 1"}, "stream": {"topic": "t"},
                                     "lineage": orders_only})  # fmt: skip
    with pytest.raises(SpecError) as raised:
        self_check("orders_enriched", out, (sides, sides), written, window)
    message = str(raised.value)
    assert message.startswith("outputs.orders_enriched.lineage: the lineage is incomplete: 1 key(s) of orders_enriched")
    assert "e.g. order_id=2;" in message and "\n" not in message and raised.value.exit_code == 2
    complete = out.model_copy(update={"lineage": {**orders_only, "shop.customers": {"customer_id": "id"}}})
    self_check("orders_enriched", complete, (sides, sides), written, window)  # no error


def test_a_lineage_self_check_that_could_not_run_is_recorded_and_said() -> None:
    """Without positions in the stream the self-check cannot tell what the bracket wrote: it does
    not run, and the result says so rather than staying silent."""
    from datetime import UTC, datetime

    from cdc.position import Position
    from migrate import render
    from migrate.batch import BatchRun
    from migrate.bracket import BracketCheck
    from migrate.marks import Bracket, Mark
    from migrate.progress import StreamProgress
    from migrate.window import Window

    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    lo, hi = Position.binlog_snapshot("mysql-bin.000003", 100), Position.binlog_snapshot("mysql-bin.000003", 900)
    run, bracket = BatchRun("r1", at, at, hi), Bracket("r1", Mark("begin", lo, at), Mark("end", hi, at))
    reached, window = StreamProgress(True, hi, hi, 0, None, "running"), Window("positions", {}, {}, ())
    unchecked = BracketCheck(run, bracket, reached, window, {}, "the change topics", {}, ("orders_enriched",))
    text = render.bracket_check(unchecked)
    assert "lineage self-check not run: the stream carries no positions (orders_enriched)" in text
    checked = BracketCheck(run, bracket, reached, window, {}, "the change topics", {})
    assert "self-check" not in render.bracket_check(checked)
    assert checked.to_dict()["lineage_self_check_not_run"] == []
    assert unchecked.to_dict()["lineage_self_check_not_run"] == ["orders_enriched"]
