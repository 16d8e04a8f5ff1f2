"""Read pipeline runs back from the run-history database.

A pipeline run records one entry per output, named `<pipeline>/<output>`, one
after the other and all at the batch's position. Entries group into one run
while they share the pipeline prefix and the left (batch) position and no
output repeats; comparisons recorded without a prefix are runs of their own. A further side of an
output, `<pipeline>/<output>@<side>` (e.g. the table a sink writes, compared at its own position),
belongs to the run that holds `<pipeline>/<output>`.
The trend's streak is `comparators.history.streaks`, the one streak algorithm, over pipeline runs:
one source state (the batch position) counts once, judged by its latest pipeline run; a pipeline
run is clean only when every output (and side) the pipeline has recorded was compared in it and
is clean. The history is read through `comparators.history.read_checks`.
The database is opened read-only, so reading a report never creates or changes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import duckdb

from comparators.errors import HistoryError
from comparators.history import Check, Point, read_checks, streaks
from comparators.report.model import OutputRun, RunReport, TrendPoint, reconciliation_from_dict


def prefix_of(name: str) -> str:
    """The pipeline part of a history name ('shop-orders/orders_enriched' -> 'shop-orders/').

    >>> prefix_of("shop-orders/orders_enriched"), prefix_of("a.parquet vs b.parquet")
    ('shop-orders/', 'a.parquet vs b.parquet')
    """
    head, sep, _ = name.rpartition("/")
    return head + sep if sep else name


def output_of(name: str) -> str:
    """The output part of a history name.

    >>> output_of("shop-orders/orders_enriched"), output_of("orders")
    ('orders_enriched', 'orders')
    """
    return name.rpartition("/")[2]


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise HistoryError(
            f"no run history at {path}; record runs with `dualrun reconcile --spec` (or --history) first"
        )
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise HistoryError(f"cannot open history database {path}: {first}") from exc


def _entries(con: duckdb.DuckDBPyConnection, prefix: str) -> list[Check]:
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = like + "%" if prefix.endswith("/") else like
    return read_checks(con, "name LIKE ? ESCAPE '\\'", [pattern])


def side_of(name: str) -> str | None:
    """The history name of the output a further side belongs to, or None for an output itself.

    >>> side_of("shop-orders/orders_enriched@sink"), side_of("shop-orders/orders_enriched")
    ('shop-orders/orders_enriched', None)
    """
    head, sep, _ = name.rpartition("@")
    return head if sep and prefix_of(name).endswith("/") and "/" in head else None


def group_runs(entries: Sequence[Check]) -> list[list[Check]]:
    """Consecutive entries of one pipeline run: same batch position, each output once; a further
    side (`output@side`) joins the run of its output."""
    groups: list[list[Check]] = []
    for entry in entries:
        current = groups[-1] if groups else None
        names = {e.name for e in current} if current is not None else set()
        owner = side_of(entry.name)
        joins = (
            current is not None
            and prefix_of(entry.name).endswith("/")
            and entry.name not in names
            and (entry.left_position == current[0].left_position if owner is None else owner in names)
        )
        if current is not None and joins:
            current.append(entry)
        else:
            groups.append([entry])
    return groups


def _trend(groups: list[list[Check]]) -> list[TrendPoint]:
    """One point per pipeline run, its streak from `history.streaks`: a pipeline run is one piece of
    evidence (its batch position), clean only when every output and side the pipeline recorded
    was compared in it and each is clean (a run that compared only some outputs is not)."""
    expected = {e.name for group in groups for e in group}
    points = [
        Point(group[0].evidence, {e.name for e in group} == expected and all(e.verdict == "clean" for e in group),
              group[0].run_id)
        for group in groups
    ]  # fmt: skip
    return [
        TrendPoint(group[0].run_id, group[0].recorded_at, len(group), sum(e.unexplained for e in group),
                   len(behind), group[0].batch_run)
        for group, behind in zip(groups, streaks(points), strict=True)
    ]  # fmt: skip


def pipelines(path: str | Path) -> list[str]:
    """Every pipeline prefix (or comparison name) in the history, most recently recorded first."""
    con = _connect(Path(path))
    try:
        rows = con.execute("SELECT name FROM runs ORDER BY seq DESC").fetchall()
    finally:
        con.close()
    seen: dict[str, None] = {}
    for (name,) in rows:
        seen.setdefault(prefix_of(name), None)
    return list(seen)


def load_run(
    path: str | Path,
    run: str = "latest",
    pipeline: str | None = None,
    *,
    trend_limit: int = 60,
    min_parity_streak: int | None = None,
) -> RunReport:
    """The run `run` ('latest' or an entry's run id) of `pipeline` ('shop-orders' or None: the newest).

    Raises HistoryError when the history, the pipeline or the run is not there.
    """
    path = Path(path)
    con = _connect(path)
    try:
        if run == "latest":
            prefix = pipeline.rstrip("/") + "/" if pipeline else None
            if prefix is None:
                row = con.execute("SELECT name FROM runs ORDER BY seq DESC LIMIT 1").fetchone()
                if row is None:
                    raise HistoryError(f"the run history {path} has no runs yet")
                prefix = prefix_of(row[0])
        else:
            row = con.execute("SELECT name FROM runs WHERE run_id = ?", [run]).fetchone()
            if row is None:
                raise HistoryError(f"run {run!r} is not in the history {path}; list runs with comparators.history.runs")
            prefix = prefix_of(row[0])
        groups = group_runs(_entries(con, prefix))
        if not groups:
            names = con.execute("SELECT DISTINCT name FROM runs").fetchall()
            known = ", ".join(sorted({prefix_of(n) for (n,) in names}))
            raise HistoryError(
                f"no runs of {prefix.rstrip('/')!r} in the history {path}" + (f"; it has {known}" if known else "")
            )
        index = (
            len(groups) - 1
            if run == "latest"
            else next(i for i, g in enumerate(groups) if any(e.run_id == run for e in g))
        )
        chosen = groups[index]
        ids = [e.run_id for e in chosen]
        stored = dict(
            con.execute(
                "SELECT run_id, result FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
            ).fetchall()
        )
    except duckdb.Error as exc:
        raise HistoryError(f"cannot read the run history {path}: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()
    outputs = tuple(
        OutputRun(
            output_of(e.name), e.name, e.run_id, e.recorded_at, reconciliation_from_dict(json.loads(stored[e.run_id]))
        )
        for e in chosen
    )
    trend = _trend(groups[: index + 1])[-trend_limit:]
    return RunReport(
        title=prefix.rstrip("/"),
        outputs=outputs,
        trend=tuple(trend),
        min_parity_streak=min_parity_streak,
    )
