"""The candidate rows of a reconciliation: every row not proven identical to one on the other side.

Every row is reduced to its key and a 64-bit hash of its compared columns (brought
to their comparison types by `comparators.types`; a value whose conversion was not
exact also hashes its raw text, so a lossy conversion never makes rows identical);
rows whose key and hash match a row on the other side are identical and dropped.
Two different rows share a hash with probability ~2**-64 per differing row. What
remains (one-sided, duplicated or differing keys; a small set) is read in full into
LROWS and RROWS, with the rows per key of each side in COUNTS. Memory stays bounded and
a key that repeats thousands of times never explodes a join. Two plans find them:

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
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from comparators.conversions import Lossy, lossy_aggregates, read_lossy
from comparators.plan import Column, Plan
from comparators.spec import ReconcileSpec
from comparators.sql import ident, one_row
from comparators.tables import BITS, COUNTS, KEYS, LEFT, LROWS, MATCHED, RIGHT, RROWS
from comparators.types import is_integer

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


def find_candidates(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    spec: ReconcileSpec,
    rows: list[int],
    ranges: list[tuple[int, int] | None],
    step: Callable[[str], None],
) -> None:
    """Fill LROWS, RROWS and COUNTS with the integer-key plan when it applies, else the aggregate
    plan. `rows` and `ranges` are each side's row count and integer key range (`count_side`)."""
    step("checking keys")
    lo = _left_key_bitmaps(con, plan, rows, ranges)
    if lo is not None:
        step("joining row hashes")
        if _join_pass(con, plan, spec, lo, rows[1]):
            return
        step("the right side repeats a key: starting over with the aggregate plan")
        for table in (BITS, MATCHED, LROWS, RROWS, COUNTS):
            con.execute(f"DROP TABLE {table}")
    step("hashing rows")
    con.execute(_hash_pass(plan))
    step("reading differing rows")
    for sql in _candidate_rows(plan, spec):
        con.execute(sql)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = one_row(con, sql)
    return int(row[0]) if row and row[0] is not None else 0


def _integer_key(plan: Plan) -> bool:
    return len(plan.keys) == 1 and is_integer(plan.keys[0].pairing.compared_as)


def count_side(
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
