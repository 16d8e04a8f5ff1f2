"""Gather what a run report shows beyond the history: key change histories and the stream's lag.

`comparators.report` renders; this module knows where a spec keeps things: the
batch warehouse (every batch run's rows), the stream changelog (every version of
every key, with its source position and times) and the source database itself.
The notebook uses the same functions to drill into one key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa

from comparators.report.logcheck import ChangeLogCheck
from comparators.report.model import CheckOutcome, KeyEvent, KeyHistory, LagPoint, RunReport
from comparators.report.runs import load_run as load_history_run
from comparators.result import jsonable
from comparators.sql import ident, literal
from migrate.batch import RUNS_TABLE, driver_sql, source_url, translate
from migrate.spec import PipelineSpec

Key = tuple[tuple[str, Any], ...]
BATCH_RUNS_SHOWN = 5  # the newest batch runs shown per key; older ones rarely explain today's difference
_SEP = "\x1f"  # joins composite key values into one comparable string


def _key_text(key: Key) -> str:
    return _SEP.join(str(jsonable(v)) for _, v in key)


def _key_expr(columns: Sequence[str], prefix: str = "") -> str:
    # Keys arrive from JSON (dates as ISO strings, Decimals as strings): compare as text on both sides.
    casts = ", ".join(f"CAST({prefix}{ident(c)} AS VARCHAR)" for c in columns)
    return f"concat_ws({literal(_SEP)}, {casts})"


def _changelog_glob(spec: PipelineSpec, output: str) -> str | None:
    folder = spec.changelog_path / output
    return str(folder / "*.parquet") if any(folder.glob("*.parquet")) else None


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _values(row: dict[str, Any], skip: set[str]) -> tuple[tuple[str, Any], ...]:
    return tuple((c, v) for c, v in row.items() if c not in skip and not c.startswith("__"))


def _batch_events(spec: PipelineSpec, output: str, keys: list[Key]) -> dict[str, list[KeyEvent]]:
    """Per key: its row in each of the newest batch runs, or 'absent' where a run did not have it."""
    warehouse = spec.warehouse_path
    events: dict[str, list[KeyEvent]] = {_key_text(k): [] for k in keys}
    if not warehouse.exists() or not keys:
        return events
    columns = [c for c, _ in keys[0]]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if output not in tables or RUNS_TABLE not in tables:
            return events
        runs = con.execute(
            f"SELECT run_id, started_at, pos_file, pos_offset, gtid FROM {RUNS_TABLE} ORDER BY started_at DESC LIMIT ?",
            [BATCH_RUNS_SHOWN],
        ).fetchall()
        rows = _dicts(
            con.execute(
                f"SELECT {_key_expr(columns)} AS __key, * FROM {ident(output)} "
                "WHERE __batch_run IN (SELECT unnest(?::VARCHAR[])) "
                f"AND {_key_expr(columns)} IN (SELECT unnest(?::VARCHAR[]))",
                [[r[0] for r in runs], list(events)],
            )
        )
    found = {(row["__key"], row["__batch_run"]): row for row in rows}
    for run_id, started, pos_file, pos_offset, gtid in reversed(runs):
        side = "log run" if run_id.endswith("~log") else "batch run"  # migrate.logbatch: over the change log
        at = f"{side} {run_id} @ {pos_file}:{pos_offset}" + (f" gtid {gtid}" if gtid else "")
        when = started.astimezone(UTC).replace(tzinfo=None) if started.tzinfo else started
        for key_text, out in events.items():
            row = found.get((key_text, run_id))
            if row is None:
                out.append(KeyEvent("batch", at, "absent", (), when))
            else:
                out.append(KeyEvent("batch", at, "row", _values(row, set(columns)), when))
    return events


def _stream_events(spec: PipelineSpec, output: str, keys: list[Key]) -> dict[str, list[KeyEvent]]:
    """Per key: every version in the stream's changelog, in position order, with op and times."""
    events: dict[str, list[KeyEvent]] = {_key_text(k): [] for k in keys}
    pattern = _changelog_glob(spec, output)
    if pattern is None or not keys:
        return events
    columns = [c for c, _ in keys[0]]
    with duckdb.connect() as con:
        rows = _dicts(
            con.execute(
                f"SELECT {_key_expr(columns)} AS __key, * FROM read_parquet({literal(pattern)}, union_by_name = true) "
                f"WHERE {_key_expr(columns)} IN (SELECT unnest(?::VARCHAR[])) "
                'ORDER BY "__pos_order" NULLS FIRST, "__processed_at"',
                [list(events)],
            )
        )
    for row in rows:
        at = f"{row.get('__pos_file')}:{row.get('__pos_offset')}" if row.get("__pos_file") else "snapshot"
        if row.get("__gtid"):
            at += f" gtid {row['__gtid']}"
        ts = row.get("__source_ts_ms")
        when = datetime.fromtimestamp(ts / 1000, UTC).replace(tzinfo=None) if ts else row.get("__processed_at")
        events[row["__key"]].append(KeyEvent("stream", at, str(row.get("__op")), _values(row, set(columns)), when))
    return events


