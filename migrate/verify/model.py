"""The results of a change-log verification: per table, the causes found, and the run's verdict."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from cdc.position import Position

# Causes, in the order they are reported. Each explains rows of one kind:
#   not_captured  the connector does not capture the table (table.include.list / table.exclude.list)
#   snapshot_gap  rows older than the log: the connector never snapshotted the table (snapshot.mode)
#   lost_insert   a row of the database that the log never had
#   binlog_gap    a row deleted while the log had a gap (a re-snapshot after a purged binlog)
#   lost_delete   a row alive in the log but deleted in the database
#   decoding      values that differ because of how the connector encodes them (a connector setting)
#   lost_update   values that differ with no setting to explain them
CAUSES = ("not_captured", "snapshot_gap", "lost_insert", "binlog_gap", "lost_delete", "decoding", "lost_update")
SAMPLES = 5


@dataclass(frozen=True)
class Finding:
    """Rows of one table explained by one cause.

    `setting` is the connector setting that explains them, as Connect stores it
    (`decimal.handling.mode=double`), when one does; `columns` the columns whose values differ;
    `samples` up to SAMPLES keys with the database and log values (text, exact).
    """

    cause: str
    rows: int
    explanation: str
    setting: str | None = None
    columns: tuple[str, ...] = ()
    samples: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause, "rows": self.rows, "explanation": self.explanation, "setting": self.setting,
            "columns": list(self.columns), "samples": list(self.samples),
        }  # fmt: skip


@dataclass(frozen=True)
class RangeStats:
    """How a table was verified by key-range fingerprints (`migrate.verify.pushdown`): `ranges`
    compared inside the database, `differing` of them read row by row (`rows_read` rows)."""

    ranges: int
    differing: int
    rows_read: int
    rows_per_range: int

    def to_dict(self) -> dict[str, Any]:
        return {"ranges": self.ranges, "differing": self.differing, "rows_read": self.rows_read,
                "rows_per_range": self.rows_per_range}  # fmt: skip


@dataclass(frozen=True)
class TableVerification:
    """One captured table: the database's rows at the position vs the rows rebuilt from its topic.

    `coverage` is "full", or "since_offset" when the topic no longer reaches back (retention):
    then only keys with a change in the log are verified and `unverified_rows` counts the rest.
    """

    table: str
    topic: str
    database_rows: int
    log_rows: int
    matched_rows: int
    findings: tuple[Finding, ...]
    coverage: str = "full"
    earliest_offset: int = 0
    earliest_position: Position | None = None
    unverified_rows: int = 0
    note: str | None = None
    ranges: RangeStats | None = None  # verified by fingerprints of key ranges, not read whole

    @property
    def clean(self) -> bool:
        return not self.findings

    @property
    def differing_rows(self) -> int:
        return sum(f.rows for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table, "topic": self.topic, "clean": self.clean, "database_rows": self.database_rows,
            "log_rows": self.log_rows, "matched_rows": self.matched_rows, "coverage": self.coverage,
            "earliest_offset": self.earliest_offset,
            "earliest_position": self.earliest_position.to_dict() if self.earliest_position else None,
            "unverified_rows": self.unverified_rows, "note": self.note,
            "findings": [f.to_dict() for f in self.findings],
            **({"fingerprints": self.ranges.to_dict()} if self.ranges is not None else {}),
        }  # fmt: skip


@dataclass(frozen=True)
class CdcVerification:
    """One `dualrun cdc verify`: every captured table at one source position.

    `verdict` is "clean" (every table matches), "differences" (some finding) or "unevaluated"
    (the log had not reached the position within the wait, or Kafka/Connect did not answer:
    never clean). `settings` are the connector's settings that bear on the log's content, as
    Connect reports them (secrets are never among them).
    """

    pipeline: str
    connector: str
    position: Position
    verified_at: str  # ISO 8601, UTC
    seconds: float
    tables: tuple[TableVerification, ...]
    settings: dict[str, str]
    unevaluated: str | None = None
    min_coverage: float = 0.99  # checklist.min_coverage: verified share of a table's rows below it proves too little

    @property
    def shortfall(self) -> str | None:
        """The tables of which fewer than `min_coverage` of the rows could be verified (the rest
        older than the log's reach), with the counts; None when every table reaches it."""
        need = Fraction(str(self.min_coverage))
        short = [
            f"{t.table}: {t.database_rows - t.unverified_rows:,} of {t.database_rows:,} rows verified"
            for t in self.tables
            if t.database_rows and Fraction(t.database_rows - t.unverified_rows, t.database_rows) < need
        ]
        if not short:
            return None
        percent = (Decimal(str(self.min_coverage)) * 100).normalize()
        return f"{'; '.join(short)}: below checklist.min_coverage ({percent:f}%)"

    @property
    def verdict(self) -> str:
        """A table of which too few rows could be verified (`shortfall`: the rest older than the
        log's reach) proves too little: unless another table has differences, the run is then
        unevaluated, never clean."""
        if self.unevaluated is not None:
            return "unevaluated"
        if not all(t.clean for t in self.tables):
            return "differences"
        if self.shortfall is not None:
            return "unevaluated"
        return "clean"

    @property
    def exit_code(self) -> int:
        return {"clean": 0, "differences": 1}.get(self.verdict, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "connector": self.connector, "verdict": self.verdict,
            "position": self.position.to_dict(), "verified_at": self.verified_at, "seconds": round(self.seconds, 3),
            "unevaluated": self.unevaluated, "coverage_shortfall": self.shortfall, "min_coverage": self.min_coverage,
            "settings": dict(self.settings),
            "tables": [t.to_dict() for t in self.tables],
        }  # fmt: skip
