"""The run-history database: every reconciliation, its stats and samples, in DuckDB.

Tables: `runs` (one row per reconciliation, with the spec, both positions, the
counts and the full result as JSON), `column_stats` and `samples`. A comparison
is identified by its name (default "LEFT vs RIGHT"); its parity streak is the
number of consecutive clean runs up to the latest one.
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
        elapsed_s DOUBLE, spec JSON, result JSON)""",
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

    def to_dict(self) -> dict[str, Any]:
        return {k: jsonable(v) for k, v in self.__dict__.items()}


def _open(path: str | Path) -> duckdb.DuckDBPyConnection:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path))
        for ddl in SCHEMA:
            con.execute(ddl)
        return con
    except (duckdb.Error, OSError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise HistoryError(
            f"cannot open history database {path}: {first}; check the path and that no other process holds it open"
        ) from exc


def default_name(result: Reconciliation) -> str:
    return result.name or f"{result.left.label} vs {result.right.label}"


def record(path: str | Path, result: Reconciliation, recorded_at: datetime | None = None) -> str:
    """Store one reconciliation; returns its run id."""
    run_id = uuid.uuid4().hex
    when = (recorded_at or datetime.now(UTC)).replace(tzinfo=None)
    con = _open(path)
    try:
        con.execute("BEGIN TRANSACTION")
        row = one_row(con, "SELECT coalesce(max(seq), 0) + 1 FROM runs")
        seq = int(row[0]) if row else 1
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?)",
            [
                seq, run_id, when, default_name(result), result.verdict, result.unexplained,
                result.left.label, result.right.label, result.left.position,
                result.right.position, result.left.rows, result.right.rows, result.matched_rows,
                result.only_in_left, result.only_in_right, result.left.duplicate_keys,
                result.right.duplicate_keys, result.mismatched_rows,
                result.within_tolerance_rows, result.in_flight_rows, result.elapsed_s,
                json.dumps(result.spec), json.dumps(result.to_dict()),
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


def parity_streak(path: str | Path, name: str) -> int:
    """Consecutive clean runs of `name`, counting back from the latest."""
    con = _open(path)
    try:
        row = con.execute(
            "SELECT count(*) FROM runs WHERE name = $name AND seq > coalesce("
            "(SELECT max(seq) FROM runs WHERE name = $name AND verdict <> 'clean'), 0)",
            {"name": name},
        ).fetchall()[0]
    finally:
        con.close()
    return int(row[0]) if row else 0


def runs(path: str | Path, name: str | None = None, limit: int = 50) -> list[RunSummary]:
    """The latest runs, newest first, optionally of one comparison."""
    con = _open(path)
    try:
        rows = con.execute(
            "SELECT run_id, recorded_at, name, verdict, unexplained, mismatched_rows,"
            " only_in_left, only_in_right FROM runs WHERE $name IS NULL OR name = $name"
            " ORDER BY seq DESC LIMIT $limit",
            {"name": name, "limit": limit},
        ).fetchall()
    finally:
        con.close()
    return [RunSummary(*r) for r in rows]
