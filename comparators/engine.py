"""reconcile(left, right, keys=...) -> Reconciliation, entirely inside DuckDB.

Every row is reduced to its key and a 64-bit hash of its compared columns (brought
to their comparison types by `comparators.types`; a value whose conversion was not
exact also hashes its raw text, so a lossy conversion never makes rows identical);
rows whose key and hash match a row on the other side are identical and dropped.
Two different rows share a hash with probability ~2**-64 per differing row. What
remains (one-sided, duplicated or differing keys; a small set) is read in full and
compared column by column. Memory stays bounded and a key that repeats thousands of
times never explodes a join. Two plans find the candidates:

* Integer-key plan (a single integer key, no NULL keys, no repeated key on either
  side): the left's uniqueness is proven exactly and cheaply with bitmaps of its
  key values (`bitstring_agg`, one bit per value in blocks of 65,536; one scan of
  the key column). An anti join ON key AND hash, probed by the full left rows and
  built from the right's (key, hash) only, yields the left rows without an
  identical right row, already in full. The right is read once more, keeping the
  rows whose key is not in the left's bitmap once those candidates' keys are
  removed from it; counting what was kept proves the right's keys distinct (if
  not, the aggregate plan runs instead). Each left value is decoded once, each
  right value twice.
* Aggregate plan (any other key, or when a side repeats a key): one GROUP BY over
  both sides (UNION ALL) per key counts rows per side and XORs side-marked row
  hashes; keys present once on each side with equal hashes are dropped, the rest
  (one-sided, duplicated, hash-differing) are read back from both sides.

Then the candidates whose key is not duplicated are FULL OUTER JOINed; per-column
statuses (equal, within tolerance, mismatch) are computed and only differing rows
are materialised. Statistics and samples come from that small diff table.
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
from comparators.changelog import ChangelogSource
from comparators.conversions import (
    Lossy,
    check_options,
    check_rules,
    lossy_aggregates,
    notes,
    read_lossy,
    refuse_lossy_keys,
)
from comparators.errors import ComparatorError, EmptySideError, SourceError, SpecError
from comparators.plan import Column, Plan, make_plan
from comparators.result import ColumnStats, Reconciliation, Sample, Side
from comparators.rules import Rule
from comparators.source import Source
from comparators.sources import open_source
from comparators.spec import InFlight, ReconcileSpec, build_spec
from comparators.sql import Params, describe, ident, literal, one_row
from comparators.types import family, is_integer

Progress = Callable[[str], None]
LEFT, RIGHT, DIFF = "__left", "__right", "__diff"
KEYS, LROWS, RROWS, COUNTS = "__keys", "__lrows", "__rrows", "__counts"
BITS, MATCHED = "__bits", "__matched"
# Right-side hashes are XORed with this constant, so one identical row per side XORs to
# it, while two identical rows on one side XOR to 0 (and are kept as duplicates).
SIDE_MARK = 0x5555555555555555
# The integer-key plan's key bitmaps come in blocks of BLOCK_BITS bits (8 KiB) and
# span at most BITMAP_MAX_BITS key values (64 MiB) and BITMAP_BITS_PER_ROW per row of
# both sides; sparser keys use the aggregate plan.
BLOCK_SHIFT = 16
BLOCK_BITS = 1 << BLOCK_SHIFT
BITMAP_MAX_BITS = 1 << 29
BITMAP_BITS_PER_ROW = 16
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
            count, key_range, lost = _count(con, plan, name, settings.strategy == "auto")
            if count == 0 and not settings.allow_empty:
                side = "left" if name == LEFT else "right"
                raise EmptySideError(f"the {side} side ({src.label}) has no rows; check the source and its filter")
            rows.append(count)
            ranges.append(key_range)
            lossy.update(lost)
        refuse_lossy_keys(plan, lossy)
        step("checking keys")
        lo = _left_key_bitmaps(con, plan, rows, ranges)
        if lo is not None:
            step("joining row hashes")
            if not _join_pass(con, plan, spec, lo, rows[1]):
                step("the right side repeats a key: starting over with the aggregate plan")
                for table in (BITS, MATCHED, LROWS, RROWS, COUNTS):
                    con.execute(f"DROP TABLE {table}")
                lo = None
        if lo is None:
            step("hashing rows")
            con.execute(_hash_pass(plan))
            step("reading differing rows")
            for sql in _candidate_rows(plan, spec):
                con.execute(sql)
        dups = one_row(
            con,
            f"SELECT count(*) FILTER (nl > 1), coalesce(sum(nl) FILTER (nl > 1), 0),"
            f" count(*) FILTER (nr > 1), coalesce(sum(nr) FILTER (nr > 1), 0),"
            f" coalesce(sum(nl), 0) - count(*) FILTER (nl = 1 AND nr = 1) FROM {COUNTS}",
        )
        step("comparing differing rows")
        params = Params()
        con.execute(_detail_pass(plan, spec, params), params.values)
        result = _statistics(con, plan, spec, rows, dups, lossy)
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


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = one_row(con, sql)
    return int(row[0]) if row and row[0] is not None else 0


def _integer_key(plan: Plan) -> bool:
    return len(plan.keys) == 1 and is_integer(plan.keys[0].pairing.compared_as)


def _count(
    con: duckdb.DuckDBPyConnection, plan: Plan, side: str, want_range: bool
) -> tuple[int, tuple[int, int] | None, Lossy]:
    """A side's row count, for a single integer key without NULLs its min and max, and
    the values each verified conversion lost (see `comparators.conversions`)."""
    is_left = side == LEFT
    aggs = ["count(*)"]
    ranged = want_range and _integer_key(plan)
    if ranged:
        key = plan.keys[0].value(is_left, "t.")
        aggs += [f"count({key})", f"min({key})::HUGEINT", f"max({key})::HUGEINT"]
    lost = lossy_aggregates(plan, is_left)
    row = one_row(con, f"SELECT {', '.join(aggs + lost)} FROM {ident(side)} AS t")
    n, lossy = int(row[0]), read_lossy(plan, is_left, row[len(aggs) :])
    if not ranged or row[1] != n or row[2] is None:
        return n, None, lossy
    return n, (int(row[2]), int(row[3])), lossy


def _blocks(key: str, lo: int) -> tuple[str, str]:
    """A key's bitmap block and its bit within the block, for keys in [lo, lo + 2**31)."""
    rel = f"(({key})::BIGINT - ({lo})::BIGINT)"
    return f"({rel} >> {BLOCK_SHIFT})::INTEGER", f"({rel} & {BLOCK_BITS - 1})::INTEGER"


