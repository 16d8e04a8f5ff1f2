"""A SQL side is streamed into DuckDB chunk by chunk, widening types as later chunks need."""

from __future__ import annotations

import sqlite3
from decimal import Decimal as D
from pathlib import Path

import pytest

import comparators.sources as sources
from comparators import Settings, reconcile
from comparators.errors import SourceError
from tests.unit.comparators.conftest import rec, table


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sources, "SQL_CHUNK_ROWS", 2)
    path = tmp_path / "src.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE orders (id INTEGER, amount NUMERIC(10, 2), note TEXT, mixed)")
    con.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?)",
        [(1, 1.1, None, 1), (2, 2.2, None, 2), (3, 12345.67, "x", 3.5), (4, 4.4, "y", 4),
         (5, 0.01, None, None)],
    )  # fmt: skip
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_chunks_widen_decimals_nulls_and_numbers(db: str) -> None:
    left = table(
        id=[1, 2, 3, 4, 5],
        amount=[D("1.10"), D("2.20"), D("12345.67"), D("4.40"), D("0.01")],
        note=[None, None, "x", "y", None],
        mixed=[1.0, 2.0, 3.5, 4.0, None],
    )
    r = rec(left, f"{db}?table=orders")
    types = {c.name: c.right_type for c in r.columns}
    assert types == {"amount": "DECIMAL(7,2)", "note": "VARCHAR", "mixed": "DOUBLE"}
    assert r.verdict == "clean" and r.right.rows == 5


def test_an_empty_result_is_an_empty_side(db: str) -> None:
    from comparators import SqlSource
    from comparators.errors import EmptySideError

    empty = SqlSource(db, query="SELECT id FROM orders WHERE id > 99")
    assert rec(table(id=[1]), empty).only_in_left == 1
    with pytest.raises(EmptySideError, match="right side"):
        reconcile(table(id=[1]), empty, ["id"], settings=Settings(allow_empty=False))


def test_incompatible_chunks_are_one_clear_error(db: str) -> None:
    from comparators import SqlSource

    query = "SELECT id, CASE WHEN id < 3 THEN id ELSE 'text' END AS v FROM orders"
    with pytest.raises(SourceError, match="different types"):
        rec(table(id=[1], v=[1]), SqlSource(db, query=query))
