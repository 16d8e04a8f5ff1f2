"""The change-log verification (`dualrun cdc verify`) as run reports show it.

migrate.verify owns the verification; comparators never import migrate, so reports read its
`to_dict()` into these shapes (`ChangeLogCheck.from_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def sample_text(sample: dict[str, Any]) -> str:
    """One sample row for people: its key, then each column's database and log value.

    >>> sample_text({"key": ["7", "a"], "amount (database)": "0.1000", "amount (log)": "0.1"})
    'key 7/a: amount (database)=0.1000, amount (log)=0.1'
    """
    key = sample.get("key")
    shown = "/".join(str(k) for k in key) if isinstance(key, list | tuple) else str(key)
    rest = ", ".join(f"{name}={value}" for name, value in sample.items() if name != "key")
    return f"key {shown}" + (f": {rest}" if rest else "")


@dataclass(frozen=True)
class LogFinding:
    """Rows of one captured table explained by one cause of the change-log verification."""

    cause: str
    rows: int
    explanation: str
    setting: str | None  # the connector setting that explains it (`decimal.handling.mode=double`)
    columns: tuple[str, ...]
    samples: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"cause": self.cause, "rows": self.rows, "explanation": self.explanation, "setting": self.setting,
                "columns": list(self.columns), "samples": list(self.samples)}  # fmt: skip


@dataclass(frozen=True)
class LogTable:
    """One captured table: the database's rows vs the rows rebuilt from its change topic."""

    table: str
    topic: str
    database_rows: int
    log_rows: int
    matched_rows: int
    coverage: str  # "full", or "since_offset" when retention removed the topic's head
    unverified_rows: int
    note: str | None
    findings: tuple[LogFinding, ...]

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table, "topic": self.topic, "database_rows": self.database_rows, "log_rows": self.log_rows,
            "matched_rows": self.matched_rows, "coverage": self.coverage, "unverified_rows": self.unverified_rows,
            "note": self.note, "findings": [f.to_dict() for f in self.findings],
        }  # fmt: skip


@dataclass(frozen=True)
class ChangeLogCheck:
    """The latest `dualrun cdc verify` as reports show it (migrate.verify owns the verification;
    this is its shape, read from its `to_dict()`): verdict, position, the connector settings that
    bear on the log (the evidence a cause names) and each table's findings."""

    verdict: str  # clean / differences / unevaluated
    connector: str
    position: str
    verified_at: str
    unevaluated: str | None
    settings: tuple[tuple[str, str], ...]
    tables: tuple[LogTable, ...]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChangeLogCheck:
        position = d.get("position") or {}
        where = f"{position.get('file')}:{position.get('pos')}" if position.get("file") else str(position or "")
        if position.get("gtid"):
            where += f" (gtid {position['gtid']})"
        tables = tuple(
            LogTable(
                str(t["table"]), str(t.get("topic", "")), int(t.get("database_rows", 0)), int(t.get("log_rows", 0)),
                int(t.get("matched_rows", 0)), str(t.get("coverage", "full")), int(t.get("unverified_rows", 0)),
                t.get("note"),
                tuple(
                    LogFinding(str(f["cause"]), int(f["rows"]), str(f.get("explanation", "")), f.get("setting"),
                               tuple(f.get("columns", ())), tuple(f.get("samples", ())))
                    for f in t.get("findings", ())
                ),
            )
            for t in d.get("tables", ())
        )  # fmt: skip
        return cls(
            str(d["verdict"]), str(d.get("connector", "")), where, str(d.get("verified_at", "")),
            d.get("unevaluated") or d.get("coverage_shortfall") if d["verdict"] == "unevaluated" else None,
            tuple(sorted((str(k), str(v)) for k, v in (d.get("settings") or {}).items())), tables,
        )  # fmt: skip

    def setting_names(self) -> frozenset[str]:
        """The settings some finding names as its explanation (shown highlighted as evidence)."""
        return frozenset(
            part.split("=", 1)[0].strip()
            for t in self.tables for f in t.findings if f.setting for part in f.setting.split(";")
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "connector": self.connector, "position": self.position,
            "verified_at": self.verified_at, "unevaluated": self.unevaluated, "settings": dict(self.settings),
            "tables": [t.to_dict() for t in self.tables],
        }  # fmt: skip