def _bitmap(key: str, lo: int, source: str) -> str:
    """One bitmap per block of BLOCK_BITS key values: a bit for each key present."""
    block, bit = _blocks(key, lo)
    return f"SELECT {block} AS b, bitstring_agg({bit}, 0, {BLOCK_BITS - 1}) AS bits FROM {source} AS t GROUP BY ALL"


def _left_key_bitmaps(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    rows: list[int],
    ranges: list[tuple[int, int] | None],
) -> int | None:
    """Whether the integer-key plan may apply: a single integer key without NULLs on
    either side whose left values are all distinct, counted exactly with bitmaps (one
    scan of the left key column), left in BITS. Returns the low end of both sides' key
    range; None when the plan does not apply. (The right is checked by `_join_pass`.)"""
    if any(r is None for r in ranges):
        return None
    lo = min(r[0] for r in ranges if r is not None)
    hi = max(r[1] for r in ranges if r is not None)
    span = hi - lo + 1
    if span < max(rows) or lo < -(2**63) or hi >= 2**63:
        return None  # fewer values than rows (a key repeats), or not a BIGINT range
    if span > max(BLOCK_BITS, min(BITMAP_MAX_BITS, BITMAP_BITS_PER_ROW * sum(rows))):
        return None  # sparse keys: the bitmaps would be too large
    con.execute(f"CREATE TEMP TABLE {BITS} AS {_bitmap(plan.keys[0].left('t.'), lo, LEFT)}")
    if _scalar(con, f"SELECT sum(bit_count(bits)) FROM {BITS}") != rows[0]:
        con.execute(f"DROP TABLE {BITS}")
        return None
    return lo


def _row_hash(exprs: list[str]) -> str:
    return f"hash({', '.join(exprs)})" if exprs else "0::UBIGINT"


def _hashed(plan: Plan, is_left: bool, alias: str = "") -> list[str]:
    return [part for c in plan.columns for part in c.hashed(is_left, alias)]


