"""Reconcile a table read from the database with the same table rebuilt from its change topic, in
DuckDB, and give each difference its cause.

Both sides arrive as comparison text (see `migrate.verify.values`), keyed by the primary key.
Rows only in the database are a snapshot gap when the log holds no snapshot of the table
(and reaches back to offset 0), else lost inserts; rows alive only in the log are lost deletes,
or a binlog gap when the connector re-snapshotted after streaming; rows whose values differ
are a decoding problem when a connector setting explains every differing column
(`decimal.handling.mode=double` on a DECIMAL column), else lost updates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from cdc.rebuild import LogExtent
from migrate.verify.model import SAMPLES, Finding, TableVerification
from migrate.verify.values import KEY_SEPARATOR


@dataclass(frozen=True)
class Side:
    """One side as comparison text: `keys[i]` and `columns[name][i]` describe row i."""

    keys: list[str]
    columns: dict[str, list[str | None]]

    def arrow(self, names: Sequence[str]) -> pa.Table:
        data: dict[str, Any] = {"k": pa.array(self.keys, pa.string())}
        for i, name in enumerate(names):
            data[f"c{i}"] = pa.array(self.columns.get(name) or [None] * len(self.keys), pa.string())
        return pa.table(data)


CHUNK_ROWS = 50_000
# Debezium MySQL/MariaDB snapshot modes that read the captured tables' rows (op=r) at capture start.
DATA_SNAPSHOT_MODES = ("initial", "when_needed", "always", "initial_only")


class SideBuilder:
    """Builds one side as an Arrow table (`k`, `c0`..`cN`, text) in chunks of CHUNK_ROWS rows, so a
    big table is held as compact Arrow buffers, not as millions of Python strings."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.schema = pa.schema([("k", pa.string()), *((f"c{i}", pa.string()) for i in range(len(self.names)))])
        self._batches: list[pa.RecordBatch] = []
        self._keys: list[str] = []
        self._columns: list[list[str | None]] = [[] for _ in self.names]

    def add(self, key: str, values: Sequence[str | None]) -> None:
        """One row: its key text and its columns' comparison text, in `names` order."""
        self._keys.append(key)
        for column, value in zip(self._columns, values, strict=True):
            column.append(value)
        if len(self._keys) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._keys:
            arrays = [pa.array(self._keys, pa.string()), *(pa.array(c, pa.string()) for c in self._columns)]
            self._batches.append(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
            self._keys, self._columns = [], [[] for _ in self.names]

    def table(self) -> pa.Table:
        self._flush()
        return pa.Table.from_batches(self._batches, schema=self.schema)


def arrow_side(side: Side | pa.Table, names: Sequence[str]) -> pa.Table:
    """A side as an Arrow table of `k`, `c0`..`cN` (a built one as it is)."""
    return side if isinstance(side, pa.Table) else side.arrow(names)


@dataclass(frozen=True)
class Scope:
    """Which keys can be verified. `only` None: every key; else only those (the log's reach)."""

    only: frozenset[str] | None = None
    skip: frozenset[str] = field(default_factory=frozenset)  # versions as of the position may be compacted away


def explaining_setting(column_kind: str, settings: Mapping[str, str]) -> str | None:
    """The connector setting that makes a column's log values differ from the database's, if any.

    >>> explaining_setting("decimal", {"decimal.handling.mode": "double"})
    'decimal.handling.mode=double'
    >>> explaining_setting("decimal", {"decimal.handling.mode": "precise"}) is None
    True

    `decimal.handling.mode=string` explains nothing: its text is exact and is read back as a
    Decimal before comparing (`values.string_decimals`).
    """
    if column_kind == "decimal" and settings.get("decimal.handling.mode") == "double":
        return "decimal.handling.mode=double"
    if column_kind == "temporal" and settings.get("time.precision.mode") == "connect":
        return "time.precision.mode=connect"  # milliseconds only: microseconds are cut
    if column_kind == "bigint_unsigned" and settings.get("bigint.unsigned.handling.mode") == "long":
        return "bigint.unsigned.handling.mode=long"
    return None


def _samples(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> tuple[dict[str, Any], ...]:
    cur = con.execute(sql + f" ORDER BY k LIMIT {SAMPLES}", params)
    names = ["key" if d[0] == "k" else d[0] for d in cur.description or []]
    samples = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    for sample in samples:
        sample["key"] = sample["key"].split(KEY_SEPARATOR)
    return tuple(samples)


def reconcile(
    table: str,
    topic: str,
    database: Side | pa.Table,
    log: Side | pa.Table,
    extent: LogExtent,
    *,
    kinds: Mapping[str, str],
    settings: Mapping[str, str],
    scope: Scope = Scope(),  # noqa: B008 - frozen
    log_columns: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
) -> TableVerification:
    """Compare `database` and `log` (same column names) and explain every difference.

    Each side is a `Side`, or an Arrow table of `k`, `c0`..`cN` (`SideBuilder`) for the columns
    `names` of the database side (`names` given with Arrow sides).

    `kinds` maps a column to "decimal", "temporal", "bigint_unsigned" or "other" (the database's
    type); `settings` are the connector's (Connect's config). `log_columns`, when known, are the
    columns the log carries: a database column missing there is reported as not captured.
    """
    if names is None:
        if isinstance(database, pa.Table):
            raise TypeError("reconcile: give the column names with Arrow sides")
        names = list(database.columns)
    names = list(names)
    missing_columns = [n for n in names if log_columns is not None and log_columns and n not in log_columns]
    compared = [n for n in names if n not in missing_columns]
    con = duckdb.connect()
    try:
        con.register("db_in", arrow_side(database, names))
        con.register("log_in", arrow_side(log, names))
        con.execute("CREATE TEMP TABLE db AS SELECT * FROM db_in")
        con.execute("CREATE TEMP TABLE lg AS SELECT * FROM log_in")
        con.execute("CREATE TEMP TABLE skip_keys (k VARCHAR)")
        if scope.skip:
            con.executemany("INSERT INTO skip_keys VALUES (?)", [[k] for k in scope.skip])
        in_scope = "k NOT IN (SELECT k FROM skip_keys)"
        if scope.only is not None:
            con.execute("CREATE TEMP TABLE only_keys (k VARCHAR)")
            con.register("only_in", pa.table({"k": pa.array(sorted(scope.only), pa.string())}))
            con.execute("INSERT INTO only_keys SELECT k FROM only_in")
            in_scope += " AND k IN (SELECT k FROM only_keys)"
        findings: list[Finding] = []
        only_db = f"SELECT k FROM db WHERE {in_scope} AND k NOT IN (SELECT k FROM lg)"
        only_log = f"SELECT k FROM lg WHERE {in_scope} AND k NOT IN (SELECT k FROM db)"
        n_only_db = _count(con, only_db)
        n_only_log = _count(con, only_log)
        if n_only_db:
            findings.append(_missing_finding(n_only_db, extent, settings, _samples(con, only_db, [])))
        if n_only_log:
            findings.append(_alive_finding(n_only_log, extent, settings, _samples(con, only_log, [])))
        findings.extend(_value_findings(con, compared, kinds, settings, in_scope))
        if missing_columns:
            findings.append(Finding(
                "not_captured", _count(con, f"SELECT k FROM db WHERE {in_scope}"),
                f"column(s) {', '.join(missing_columns)} are not in the change events",
                _setting(settings, "column.exclude.list") or _setting(settings, "column.include.list"),
                tuple(missing_columns),
            ))  # fmt: skip
        db_rows = _count(con, "SELECT k FROM db")
        log_rows = _count(con, "SELECT k FROM lg")
        matched = _count(con, f"SELECT k FROM db WHERE {in_scope} AND k IN (SELECT k FROM lg)")
        unverified = db_rows - _count(con, f"SELECT k FROM db WHERE {in_scope}")
    finally:
        con.close()
    differing = sum(f.rows for f in findings if f.cause in ("decoding", "lost_update"))
    return TableVerification(
        table, topic, db_rows, log_rows, matched - differing, tuple(findings),
        coverage="since_offset" if scope.only is not None else "full",
        earliest_offset=extent.earliest_offset, earliest_position=extent.first_position,
        unverified_rows=unverified,
    )  # fmt: skip


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
    return int(row[0]) if row else 0


def _setting(settings: Mapping[str, str], name: str) -> str | None:
    value = settings.get(name)
    return f"{name}={value}" if value else None


def _missing_finding(
    rows: int, extent: LogExtent, settings: Mapping[str, str], samples: tuple[dict[str, Any], ...]
) -> Finding:
    mode = settings.get("snapshot.mode", "initial")
    # No snapshot read in the topic explains missing rows only when the connector was not meant to
    # read the table's rows: a data-snapshotting mode with no read means the table was empty then,
    # so a row missing now is an insert the log lost (seen: an unlogged insert long after capture).
    skipped = mode not in DATA_SNAPSHOT_MODES or not _in_snapshot_list(settings, extent.topic)
    if extent.snapshot_reads == 0 and not extent.truncated and skipped:
        return Finding(
            "snapshot_gap", rows,
            f"rows older than the log: the topic starts with {extent.first_op or 'no event'!s} and holds no "
            "snapshot read of the table, so rows that existed when capture began were never published",
            f"snapshot.mode={mode}", samples=samples,
        )  # fmt: skip
    empty_then = " (the topic holds no snapshot read: the table was empty when the connector snapshotted it)"
    return Finding(
        "lost_insert", rows,
        "rows in the database that no change event (snapshot read or insert) brought into the log"
        + (empty_then if extent.snapshot_reads == 0 and not extent.truncated else ""),
        samples=samples,
    )  # fmt: skip


def _in_snapshot_list(settings: Mapping[str, str], topic: str) -> bool:
    """False when `snapshot.include.collection.list` is set and none of its regexes matches the
    table (`database.table`, taken from the topic's last two parts)."""
    patterns = [p.strip() for p in settings.get("snapshot.include.collection.list", "").split(",") if p.strip()]
    table = ".".join(topic.split(".")[-2:])
    return not patterns or any(re.fullmatch(p, table) for p in patterns)


def _alive_finding(
    rows: int, extent: LogExtent, settings: Mapping[str, str], samples: tuple[dict[str, Any], ...]
) -> Finding:
    if extent.resnapshot_at is not None:
        return Finding(
            "binlog_gap", rows,
            f"rows alive in the log but deleted in the database: the connector snapshotted the table again at "
            f"{extent.resnapshot_at} after streaming changes, so the binlog it had not read was gone "
            "(purged) and the deletes in that gap never reached the log",
            _setting(settings, "snapshot.mode"), samples=samples,
        )  # fmt: skip
    return Finding("lost_delete", rows, "rows alive in the log but deleted in the database", samples=samples)


def _value_findings(
    con: duckdb.DuckDBPyConnection, names: list[str], kinds: Mapping[str, str],
    settings: Mapping[str, str], in_scope: str,
) -> list[Finding]:  # fmt: skip
    if not names:
        return []
    index = {n: i for i, n in enumerate(names)}
    flags = ", ".join(f"(d.c{i} IS DISTINCT FROM l.c{i}) AS f{i}" for i in range(len(names)))
    con.execute(
        f"CREATE TEMP TABLE diffs AS SELECT k, {flags} FROM db d JOIN lg l USING (k) "
        f"WHERE {in_scope} AND ({' OR '.join(f'd.c{i} IS DISTINCT FROM l.c{i}' for i in range(len(names)))})"
    )
    counts = con.execute(f"SELECT {', '.join(f'count_if(f{i})' for i in range(len(names)))} FROM diffs").fetchone()
    differing = [n for n, c in zip(names, counts or (), strict=False) if c]
    if not differing:
        return []
    explained = {n: s for n in differing if (s := explaining_setting(kinds.get(n, "other"), settings)) is not None}
    findings = []
    unexplained = [n for n in differing if n not in explained]
    plain = " OR ".join(f"f{index[n]}" for n in unexplained) or "false"
    groups = [("lost_update", unexplained, f"({plain})")] if unexplained else []
    if explained:
        groups.insert(0, ("decoding", list(explained), f"NOT ({plain})"))
    for cause, columns, where in groups:
        rows = _count(con, f"SELECT k FROM diffs WHERE {where}")
        if not rows:
            continue
        shown = ", ".join(f'd.c{index[n]} AS "{n} (database)", l.c{index[n]} AS "{n} (log)"' for n in columns)
        samples = _samples(
            con, f"SELECT k, {shown} FROM diffs JOIN db d USING (k) JOIN lg l USING (k) WHERE {where}", []
        )
        settings_text = "; ".join(sorted(set(explained[n] for n in columns))) if cause == "decoding" else None
        explanation = (
            f"values differ because of how the connector encodes {', '.join(columns)}"
            if cause == "decoding"
            else f"values differ in {', '.join(columns)}: the log missed an update (or a setting not recognised)"
        )
        findings.append(Finding(cause, rows, explanation, settings_text, tuple(columns), samples))
    return findings
