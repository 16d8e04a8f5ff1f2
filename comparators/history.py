"""The run-history database: every reconciliation, its stats and samples, in DuckDB.

Tables: `runs` (one row per reconciliation, with the spec, both positions, the
batch run it judged, the counts and the full result as JSON), `column_stats` and
`samples`. A comparison is identified by its name (default "LEFT vs RIGHT"); its
parity streak counts clean batch runs in a row, newest first, each judged by its
latest reconciliation: re-checking one batch run never counts twice.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from comparators.errors import HistoryError
from comparators.result import Reconciliation, jsonable
from comparators.sql import one_row

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
        seq BIGINT PRIMARY KEY, run_id VARCHAR UNIQUE NOT NULL, recorded_at TIMESTAMP NOT NULL,
        name VARCHAR NOT NULL, verdict VARCHAR NOT NULL, unexplained BIGINT NOT NULL,
        left_label VARCHAR, right_label VARCHAR, left_position VARCHAR, right_position VARCHAR,
        left_rows BIGINT, right_rows BIGINT, matched_rows BIGINT, only_in_left BIGINT,
        only_in_right BIGINT, duplicate_keys_left BIGINT, duplicate_keys_right BIGINT,
        mismatched_rows BIGINT, within_tolerance_rows BIGINT, in_flight_rows BIGINT,
        elapsed_s DOUBLE, spec JSON, result JSON, batch_run VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS column_stats (
        run_id VARCHAR NOT NULL, column_name VARCHAR NOT NULL, compared_as VARCHAR,
        rules VARCHAR, mismatches BIGINT, within_tolerance BIGINT, null_vs_value BIGINT,
        max_abs_diff VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS samples (
        run_id VARCHAR NOT NULL, cause VARCHAR NOT NULL, key JSON, detail JSON)""",
)


@dataclass(frozen=True)
class RunSummary:
    """One recorded run, as listed for trends."""

    run_id: str
    recorded_at: datetime
    name: str
    verdict: str
    unexplained: int
    mismatched_rows: int
    only_in_left: int
    only_in_right: int
    batch_run: str  # the batch run this reconciliation judged (see `record`)

    def to_dict(self) -> dict[str, Any]:
        return {k: jsonable(v) for k, v in self.__dict__.items()}


def _open(path: str | Path) -> duckdb.DuckDBPyConnection:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path))
        for ddl in SCHEMA:
            con.execute(ddl)
        _migrate(con)
        return con
    except (duckdb.Error, OSError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise HistoryError(
            f"cannot open history database {path}: {first}; check the path and that no other process holds it open"
        ) from exc


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a history written before `batch_run` existed up to date: its runs judged the batch
    run at their left (batch) position, the same fallback `record` uses."""
    if has_batch_run(con):
        return
    con.execute("ALTER TABLE runs ADD COLUMN batch_run VARCHAR")
    con.execute(f"UPDATE runs SET batch_run = {OLD_BATCH_RUN}")


# What an old row (no batch_run column) judged; readers that open the history read-only use it too.
OLD_BATCH_RUN = "coalesce(left_position, run_id)"


def has_batch_run(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the `runs` table has the `batch_run` column (histories older than it do not)."""
    row = one_row(
        con,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'runs' AND column_name = 'batch_run'",
    )
    return bool(row and row[0])


def batch_run_of(con: duckdb.DuckDBPyConnection) -> str:
    """The SQL expression for a `runs` row's batch run, on a new or an old (read-only) history."""
    return f"coalesce(batch_run, {OLD_BATCH_RUN})" if has_batch_run(con) else OLD_BATCH_RUN


def default_name(result: Reconciliation) -> str:
    return result.name or f"{result.left.label} vs {result.right.label}"


def record(
    path: str | Path, result: Reconciliation, recorded_at: datetime | None = None, batch_run: str | None = None
) -> str:
    """Store one reconciliation; returns its run id.

    `batch_run` identifies the batch run it judged (the caller's run id: a batch run, an imported or
    bracketed one), so re-checks of one run count once in the parity streak. Without one, the left
    side's position stands for it (two tables compared as of one source position judge one state of
    the source); without that either, nothing ties this reconciliation to another, so it is a run
    of its own.
    """
    run_id = uuid.uuid4().hex
    judged = batch_run if batch_run is not None else (result.left.position or run_id)
    when = (recorded_at or datetime.now(UTC)).replace(tzinfo=None)
    con = _open(path)
    try:
        con.execute("BEGIN TRANSACTION")
        row = one_row(con, "SELECT coalesce(max(seq), 0) + 1 FROM runs")
        seq = int(row[0]) if row else 1
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?)",
            [
                seq, run_id, when, default_name(result), result.verdict, result.unexplained,
                result.left.label, result.right.label, result.left.position,
                result.right.position, result.left.rows, result.right.rows, result.matched_rows,
                result.only_in_left, result.only_in_right, result.left.duplicate_keys,
                result.right.duplicate_keys, result.mismatched_rows,
                result.within_tolerance_rows, result.in_flight_rows, result.elapsed_s,
                json.dumps(result.spec), json.dumps(result.to_dict()), judged,
            ],
        )  # fmt: skip
        stats = [
            [run_id, c.name, c.compared_as, ",".join(c.rules), c.mismatches, c.within_tolerance,
             c.null_vs_value, None if c.max_abs_diff is None else str(jsonable(c.max_abs_diff))]
            for c in result.columns
        ]  # fmt: skip
        if stats:
            con.executemany("INSERT INTO column_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?)", stats)
        if result.samples:
            con.executemany(
                "INSERT INTO samples VALUES (?, ?, ?, ?)",
                [[run_id, s.cause, json.dumps(s.to_dict()["key"]), json.dumps(s.to_dict())] for s in result.samples],
            )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        raise HistoryError(f"cannot write run to history database {path}: {exc}") from exc
    finally:
        con.close()
    return run_id