def _hash_pass(plan: Plan) -> str:
    """Keys that are not exactly one identical row per side: one GROUP BY, two aggregates."""
    kcols = ", ".join(f"k{i}" for i in range(len(plan.keys)))
    lsel = ", ".join(f"{k.left()} AS k{i}" for i, k in enumerate(plan.keys))
    rsel = ", ".join(f"{k.right()} AS k{i}" for i, k in enumerate(plan.keys))
    lhash = _row_hash(_hashed(plan, True))
    rhash = f"xor({_row_hash(_hashed(plan, False))}, {SIDE_MARK}::UBIGINT)"
    return (
        f"CREATE TEMP TABLE {KEYS} AS SELECT {kcols} FROM ("
        f"SELECT {lsel}, {lhash} AS h FROM {LEFT} UNION ALL SELECT {rsel}, {rhash} FROM {RIGHT})"
        f" GROUP BY {kcols} HAVING NOT (count(*) = 2 AND bit_xor(h) = {SIDE_MARK}::UBIGINT)"
    )


def row_exprs(plan: Plan, spec: ReconcileSpec, side: str) -> list[str]:
    """One side's keys (k0..), compared columns (c0..), the raw values of converted
    columns (w0..), whether a verified conversion was exact (o0..) and the in-flight
    column (fl), from `t`."""
    pick = Column.left if side == LEFT else Column.right
    is_left = side == LEFT
    exprs = [f"{pick(k, 't.')} AS k{i}" for i, k in enumerate(plan.keys)]
    exprs += [f"{pick(c, 't.')} AS c{j}" for j, c in enumerate(plan.columns)]
    exprs += [f"{c.raw(is_left, 't.')} AS w{j}" for j, c in enumerate(plan.columns) if c.converted]
    exprs += [f"{c.exact(is_left, 't.')} AS o{j}" for j, c in enumerate(plan.columns) if c.checked]
    if spec.in_flight is not None:
        col = spec.in_flight.column
        name = col if side == LEFT else {v: k for k, v in spec.rename.items()}.get(col, col)
        exprs.append(f"t.{ident(name)} AS fl")
    return exprs


def _join_pass(con: duckdb.DuckDBPyConnection, plan: Plan, spec: ReconcileSpec, lo: int, right_rows: int) -> bool:
    """The integer-key plan: both sides' candidate rows and rows per key. False when
    the right side turns out to repeat a key (then the aggregate plan must run).

    An anti join ON key AND hash yields the left rows with no identical right row, in
    full: the left streams through it (the probe side) and only the right's (key, hash)
    is hashed (the build side, pinned, as DuckDB would otherwise build on the side with
    fewer rows). A right row is a candidate when its key is not among the left keys
    that found an identical row (MATCHED: the left's key bitmaps minus the candidates'
    keys). The right's keys are distinct exactly when no candidate key repeats on the
    right and every MATCHED key accounts for one right row: each has at least one, so
    right rows - candidate right rows = bits in MATCHED leaves no room for a repeat.
    """
    key = plan.keys[0]
    lparts = []
    for j, c in enumerate(plan.columns):
        lparts.append(f"c{j}")
        if c.checked:  # the same parts as Column.hashed, from the selected columns
            lparts.append(f"CASE WHEN o{j} THEN NULL ELSE CAST(w{j} AS VARCHAR) END")
    lhash = _row_hash(lparts)
    rhash = _row_hash(_hashed(plan, False, "t."))
    con.execute("SET disabled_optimizers = 'build_side_probe_side'")
    try:
        con.execute(
            f"CREATE TEMP TABLE {LROWS} AS SELECT l.* EXCLUDE (h), TRUE AS present FROM"
            f" (SELECT *, {lhash} AS h FROM (SELECT {', '.join(row_exprs(plan, spec, LEFT))}"
            f" FROM {LEFT} AS t)) AS l ANTI JOIN"
            f" (SELECT {key.right('t.')} AS k0, {rhash} AS h FROM {RIGHT} AS t) AS r"
            f" ON l.k0 = r.k0 AND l.h = r.h"
        )
    finally:
        con.execute("RESET disabled_optimizers")
    con.execute(
        f"CREATE TEMP TABLE {MATCHED} AS SELECT a.b, CASE WHEN c.bits IS NULL THEN a.bits"
        f" ELSE xor(a.bits, c.bits) END AS bits FROM {BITS} AS a"
        f" LEFT JOIN ({_bitmap('t.k0', lo, LROWS)}) AS c ON a.b = c.b"
    )
    block, bit = _blocks(key.right("t."), lo)
    con.execute(
        f"CREATE TEMP TABLE {RROWS} AS SELECT {', '.join(row_exprs(plan, spec, RIGHT))},"
        f" TRUE AS present FROM {RIGHT} AS t LEFT JOIN {MATCHED} AS m ON {block} = m.b"
        f" WHERE m.bits IS NULL OR get_bit(m.bits, {bit}) = 0"
    )
    con.execute(_counts(len(plan.keys)))
    candidates, matched, repeated = one_row(
        con,
        f"SELECT (SELECT count(*) FROM {RROWS}),"
        f" (SELECT coalesce(sum(bit_count(bits)), 0) FROM {MATCHED}),"
        f" (SELECT count(*) FROM {COUNTS} WHERE nr > 1)",
    )
    return repeated == 0 and right_rows - candidates == matched


