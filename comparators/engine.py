"""reconcile(left, right, keys=...) -> Reconciliation, entirely inside DuckDB.

Both sides are loaded into DuckDB and paired by `comparators.plan`. The rows not proven
identical to a row on the other side by key and row hash (a small set) are found by
`comparators.candidates`; the candidates whose key is not duplicated are FULL OUTER JOINed
and compared column by column, tolerance rules applied, keeping only differing rows
(`comparators.comparison`). Statistics and samples come from that small diff table
(`comparators.summary`).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from comparators.aggregates import partition_aggregates
from comparators.candidates import count_side, find_candidates
from comparators.changelog import ChangelogSource
from comparators.comparison import detail_pass
from comparators.conversions import check_options, check_rules, refuse_lossy_keys
from comparators.errors import ComparatorError, EmptySideError, SourceError, SpecError
from comparators.plan import make_plan
from comparators.result import Reconciliation
from comparators.rules import Rule
from comparators.source import Source
from comparators.sources import open_source
from comparators.spec import InFlight, ReconcileSpec, build_spec
from comparators.sql import Params, describe, literal
from comparators.summary import summarise
from comparators.tables import LEFT, RIGHT

Progress = Callable[[str], None]
STRATEGIES = ("auto", "aggregate")
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    """DuckDB resources; the defaults keep a 10M-row pair well under 2 GB of RSS."""

    memory_limit: str = "1536MB"
    temp_directory: str | None = None  # None: a private directory removed afterwards
    threads: int | None = None  # None: DuckDB's default (all cores)
    # "auto": the integer-key plan when it applies (see the module docstring), else the
    # aggregate plan; "aggregate": always the aggregate plan. Results are identical.
    strategy: str = "auto"
    # An empty side is a result (every row of the other side is missing), and two empty
    # sides are clean; False refuses an empty side instead (`--require-rows`).
    allow_empty: bool = True


def reconcile(
    left: Any,
    right: Any,
    keys: Sequence[str],
    *,
    rules: Mapping[str, Rule | str | Sequence[Rule | str]] | None = None,
    ignore: Iterable[str] = (),
    rename: Mapping[str, str] | None = None,
    coerce: Mapping[str, str] | None = None,
    partition: str | None = None,
    aggregate_tolerance: Any = 0,
    samples: int = 10,
    in_flight: InFlight | None = None,
    naive_timezone: str = "UTC",
    left_position: str | None = None,
    right_position: str | None = None,
    baseline_left: Any = None,
    baseline_right: Any = None,
    name: str | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> Reconciliation:
    """Reconcile `left` (the batch side) with `right` (the stream side).

    Sides are anything `comparators.sources.open_source` takes. `rules` maps column
    names (`*` for the default) to rules or rule strings such as `abs:0.01`;
    `rename` maps right column names to left ones; `coerce` maps columns to the
    DuckDB type both sides are cast to; `naive_timezone` is the IANA zone a timestamp
    without time zone is read in where it meets an aware one (never the host's zone).
    `baseline_left` / `baseline_right` are a
    rerun of the batch / a replay of the stream, reconciled against their own side
    with the same spec to show the noise each side makes on its own.

    >>> import pandas as pd
    >>> a = pd.DataFrame({"id": [1, 2], "v": [1.0, 2.0]})
    >>> reconcile(a, a.assign(v=[1.0, 2.5]), ["id"]).mismatched_rows
    1
    """
    spec = build_spec(
        keys, rules=rules, ignore=ignore, rename=rename, coerce=coerce, partition=partition,
        aggregate_tolerance=aggregate_tolerance, samples=samples, in_flight=in_flight,
        naive_timezone=naive_timezone,
    )  # fmt: skip
    settings = settings or Settings()
    lsrc, rsrc = open_source(left), open_source(right)
    result = run(lsrc, rsrc, spec, settings, (left_position, right_position), progress)
    baselines = []
    if baseline_left is not None:
        noise = run(lsrc, open_source(baseline_left), spec, settings, (None, None), progress)
        baselines.append(("batch vs batch rerun", noise))
    if baseline_right is not None:
        noise = run(rsrc, open_source(baseline_right), spec, settings, (None, None), progress)
        baselines.append(("stream vs stream replay", noise))
    return dataclasses.replace(result, baselines=tuple(baselines), name=name)


def _connect(settings: Settings) -> tuple[duckdb.DuckDBPyConnection, str | None]:
    if settings.strategy not in STRATEGIES:
        raise SpecError(f"strategy {settings.strategy!r} is not one of {', '.join(STRATEGIES)}")
    if not _MEMORY.match(settings.memory_limit):
        raise SpecError(f"memory limit {settings.memory_limit!r} is not a size such as 1536MB or 4GB")
    owned = None
    temp = settings.temp_directory
    if temp is None:
        temp = owned = tempfile.mkdtemp(prefix="dualrun-duckdb-")
    con = duckdb.connect(":memory:")
    # Nothing may depend on the host: DuckDB would take its zone for TIMESTAMPTZ casts and display.
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = {literal(settings.memory_limit.strip())}")
    con.execute(f"SET temp_directory = {literal(temp)}")
    con.execute("SET preserve_insertion_order = false")  # lets big operators stream and spill
    if settings.threads:
        con.execute(f"SET threads = {int(settings.threads)}")
    return con, owned


def run(
    left: Source,
    right: Source,
    spec: ReconcileSpec,
    settings: Settings,
    positions: tuple[str | None, str | None] = (None, None),
    progress: Progress | None = None,
) -> Reconciliation:
    """One reconciliation of two sources (see `reconcile`)."""
    step = progress or (lambda _: None)
    started = time.perf_counter()
    if spec.in_flight and any(isinstance(s, ChangelogSource) and s.position is not None for s in (left, right)):
        raise SpecError("in-flight classification is only for sides without a source position")
    con, owned = _connect(settings)
    try:
        rkeys = [{v: k for k, v in spec.rename.items()}.get(k, k) for k in spec.keys]
        step("loading left")
        left.register(con, LEFT, list(spec.keys))
        step("loading right")
        right.register(con, RIGHT, rkeys)
        check_options(con, spec)
        plan = make_plan(spec, describe(con, LEFT), describe(con, RIGHT), left.label, right.label)
        check_rules(con, plan)
        rows, ranges = [], []
        lossy: dict[tuple[str, bool], tuple[int, Any]] = {}
        for name, src in ((LEFT, left), (RIGHT, right)):
            count, key_range, lost = count_side(con, plan, name, settings.strategy == "auto")
            if count == 0 and not settings.allow_empty:
                side = "left" if name == LEFT else "right"
                raise EmptySideError(f"the {side} side ({src.label}) has no rows; check the source and its filter")
            rows.append(count)
            ranges.append(key_range)
            lossy.update(lost)
        refuse_lossy_keys(plan, lossy)
        find_candidates(con, plan, spec, rows, ranges, step)
        step("comparing differing rows")
        params = Params()
        con.execute(detail_pass(plan, spec, params), params.values)
        result = summarise(con, plan, spec, rows, lossy)
        aggregates = None
        if spec.partition is not None:
            step("aggregating partitions")
            aggregates = partition_aggregates(con, plan, spec, LEFT, RIGHT)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        gone = ("No such file or directory", "No files found that match")
        if isinstance(exc, duckdb.IOException) and any(text in str(exc) for text in gone):
            # A changelog segment merged away (its rows now in the merged file) between listing
            # and reading: a race with the writer, not memory; readers retry on SourceError.
            raise SourceError(f"a file went away while it was read: {first}; run again") from exc
        raise ComparatorError(
            f"DuckDB failed while reconciling: {first}; if it ran out of memory, raise "
            "--memory-limit or point --temp-dir at a disk with space"
        ) from exc
    finally:
        con.close()
        if owned:
            shutil.rmtree(owned, ignore_errors=True)
    lpos = positions[0] or _position_of(left)
    rpos = positions[1] or _position_of(right)
    return dataclasses.replace(
        result,
        left=dataclasses.replace(result.left, label=left.label, position=lpos),
        right=dataclasses.replace(result.right, label=right.label, position=rpos),
        aggregates=aggregates,
        elapsed_s=time.perf_counter() - started,
    )


def _position_of(src: Source) -> str | None:
    if isinstance(src, ChangelogSource) and src.parsed is not None:
        return str(src.parsed)
    return None
