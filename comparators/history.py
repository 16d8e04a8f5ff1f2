"""The run-history database: every reconciliation, its stats and samples, in DuckDB.

Tables: `runs` (one row per reconciliation, with the spec, both positions, the
batch run it judged, the counts and the full result as JSON), `column_stats` and
`samples`. A comparison is identified by its name (default "LEFT vs RIGHT"); its
parity streak counts clean pieces of evidence in a row, newest first, each judged by its
latest reconciliation. One piece of evidence is one state of the source: the batch side's
position when known (a batch run's position; a bracketed run's bracket), else the batch run,
else the reconciliation itself. Re-checking one batch run, or re-running the batch at one
source position (a quiet source), never counts twice: batch runs at one source position count
once. `streaks` is the one streak algorithm; the checklist, the metrics and the report use it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
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
    batch_run: str | None  # the batch run this reconciliation judged (see `record`); read with its fallback

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
    # One transaction: a crash between the two statements must not leave NULL batch runs behind
    # (readers fall back through `batch_run_of` anyway).
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("ALTER TABLE runs ADD COLUMN batch_run VARCHAR")
        con.execute(f"UPDATE runs SET batch_run = {OLD_BATCH_RUN}")
        con.execute("COMMIT")
    except duckdb.Error:
        con.execute("ROLLBACK")
        raise


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


def evidence_of(con: duckdb.DuckDBPyConnection) -> str:
    """The SQL expression for the piece of evidence a `runs` row is about: the batch side's position
    when known, else its batch run, else the row itself (see the module docstring)."""
    return f"coalesce(left_position, {batch_run_of(con)}, run_id)"


@dataclass(frozen=True)
class Check:
    """One recorded reconciliation as the streak reads it."""

    seq: int
    run_id: str
    recorded_at: datetime
    name: str
    verdict: str
    unexplained: int
    left_position: str | None
    batch_run: str
    evidence: str  # see `evidence_of`


def read_checks(con: duckdb.DuckDBPyConnection, where: str = "TRUE", params: Sequence[object] = ()) -> list[Check]:
    """The recorded checks matching `where` (SQL on `runs`), in the order they were recorded; works
    on a new or an old, read-only history."""
    rows = con.execute(
        f"SELECT seq, run_id, recorded_at, name, verdict, unexplained, left_position, {batch_run_of(con)},"
        f" {evidence_of(con)} FROM runs WHERE {where} ORDER BY seq",
        list(params),
    ).fetchall()
    return [Check(int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7], r[8]) for r in rows]


@dataclass(frozen=True)
class Point:
    """One judgement of one piece of evidence: a check of one output, or a whole pipeline run."""

    evidence: str
    clean: bool
    run_id: str


def streaks(points: Iterable[Point]) -> Iterator[list[Point]]:
    """THE parity streak, after each point in recorded order: the points behind it, newest first.
    O(n x states): for the trend; `final_streak` gives the last one in one pass.

    Points group by evidence (one source state); each group is judged by its LATEST point and aged
    by its FIRST (re-checking an old state must not hide a newer state's differences). The streak
    runs from the newest group back to the first whose latest point is not clean.

    >>> [len(s) for s in streaks([Point("p1", True, "a"), Point("p1", True, "b"), Point("p2", False, "c"),
    ...                           Point("p2", True, "d"), Point("p1", False, "e")])]
    [1, 1, 0, 2, 1]
    """
    latest: dict[str, Point] = {}  # insertion order: the order the evidence was first judged
    for point in points:
        latest[point.evidence] = point  # updating a key keeps its place
        yield _behind(latest)


def final_streak(points: Iterable[Point]) -> list[Point]:
    """The parity streak after the last point (the last list `streaks` yields), in one pass:
    O(n) in the points, where `streaks` is O(n x states). Newest first.

    >>> [p.run_id for p in final_streak([Point("p1", True, "a"), Point("p2", False, "c"), Point("p2", True, "d")])]
    ['d', 'a']
    """
    latest: dict[str, Point] = {}  # insertion order: the order the evidence was first judged
    for point in points:
        latest[point.evidence] = point
    return _behind(latest)


def _behind(latest: dict[str, Point]) -> list[Point]:
    """The clean latest points from the newest piece of evidence back to the first dirty one."""
    behind: list[Point] = []
    for judged in reversed(latest.values()):
        if not judged.clean:
            break
        behind.append(judged)
    return behind


def default_name(result: Reconciliation) -> str:
    return result.name or f"{result.left.label} vs {result.right.label}"


def record(
    path: str | Path, result: Reconciliation, recorded_at: datetime | None = None, batch_run: str | None = None
) -> str:
    """Store one reconciliation; returns its run id.

    `batch_run` identifies the batch run it judged (the caller's run id: a batch run, an imported or
    bracketed one); `history list` shows it. Without one, the left side's position stands for it;
    without that either, this reconciliation is a run of its own. The parity streak counts source
    states, not batch runs: see `evidence_of` (the left position first, then the batch run).
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


def _read(path: str | Path, where: str, params: Sequence[object]) -> list[Check]:
    con = _open(path)
    try:
        return read_checks(con, where, params)
    except duckdb.Error as exc:
        raise HistoryError(f"cannot read history database {path}: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()


def streak_runs(path: str | Path, name: str) -> list[str]:
    """The history run ids behind `name`'s parity streak, newest first: for each piece of evidence
    in the streak, the run id of its latest check. Their number is `parity_streak`."""
    checks = _read(path, "name = ?", [name])
    return [p.run_id for p in final_streak(Point(c.evidence, c.verdict == "clean", c.run_id) for c in checks)]


def parity_streak(path: str | Path, name: str) -> int:
    """Clean pieces of evidence of `name` in a row, newest first (see `streaks`).

    Counts DISTINCT source states: the batch side's position when known, else the batch run (see
    `record`), else the check itself. Batch runs at one source position count once, and
    re-checking a run (reconcile re-run, `batch check` of a bracketed run) replaces its verdict and
    never adds to the streak; 0 when the newest state's latest check has differences or nothing is
    recorded.
    """
    return len(streak_runs(path, name))


def runs(path: str | Path, name: str | None = None, limit: int = 50) -> list[RunSummary]:
    """The latest runs, newest first, optionally of one comparison."""
    con = _open(path)
    try:
        rows = con.execute(
            "SELECT run_id, recorded_at, name, verdict, unexplained, mismatched_rows,"
            f" only_in_left, only_in_right, {batch_run_of(con)} FROM runs WHERE $name IS NULL OR name = $name"
            " ORDER BY seq DESC LIMIT $limit",
            {"name": name, "limit": limit},
        ).fetchall()
    finally:
        con.close()
    return [RunSummary(*r) for r in rows]