def _candidate_rows(plan: Plan, spec: ReconcileSpec) -> list[str]:
    """Both sides' rows for the kept keys (a small set), and rows per key on each side."""
    out = []
    for table, side in ((LROWS, LEFT), (RROWS, RIGHT)):
        pick = Column.left if side == LEFT else Column.right
        on = " AND ".join(f"{pick(k, 't.')} IS NOT DISTINCT FROM c.k{i}" for i, k in enumerate(plan.keys))
        out.append(
            f"CREATE TEMP TABLE {table} AS SELECT {', '.join(row_exprs(plan, spec, side))},"
            f" TRUE AS present FROM {side} AS t SEMI JOIN {KEYS} AS c ON {on}"
        )
    out.append(_counts(len(plan.keys)))
    return out


def _counts(nk: int) -> str:
    """Rows per candidate key on each side."""
    kcols = ", ".join(f"k{i}" for i in range(nk))
    keys = ", ".join(f"coalesce(l.k{i}, r.k{i}) AS k{i}" for i in range(nk))
    on = " AND ".join(f"l.k{i} IS NOT DISTINCT FROM r.k{i}" for i in range(nk))
    return (
        f"CREATE TEMP TABLE {COUNTS} AS SELECT {keys}, coalesce(l.n, 0) AS nl,"
        f" coalesce(r.n, 0) AS nr FROM (SELECT {kcols}, count(*) AS n FROM {LROWS} GROUP BY ALL)"
        f" AS l FULL OUTER JOIN (SELECT {kcols}, count(*) AS n FROM {RROWS} GROUP BY ALL) AS r"
        f" ON {on}"
    )


def _side(plan: Plan, table: str) -> str:
    """One side's candidate rows whose key is not duplicated on either side."""
    on = " AND ".join(f"t.k{i} IS NOT DISTINCT FROM c.k{i}" for i in range(len(plan.keys)))
    return f"SELECT * FROM {table} AS t SEMI JOIN (SELECT * FROM {COUNTS} WHERE nl <= 1 AND nr <= 1) AS c ON {on}"


def column_status(col: Column, j: int, params: Params, left: str = "l", right: str = "r") -> str:
    """SQL UTINYINT for column `j` of two rows `left` and `right` selected with `row_exprs` (and a
    `present` flag): 0 equal, 1 different but within a rule of the column, 2 a mismatch; NULL
    when a side has no row."""
    lv, rv = f"{left}.c{j}", f"{right}.c{j}"
    explained = " OR ".join(r.explains(lv, rv, col.pairing.compared_as, params) for r in col.rules) or "FALSE"
    lo, ro, lw, rw = f"{left}.o{j}", f"{right}.o{j}", f"{left}.w{j}", f"{right}.w{j}"
    # A value that did not convert exactly is compared as it is: equal only to the same.
    lossy = (
        f" WHEN NOT ({lo} AND {ro}) THEN CASE WHEN NOT {lo} AND NOT {ro} AND"
        f" CAST({lw} AS VARCHAR) IS NOT DISTINCT FROM CAST({rw} AS VARCHAR) THEN 0 ELSE 2 END"
        if col.checked
        else ""
    )
    return (
        f"CASE WHEN {left}.present IS NULL OR {right}.present IS NULL THEN NULL{lossy}"
        f" WHEN {lv} IS NOT DISTINCT FROM {rv} THEN 0"
        f" WHEN coalesce({explained}, FALSE) THEN 1 ELSE 2 END::UTINYINT"
    )


