"""Verifications in the run history (the spec's compare.history DuckDB file), table `cdc_verifications`."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from migrate.errors import DualrunError
from migrate.verify.model import CdcVerification

TABLE = "cdc_verifications"
_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (run_id VARCHAR PRIMARY KEY, recorded_at TIMESTAMP NOT NULL, "
    "pipeline VARCHAR NOT NULL, connector VARCHAR, verdict VARCHAR NOT NULL, position VARCHAR, result JSON)"
)


@dataclass(frozen=True)
class RecordedVerification:
    """One stored verification: when (UTC, naive), its verdict and the full result as data."""

    run_id: str
    recorded_at: datetime
    verdict: str
    result: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "recorded_at": self.recorded_at.isoformat(), "verdict": self.verdict,
                "result": self.result}  # fmt: skip


def _open(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path))
        con.execute(_DDL)
        return con
    except (duckdb.Error, OSError) as exc:
        raise DualrunError(f"cannot open history database {path}: {str(exc).splitlines()[0]}") from None


def record(path: Path, result: CdcVerification) -> str:
    """Store one verification; returns its run id."""
    run_id = uuid.uuid4().hex
    recorded = datetime.fromisoformat(result.verified_at).replace(tzinfo=None)
    with _open(path) as con:
        con.execute(
            f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
            [run_id, recorded, result.pipeline, result.connector, result.verdict, str(result.position),
             json.dumps(result.to_dict(), default=str)],
        )  # fmt: skip
    return run_id


def latest(path: Path, pipeline: str) -> RecordedVerification | None:
    """The newest verification of `pipeline`, or None when there is none (or no history yet)."""
    if not path.exists():
        return None
    with _open(path) as con:
        row = con.execute(
            f"SELECT run_id, recorded_at, verdict, result FROM {TABLE} WHERE pipeline = ? "
            "ORDER BY recorded_at DESC LIMIT 1",
            [pipeline],
        ).fetchone()
    if row is None:
        return None
    return RecordedVerification(row[0], row[1], row[2], json.loads(row[3]))
