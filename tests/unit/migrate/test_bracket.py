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

from migrate.bracket import import_output
from migrate.errors import SpecError
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