def _detail_pass(plan: Plan, spec: ReconcileSpec, params: Params) -> str:
    nk = len(plan.keys)
    keys = ", ".join(f"coalesce(l.k{i}, r.k{i}) AS k{i}" for i in range(nk))
    on = " AND ".join(f"l.k{i} IS NOT DISTINCT FROM r.k{i}" for i in range(nk))
    values = ", ".join(_diff_values(plan))
    statuses = [f"{column_status(col, j, params)} AS s{j}" for j, col in enumerate(plan.columns)]
    flight = "FALSE"
    if spec.in_flight is not None:
        since, zone = spec.in_flight.since, literal(spec.naive_timezone)
        cut = params.bind(since)
        after = []
        for alias, duck_type in zip(("l", "r"), plan.in_flight_types, strict=True):
            # A naive cutoff or column is wall-clock time in the naive-timestamp zone.
            aware = family(duck_type) == "timestamptz"
            if since.tzinfo is None:
                bound = f"timezone({zone}, {cut}::TIMESTAMP)" if aware else f"{cut}::TIMESTAMP"
            else:
                bound = f"{cut}::TIMESTAMPTZ" if aware else f"timezone({zone}, {cut}::TIMESTAMPTZ)"
            after.append(f"coalesce({alias}.fl > {bound}, FALSE)")
        flight = f"({' OR '.join(after)})"
    select = ", ".join(
        [keys, "l.present IS NOT NULL AS in_l", "r.present IS NOT NULL AS in_r"]
        + ([values] if values else [])
        + statuses
        + [f"{flight} AS f"]
    )
    differs = " OR ".join(["NOT (in_l AND in_r)"] + [f"s{j} > 0" for j in range(len(plan.columns))])
    return (
        f"CREATE TEMP TABLE {DIFF} AS SELECT * FROM (SELECT {select}"
        f" FROM ({_side(plan, LROWS)}) AS l FULL OUTER JOIN ({_side(plan, RROWS)}) AS r"
        f" ON {on}) WHERE {differs}"
    )


def _diff_values(plan: Plan) -> list[str]:
    """Per column: compared values (l, r), raw values of converted columns (lw, rw) and
    whether a verified conversion was exact (lo, ro)."""
    out = []
    for j, col in enumerate(plan.columns):
        out.append(f"l.c{j} AS l{j}, r.c{j} AS r{j}")
        if col.converted:
            out.append(f"l.w{j} AS lw{j}, r.w{j} AS rw{j}")
        if col.checked:
            out.append(f"l.o{j} AS lo{j}, r.o{j} AS ro{j}")
    return out


def _raw(j: int, col: Column) -> tuple[str, str]:
    """The DIFF table's columns holding what each side really holds."""
    return (f"lw{j}", f"rw{j}") if col.converted else (f"l{j}", f"r{j}")


def _abs_diff(j: int, col: Column) -> str:
    fam = family(col.pairing.compared_as)
    exact = f" AND lo{j} AND ro{j}" if col.checked else ""
    if fam in ("exact", "float"):
        # Integers subtract as HUGEINT: BIGINT extremes would overflow.
        lv, rv = (f"l{j}::HUGEINT", f"r{j}::HUGEINT") if is_integer(col.pairing.compared_as) else (f"l{j}", f"r{j}")
        return f"max(abs({lv} - {rv})) FILTER (s{j} > 0 AND NOT f{exact})"
    if fam in ("time", "timestamptz"):
        return f"max(abs(epoch_us(l{j}) - epoch_us(r{j})) / 1e6) FILTER (s{j} > 0 AND NOT f{exact})"
    return "NULL"


