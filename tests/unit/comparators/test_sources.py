"""Every kind of source, and the one-line errors for bad ones."""

from __future__ import annotations

import sqlite3
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from comparators.errors import SourceError
from comparators.sources import (
    CsvSource,
    DuckDBSource,
    ParquetSource,
    SqlSource,
    open_source,
)
from tests.unit.comparators.conftest import rec, table

DATA = table(id=[1, 2, 3], amount=[D("1.10"), D("2.20"), D("3.30")], name=["a", "b", "c"])


def test_parquet_file_and_glob(tmp_parquet: Any) -> None:
    path = tmp_parquet("one.parquet", DATA)
    tmp_parquet("part-1.parquet", DATA.slice(0, 2))
    tmp_parquet("part-2.parquet", DATA.slice(2))
    glob = str(Path(path).parent / "part-*.parquet")
    assert isinstance(open_source(glob), ParquetSource)
    r = rec(path, glob)
    assert r.verdict == "clean" and r.right.rows == 3


def test_csv_money_is_read_as_decimal(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("id,amount,ratio,name\n1,1.10,1e-3,a\n2,2.20,2.5,b\n3,3.30,3,c\n")
    r = rec(DATA, str(path), ignore=["ratio"])
    assert {c.name: c.right_type for c in r.columns}["amount"] == "DECIMAL(3,2)"
    assert r.verdict == "clean"  # exact DECIMAL equality with the Arrow side


def test_duckdb_table_with_awkward_name(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.register("src", DATA)
    con.execute('CREATE TABLE "my ""odd"" table" AS SELECT * FROM src')
    con.close()
    src = open_source(f'duckdb:{db}?table=my "odd" table')
    assert isinstance(src, DuckDBSource)
    assert rec(DATA, src).verdict == "clean"
    with pytest.raises(SourceError, match="table 'missing' not found.*tables there: my"):
        rec(DATA, f"duckdb:{db}?table=missing")


def test_sqlalchemy_url_with_table_and_query(tmp_path: Path) -> None:
    db = tmp_path / "src.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE orders (id INTEGER, name TEXT)")
    con.executemany("INSERT INTO orders VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "x")])
    con.commit()
    con.close()
    src = open_source(f"sqlite:///{db}?table=orders")
    assert isinstance(src, SqlSource) and src.table == "orders" and "table=" not in src.url
    r = rec(DATA.select(["id", "name"]), src)
    assert r.mismatched_rows == 1
    by_query = SqlSource(f"sqlite:///{db}", query="SELECT id, name FROM orders WHERE id < 3")
    assert rec(DATA.select(["id", "name"]), by_query).only_in_left == 1
    with pytest.raises(SourceError, match="table 'nope' not found"):
        rec(DATA, f"sqlite:///{db}?table=nope")


def test_unreachable_database_hides_the_password() -> None:
    url = "mysql+pymysql://app:s3cret@127.0.0.1:1/shop?table=orders&connect_timeout=2"
    with pytest.raises(SourceError) as info:
        rec(DATA, url)
    assert "s3cret" not in str(info.value) and "cannot read" in str(info.value)


def test_dataframes_of_every_kind() -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "amount": [D("1.10"), D("2.20"), D("3.30")],
                          "name": ["a", "b", "c"]})  # fmt: skip
    assert rec(DATA, frame).verdict == "clean"  # pandas Decimals stay DECIMAL via Arrow
    assert rec(DATA, pl.from_arrow(DATA)).verdict == "clean"
    reader = pa.RecordBatchReader.from_batches(DATA.schema, DATA.to_batches())
    assert rec(DATA, reader).verdict == "clean"  # one-shot input, materialised once


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/nowhere/x.parquet", "does not exist"),
        ("/nowhere/*.parquet", "no Parquet files match"),
        ("/nowhere/x.csv", "does not exist"),
        ("duckdb:/nowhere/x.db", "name the table"),
        ("notes.txt", "cannot tell what"),
        ("postgresql://u@h/db", "add ?table=NAME"),
        ("nosuchdriver://u@h/db?table=t", "bad database URL"),
    ],
)
def test_bad_sources_give_one_clear_line(spec: str, message: str) -> None:
    with pytest.raises(SourceError, match=message.replace("?", r"\?")) as info:
        rec(DATA, spec)
    assert "\n" not in str(info.value)


def test_file_that_is_not_parquet(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(SourceError, match="cannot read Parquet"):
        rec(DATA, str(bad))


def test_csv_and_parquet_labels() -> None:
    assert CsvSource("a.csv").label == "a.csv"
    assert SqlSource("mysql+pymysql://u:pw@h/db", table="t").label.count("pw") == 0


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "url",
    [
        f"mysql+pymysql://app:Src-Pw-77@127.0.0.1:{_closed_port()}/shop",  # the driver's connect error
        "mysql+pymysql://app:Src-Pw-77@127.0.0.1:Src-Pw-77/shop",  # SQLAlchemy's message quotes the URL's text
        "mysql+pymysql://app:Src%2DPw%2D77@127.0.0.1:Src%2DPw%2D77/shop",  # the password as the URL spells it
    ],
    ids=["connect-error", "bad-port", "quoted"],
)
def test_sql_source_never_shows_its_password(url: str) -> None:
    src = SqlSource(url, table="orders")
    assert "Pw" not in repr(src) and "Pw" not in src.label
    with pytest.raises(SourceError) as caught, duckdb.connect() as con:
        src.register(con, "orders", ["id"])
    assert "Src-Pw-77" not in str(caught.value) and "Src%2DPw%2D77" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value) or "<unparsable URL>" in str(caught.value)  # still says where
