"""The run-history database and the parity streak."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from comparators import history
from comparators.errors import HistoryError
from tests.unit.comparators.conftest import rec, table

CLEAN = rec(table(id=[1, 2], v=[1, 2]), table(id=[1, 2], v=[1, 2]), name="orders")
DIRTY = rec(table(id=[1, 2], v=[1, 2]), table(id=[1, 2], v=[1, 3]), name="orders")


def test_streak_counts_clean_runs_since_the_last_failure(tmp_path: Path) -> None:
    db = tmp_path / "h" / "history.duckdb"
    assert history.parity_streak(db, "orders") == 0
    for result in (CLEAN, DIRTY, CLEAN, CLEAN, CLEAN):
        history.record(db, result)
    history.record(db, DIRTY.__class__(**{**DIRTY.__dict__, "name": "other"}))
    assert history.parity_streak(db, "orders") == 3
    assert history.parity_streak(db, "other") == 0
    history.record(db, DIRTY)
    assert history.parity_streak(db, "orders") == 0
    runs = history.runs(db, "orders")
    assert [r.verdict for r in runs] == ["differences", "clean", "clean", "clean", "differences",
                                         "clean"]  # fmt: skip


def test_run_stores_counts_columns_and_samples(tmp_path: Path) -> None:
    db = tmp_path / "history.duckdb"
    run_id = history.record(db, DIRTY)
    con = duckdb.connect(str(db))
    row = con.execute("SELECT name, verdict, mismatched_rows, result FROM runs WHERE run_id = ?", [run_id]).fetchall()[
        0
    ]
    assert row[:3] == ("orders", "differences", 1)
    assert json.loads(row[3])["mismatched_rows"] == 1
    stats = con.execute("SELECT column_name, mismatches FROM column_stats").fetchall()
    assert stats == [("v", 1)]
    samples = con.execute("SELECT cause, key FROM samples").fetchall()
    assert [(c, json.loads(k)) for c, k in samples] == [("value_mismatch", {"id": 2})]


def test_unopenable_history_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_text("garbage" * 100)
    with pytest.raises(HistoryError, match="cannot open history database"):
        history.record(bad, CLEAN)