def _statistics(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    spec: ReconcileSpec,
    rows: list[int],
    dups: tuple[Any, ...],
    lossy: Lossy,
) -> Reconciliation:
    nc = len(plan.columns)
    any_mismatch = " OR ".join(f"s{j} = 2" for j in range(nc)) or "FALSE"
    any_within = " OR ".join(f"s{j} = 1" for j in range(nc)) or "FALSE"
    matched = "in_l AND in_r AND NOT f"
    conditions = {
        "missing_in_stream": "in_l AND NOT in_r AND NOT f",
        "missing_in_batch": "in_r AND NOT in_l AND NOT f",
        "value_mismatch": f"{matched} AND ({any_mismatch})",
        "within_tolerance": f"{matched} AND NOT ({any_mismatch}) AND ({any_within})",
        "in_flight": "f",
    }
    aggs = [f"count(*) FILTER ({cond})" for cond in conditions.values()]
    for j, col in enumerate(plan.columns):
        aggs += [
            f"count(*) FILTER (s{j} = 2 AND NOT f)",
            f"count(*) FILTER (s{j} = 1 AND NOT f)",
            f"count(*) FILTER (s{j} = 2 AND NOT f AND (({_raw(j, col)[0]} IS NULL) <> ({_raw(j, col)[1]} IS NULL)))",
            _abs_diff(j, col),
        ]
    stats = one_row(con, f"SELECT {', '.join(aggs)} FROM {DIFF}")
    ol, orr, mism, within, flight = (int(v) for v in stats[:5])
    columns = []
    for j, col in enumerate(plan.columns):
        m, w, nv, mx = stats[5 + 4 * j : 9 + 4 * j]
        columns.append(
            ColumnStats(
                name=col.name, left_type=col.pairing.left_type, right_type=col.pairing.right_type,
                compared_as=col.pairing.compared_as, rules=tuple(r.describe() for r in col.rules),
                mismatches=int(m), within_tolerance=int(w), null_vs_value=int(nv), max_abs_diff=mx,
                right_name=col.right_name if col.right_name != col.name else None,
                lossy_left=lossy.get((col.name, True), (0, None))[0],
                lossy_right=lossy.get((col.name, False), (0, None))[0],
            )
        )  # fmt: skip
    dkl, drl, dkr, drr, left_unmatched = (int(v) for v in dups)  # unmatched among kept keys
    samples = _samples(con, plan, spec, conditions) if spec.samples else ()
    return Reconciliation(
        keys=spec.keys,
        left=Side("", rows[0], dkl, drl),
        right=Side("", rows[1], dkr, drr),
        matched_rows=rows[0] - left_unmatched,
        only_in_left=ol,
        only_in_right=orr,
        mismatched_rows=mism,
        within_tolerance_rows=within,
        in_flight_rows=flight,
        columns=tuple(columns),
        schema=plan.schema,
        samples=samples,
        spec=spec.to_dict(),
        notes=notes(plan, spec, lossy),
    )


def _shown(column: str, duck_type: str) -> str:
    """A sample value as fetched: nanosecond times as text, since Python's datetime would
    drop the nanoseconds and two different values would look the same."""
    return f"CAST({column} AS VARCHAR)" if duck_type.upper() in ("TIMESTAMP_NS", "TIME_NS") else column


def _samples(
    con: duckdb.DuckDBPyConnection, plan: Plan, spec: ReconcileSpec, conditions: dict[str, str]
) -> tuple[Sample, ...]:
    nk = len(plan.keys)
    knames = [k.name for k in plan.keys]
    korder = ", ".join(f"k{i}" for i in range(nk))
    kshown = ", ".join(_shown(f"k{i}", k.pairing.compared_as) for i, k in enumerate(plan.keys))
    cols = ", ".join(
        f"{_shown(_raw(j, c)[0], c.side_type(True) if c.converted else c.pairing.compared_as)},"
        f" {_shown(_raw(j, c)[1], c.side_type(False) if c.converted else c.pairing.compared_as)}, s{j}"
        for j, c in enumerate(plan.columns)
    )
    out: list[Sample] = []
    for cause, cond in conditions.items():
        sql = f"SELECT {kshown}{', ' + cols if cols else ''} FROM {DIFF} WHERE {cond}"
        for row in con.execute(f"{sql} ORDER BY {korder} LIMIT {int(spec.samples)}").fetchall():
            key = tuple(zip(knames, row[:nk], strict=True))
            values = []
            for j, col in enumerate(plan.columns):
                lv, rv, status = row[nk + 3 * j : nk + 3 * j + 3]
                if status is None or status > 0:
                    values.append((col.name, lv, rv))
            out.append(Sample(cause, key, tuple(values)))
    dup_sql = (
        f"SELECT {kshown}, nl, nr FROM {COUNTS} WHERE nl > 1 OR nr > 1"
        f" ORDER BY greatest(nl, nr) DESC, {korder} LIMIT {int(spec.samples)}"
    )
    for row in con.execute(dup_sql).fetchall():
        key = tuple(zip(knames, row[:nk], strict=True))
        out.append(Sample("duplicate_key", key, (), int(row[nk]), int(row[nk + 1])))
    return tuple(out)
