"""The run-history database and the parity streak."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comparators import history
from comparators.errors import HistoryError
from comparators.result import Reconciliation
from tests.unit.comparators.conftest import rec, table

CLEAN = rec(table(id=[1, 2], v=[1, 2]), table(id=[1, 2], v=[1, 2]), name="orders")
DIRTY = rec(table(id=[1, 2], v=[1, 2]), table(id=[1, 2], v=[1, 3]), name="orders")
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


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


def test_rechecks_of_one_batch_run_count_once_and_the_latest_check_judges_it(tmp_path: Path) -> None:
    db = tmp_path / "history.duckdb"
    for _ in range(3):  # one night checked three times (a bracket's `batch check`, reconcile re-runs)
        history.record(db, CLEAN, batch_run="night-1")
    assert history.parity_streak(db, "orders") == 1
    history.record(db, CLEAN, batch_run="night-2")
    history.record(db, DIRTY, batch_run="night-3")
    assert history.parity_streak(db, "orders") == 0
    history.record(db, CLEAN, batch_run="night-3")  # the re-check after a fix replaces the verdict
    assert history.parity_streak(db, "orders") == 3
    history.record(db, DIRTY, batch_run="night-1")  # an old run re-checked dirty breaks the streak behind it
    assert history.parity_streak(db, "orders") == 2
    latest = history.runs(db, "orders", limit=3)
    assert [r.batch_run for r in latest] == ["night-1", "night-3", "night-3"]
    assert history.streak_runs(db, "orders") == [latest[1].run_id, history.runs(db, "orders")[3].run_id]


def test_an_old_run_rechecked_clean_does_not_hide_a_newer_dirty_run(tmp_path: Path) -> None:
    db = tmp_path / "history.duckdb"
    history.record(db, CLEAN, batch_run="night-1")
    history.record(db, DIRTY, batch_run="night-2")
    history.record(db, CLEAN, batch_run="night-1")
    assert history.parity_streak(db, "orders") == 0


def test_without_a_batch_run_the_left_position_then_the_reconciliation_itself_stands_for_it(tmp_path: Path) -> None:
    db = tmp_path / "history.duckdb"
    at = dataclasses.replace(CLEAN, left=dataclasses.replace(CLEAN.left, position="0-1-42"))
    history.record(db, at)
    history.record(db, at)
    assert history.parity_streak(db, "orders") == 1 and history.runs(db, "orders")[0].batch_run == "0-1-42"
    history.record(db, CLEAN)
    history.record(db, CLEAN)
    assert history.parity_streak(db, "orders") == 3
    assert history.runs(db, "orders")[0].batch_run == history.runs(db, "orders")[0].run_id


# The `runs` table as dualrun wrote it before `batch_run` existed: the same columns without it.
OLD_RUNS = history.SCHEMA[0].replace(", batch_run VARCHAR", "")


def test_a_history_of_the_old_schema_gains_batch_run_from_the_left_position(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    assert "batch_run" not in OLD_RUNS
    con = duckdb.connect(str(db))
    con.execute(OLD_RUNS)
    # one batch run (position 0-1-7) reconciled three times, then a comparison without a position
    for seq, position in enumerate(["0-1-7", "0-1-7", "0-1-7", None], start=1):
        con.execute(
            "INSERT INTO runs (seq, run_id, recorded_at, name, verdict, unexplained, left_position, mismatched_rows,"
            " only_in_left, only_in_right) VALUES (?, ?, TIMESTAMP '2026-11-01 03:00:00', 'orders', 'clean', 0, ?,"
            " 0, 0, 0)",
            [seq, f"old-{seq}", position],
        )
    con.close()
    # the report reader opens it read-only, unmigrated, and gives the same meaning
    con = duckdb.connect(str(db), read_only=True)
    assert not history.has_batch_run(con)
    con.close()
    assert history.parity_streak(db, "orders") == 2  # migrates: 0-1-7 and old-4
    con = duckdb.connect(str(db))
    assert con.execute("SELECT run_id, batch_run FROM runs ORDER BY seq").fetchall() == [
        ("old-1", "0-1-7"), ("old-2", "0-1-7"), ("old-3", "0-1-7"), ("old-4", "old-4"),
    ]  # fmt: skip
    con.close()
    history.record(db, CLEAN, batch_run="night-9")  # a new row goes in after the migration
    assert history.parity_streak(db, "orders") == 3
    assert history.runs(db, "orders", limit=1)[0].batch_run == "night-9"


def model_streak(checks: list[tuple[int, bool]], positions: list[int | None]) -> int:
    """Distinct pieces of evidence (batch run `run`'s source position `positions[run]` when known,
    else the batch run), newest (first judged last) first, each judged by its latest check, counted
    until the first one whose latest check is not clean."""
    first: dict[str, int] = {}
    latest: dict[str, bool] = {}
    for i, (run, clean) in enumerate(checks):
        evidence = f"run-{run}" if positions[run] is None else f"position-{positions[run]}"
        first.setdefault(evidence, i)
        latest[evidence] = clean
    streak = 0
    for evidence in sorted(first, key=first.__getitem__, reverse=True):
        if not latest[evidence]:
            break
        streak += 1
    return streak


def at(result: Reconciliation, position: int | None) -> Reconciliation:
    """`result` as read at source position `position` (None: no position known)."""
    if position is None:
        return result
    return dataclasses.replace(result, left=dataclasses.replace(result.left, position=f"0-1-{position}"))


# Checks of up to five batch runs, re-checks interleaved in any order; each batch run read the
# source at one of three positions (several runs of a quiet source share one) or at none known.
checks_strategy = st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=1, max_size=10)
positions_strategy = st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=5, max_size=5)


@PROPERTY
@given(checks=checks_strategy, positions=positions_strategy, recheck=st.integers(0, 4))
def test_streak_matches_the_model_and_never_exceeds_the_distinct_source_states(
    tmp_path: Path, checks: list[tuple[int, bool]], positions: list[int | None], recheck: int
) -> None:
    db = tmp_path / f"{uuid.uuid4().hex}.duckdb"
    for run, clean in checks:
        history.record(db, at(CLEAN if clean else DIRTY, positions[run]), batch_run=f"run-{run}")
    states = {f"run-{r}" if positions[r] is None else positions[r] for r, _ in checks}
    streak = history.parity_streak(db, "orders")
    assert streak == model_streak(checks, positions)
    assert streak <= len(states) <= len({run for run, _ in checks})
    again = checks[recheck % len(checks)][0]
    for _ in range(2):  # re-checking a run clean, again and again
        history.record(db, at(CLEAN, positions[again]), batch_run=f"run-{again}")
        assert history.parity_streak(db, "orders") <= len(states)
    assert history.parity_streak(db, "orders") == model_streak(checks + [(again, True)] * 2, positions)


def test_batch_runs_at_one_source_position_count_once(tmp_path: Path) -> None:
    """A quiet source: the batch re-run three times at one position is one state of the source."""
    db = tmp_path / "history.duckdb"
    for night in ("night-1", "night-2", "night-3"):
        history.record(db, at(CLEAN, 42), batch_run=night)
    assert history.parity_streak(db, "orders") == 1
    assert [r.batch_run for r in history.runs(db, "orders")] == ["night-3", "night-2", "night-1"]
    history.record(db, at(CLEAN, 43), batch_run="night-4")
    assert history.parity_streak(db, "orders") == 2


def test_rows_without_a_batch_run_read_through_the_fallback(tmp_path: Path) -> None:
    """A row whose batch_run is NULL (an interrupted migration of an old history, or a hand-made row)
    reads as its left position, else itself: in `runs()` (what `history list` shows) and the streak."""
    db = tmp_path / "history.duckdb"
    history.record(db, dataclasses.replace(CLEAN, left=dataclasses.replace(CLEAN.left, position="0-1-5")))
    history.record(db, CLEAN)
    con = duckdb.connect(str(db))
    con.execute("UPDATE runs SET batch_run = NULL")
    con.close()
    listed = history.runs(db, "orders")
    assert [r.batch_run for r in listed] == [listed[0].run_id, "0-1-5"]
    assert history.parity_streak(db, "orders") == 2


def test_the_old_schema_migration_is_one_transaction(tmp_path: Path) -> None:
    """ALTER and UPDATE commit together: after the migration every row has its batch run."""
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(OLD_RUNS)
    con.execute(
        "INSERT INTO runs (seq, run_id, recorded_at, name, verdict, unexplained, left_position) VALUES"
        " (1, 'old-1', TIMESTAMP '2026-11-01 03:00:00', 'orders', 'clean', 0, NULL)"
    )
    con.close()
    history.runs(db)  # opens, so migrates
    con = duckdb.connect(str(db))
    assert con.execute("SELECT batch_run FROM runs").fetchall() == [("old-1",)]
    con.close()


@given(checks=checks_strategy)
def test_the_final_streak_is_the_last_streak_of_the_trend(checks: list[tuple[int, bool]]) -> None:
    points = [history.Point(f"run-{run}", clean, str(i)) for i, (run, clean) in enumerate(checks)]
    assert history.final_streak(points) == list(history.streaks(points))[-1]


def test_the_final_streak_of_fifty_thousand_checks_equals_the_model() -> None:
    # 50,000 checks of 20,000 states (the trend's generator is quadratic here; final_streak is one pass)
    states = 20_000
    # early dirty checks later re-checked clean; check 45,000 is the last one of the 5,000th state
    checks = [((i * 7919) % states, i != 45_000 and (i >= 10_000 or i % 97 != 0)) for i in range(50_000)]
    points = [history.Point(f"run-{run}", clean, str(i)) for i, (run, clean) in enumerate(checks)]
    streak = history.final_streak(points)
    assert len(streak) == model_streak(checks, [None] * states) == states - 5_001
    assert [p.run_id for p in streak[:2]] == ["39999", "39998"]  # the newest states, by their latest checks