# The latest check of each batch run of a comparison, newest batch run first, up to (not including)
# the first batch run whose latest check is not clean. A batch run's age is when it was first
# judged: re-checking an old run must not hide a newer run's differences. `{batch_run}` is
# `batch_run_of(con)`.
_STREAK_SQL = """
WITH checks AS (
    SELECT seq, run_id, verdict, {batch_run} AS batch_run FROM runs WHERE name = $name
), judged AS (
    SELECT batch_run, min(seq) AS first_seq, arg_max(run_id, seq) AS latest_run,
           arg_max(verdict, seq) AS latest_verdict
    FROM checks GROUP BY batch_run
), ordered AS (
    SELECT latest_run, first_seq,
           count(*) FILTER (WHERE latest_verdict <> 'clean')
               OVER (ORDER BY first_seq DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS unclean
    FROM judged
)
SELECT latest_run FROM ordered WHERE unclean = 0 ORDER BY first_seq DESC
"""


def streak_runs(path: str | Path, name: str) -> list[str]:
    """The history run ids behind `name`'s parity streak, newest batch run first: for each batch run
    in the streak, the run id of its latest check. Their number is `parity_streak`."""
    con = _open(path)
    try:
        rows = con.execute(_STREAK_SQL.format(batch_run=batch_run_of(con)), {"name": name}).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def parity_streak(path: str | Path, name: str) -> int:
    """Clean batch runs of `name` in a row, newest first.

    Counts DISTINCT batch runs (see `record`), each judged by its LATEST check, from the newest
    (the one first judged most recently) back to the first batch run whose latest check is not
    clean. Re-checking a run (reconcile re-run, `batch check` of a bracketed run) replaces its
    verdict and never adds to the streak; 0 when the newest batch run's latest check has
    differences or nothing is recorded.
    """
    return len(streak_runs(path, name))


def runs(path: str | Path, name: str | None = None, limit: int = 50) -> list[RunSummary]:
    """The latest runs, newest first, optionally of one comparison."""
    con = _open(path)
    try:
        rows = con.execute(
            "SELECT run_id, recorded_at, name, verdict, unexplained, mismatched_rows,"
            " only_in_left, only_in_right, batch_run FROM runs WHERE $name IS NULL OR name = $name"
            " ORDER BY seq DESC LIMIT $limit",
            {"name": name, "limit": limit},
        ).fetchall()
    finally:
        con.close()
    return [RunSummary(*r) for r in rows]