def _source_events(spec: PipelineSpec, output: str, keys: list[Key]) -> dict[str, list[KeyEvent]]:
    """Per key: what the batch query computes from the source right now (outside any snapshot)."""
    events: dict[str, list[KeyEvent]] = {_key_text(k): [] for k in keys}
    if output not in spec.outputs or not keys:
        return events
    columns = [c for c, _ in keys[0]]
    # MariaDB/MySQL: CAST(... AS CHAR) renders dates as ISO, matching the JSON form of the key.
    key_sql = "CONCAT_WS(CHAR(31), " + ", ".join(f"CAST(q.`{c}` AS CHAR)" for c in columns) + ")"
    marks = ", ".join(["%s"] * len(events))
    engine = sa.create_engine(source_url(spec), connect_args={"connect_timeout": 5})
    now = datetime.now(UTC).replace(tzinfo=None)
    query = driver_sql(spec.outputs[output].batch.sql_text())
    try:
        with engine.connect() as conn:
            result = conn.exec_driver_sql(
                f"SELECT {key_sql} AS k, q.* FROM ({query}) AS q WHERE {key_sql} IN ({marks})",
                tuple(events),
            )
            names = list(result.keys())
            for raw in result.fetchall():
                row = dict(zip(names, raw, strict=True))
                events[row.pop("k")].append(KeyEvent("source", "now", "row", _values(row, set(columns)), now))
    except sa.exc.DBAPIError as exc:
        raise translate(exc, spec) from None
    finally:
        engine.dispose()
    for out in events.values():
        if not out:
            out.append(KeyEvent("source", "now", "absent", (), now))
    return events


def key_histories(spec: PipelineSpec, output: str, keys: Sequence[Key], *, source: bool = False) -> list[KeyHistory]:
    """Every known version of each key of `output`: batch runs, stream changelog and (optionally) the source."""
    wanted = list(dict.fromkeys(tuple(k) for k in keys))
    if not wanted:
        return []
    sides = [_batch_events(spec, output, wanted), _stream_events(spec, output, wanted)]
    if source:
        sides.append(_source_events(spec, output, wanted))
    return [KeyHistory(output, key, tuple(e for side in sides for e in side.get(_key_text(key), []))) for key in wanted]


def key_history(spec: PipelineSpec, output: str, key: dict[str, Any], *, source: bool = True) -> KeyHistory:
    """One key's history, e.g. `key_history(spec, "orders_enriched", {"order_id": 42})`."""
    return key_histories(spec, output, [tuple(key.items())], source=source)[0]


def latency_series(
    spec: PipelineSpec, since: datetime, until: datetime, buckets: int = 120
) -> tuple[LagPoint, ...] | None:
    """Seconds between a change's source commit and the stream writing it, worst per time bucket.

    Read from the changelog of every output (no extra bookkeeping in the job): each
    row carries its source commit time and when the job wrote it.
    """
    patterns = [p for p in (_changelog_glob(spec, o) for o in spec.outputs) if p]
    if not patterns:
        return None
    span = max((until - since).total_seconds(), 1.0)
    width = span / buckets
    union = " UNION ALL ".join(
        f'SELECT "__processed_at" AS t_at, "__source_ts_ms" AS ts FROM read_parquet({literal(p)}, union_by_name = true)'
        f""" WHERE "__op" <> 'r' AND "__source_ts_ms" IS NOT NULL"""
        for p in patterns
    )
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT floor((epoch(t_at) - epoch(?::TIMESTAMP)) / ?) AS b, max(epoch(t_at) - ts / 1000.0) AS behind "
            f"FROM ({union}) WHERE t_at BETWEEN ?::TIMESTAMP AND ?::TIMESTAMP GROUP BY b ORDER BY b",
            [since, width, since, until],
        ).fetchall()
    if not rows:
        return None
    return tuple(LagPoint(since + timedelta(seconds=float(b) * width), max(0.0, float(v))) for b, v in rows)


def build_report(
    spec: PipelineSpec,
    run: str = "latest",
    *,
    history_path: Path | None = None,
    checks: Any = None,
    histories: bool = True,
    source: bool = False,
) -> RunReport:
    """A run of `spec` from its history, with key histories for every sampled key and the stream's latency.

    `checks` is an evaluated `migrate.checklist.Checklist` to include, or None. The latest
    `dualrun cdc verify` of the pipeline recorded in the same history, if any, is included too.
    """
    path = history_path or spec.history_path
    report = load_history_run(
        path, run, pipeline=None if run != "latest" else spec.name, min_parity_streak=spec.checklist.min_parity_streak
    )
    gathered: list[KeyHistory] = []
    if histories:
        for output in report.outputs:
            keys = [s.key for s in output.result.samples]
            # A sink side (`orders_enriched@sink`) samples keys of its output: their batch and stream versions.
            gathered += key_histories(spec, output.output.partition("@")[0], keys, source=source)
    lag = None
    if report.recorded_at is not None:
        until = report.recorded_at
        lag = latency_series(spec, until - timedelta(minutes=30), until)
    outcomes: tuple[CheckOutcome, ...] = ()
    verdict = None
    if checks is not None:
        outcomes = tuple(CheckOutcome.from_dict(c.to_dict()) for c in checks.checks)
        verdict = checks.verdict
    from migrate.verify import history as verify_history

    verified = verify_history.latest(path, spec.name)
    return RunReport(
        title=report.title,
        outputs=report.outputs,
        trend=report.trend,
        min_parity_streak=report.min_parity_streak,
        lag=lag,
        lag_unit="seconds behind the source",
        key_histories=tuple(gathered),
        checks=outcomes,
        checks_verdict=verdict,
        generated_at=datetime.now(UTC).replace(tzinfo=None),
        change_log=ChangeLogCheck.from_dict(verified.result) if verified is not None else None,
    )
