"""Aggregate level: per-partition counts, sums and fingerprints.

A fingerprint is the XOR of the row hashes in a partition, so it does not depend
on row order and two partitions with the same rows have the same fingerprint;
on a large table the differing partitions say where to look first.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb

from comparators.plan import Column, Plan
from comparators.result import Aggregates, PartitionDiff
from comparators.spec import ReconcileSpec
from comparators.sql import Params, ident, one_row
from comparators.types import family

AGG = "__partitions"
# DOUBLE sums depend on addition order, so they get at least this relative slack.
FLOAT_SLACK = Decimal("1e-9")


def partition_aggregates(
    con: duckdb.DuckDBPyConnection, plan: Plan, spec: ReconcileSpec, left: str, right: str
) -> Aggregates:
    """Compare the sides partition by partition (the spec's partition column)."""
    part = plan.partition
    assert part is not None and spec.partition is not None
    summed = [c for c in plan.columns if family(c.pairing.compared_as) in ("exact", "float")]

    def side(name: str, is_left: bool) -> str:
        def pick(col: Column, alias: str) -> str:
            return col.left(alias) if is_left else col.right(alias)

        hashed = [pick(k, "t.") for k in plan.keys] + [p for c in plan.columns for p in c.hashed(is_left, "t.")]
        sums = "".join(f", sum({pick(c, 't.')}) AS s{j}" for j, c in enumerate(summed))
        return (
            f"SELECT {pick(part, 't.')} AS p, count(*) AS n{sums},"
            f" bit_xor(hash({', '.join(hashed)})) AS fp FROM {ident(name)} AS t GROUP BY 1"
        )

    params = Params()
    sum_cols = "".join(f", l.s{j} AS ls{j}, r.s{j} AS rs{j}" for j in range(len(summed)))
    con.execute(
        f"CREATE TEMP TABLE {AGG} AS SELECT coalesce(l.p, r.p) AS p, coalesce(l.n, 0) AS ln,"
        f" coalesce(r.n, 0) AS rn, l.fp IS NOT DISTINCT FROM r.fp AS same{sum_cols}"
        f" FROM ({side(left, True)}) AS l FULL OUTER JOIN ({side(right, False)}) AS r"
        f" ON l.p IS NOT DISTINCT FROM r.p"
    )
    beyond = []
    for j, col in enumerate(summed):
        tol = spec.aggregate_tolerance
        if family(col.pairing.compared_as) == "float":
            tol = max(tol, FLOAT_SLACK)
        bound = params.bind(tol)
        beyond.append(
            f"coalesce(abs(ls{j} - rs{j}) > {bound} * greatest(abs(ls{j}), abs(rs{j})),"
            f" (ls{j} IS NULL) <> (rs{j} IS NULL)) AS b{j}"
        )
    flags = "".join(", " + b for b in beyond)
    rows = con.execute(
        f"SELECT * FROM (SELECT *{flags} FROM {AGG}) WHERE NOT same OR ln <> rn"
        + "".join(f" OR b{j}" for j in range(len(summed)))
        + " ORDER BY p NULLS FIRST",
        params.values,
    ).fetchall()
    total_row = one_row(con, f"SELECT count(*) FROM {AGG}")
    total = int(total_row[0]) if total_row else 0
    differing = []
    base = 4 + 2 * len(summed)
    for row in rows:
        sums = tuple((c.name, row[4 + 2 * j], row[5 + 2 * j]) for j, c in enumerate(summed) if row[base + j])
        differing.append(PartitionDiff(row[0], int(row[1]), int(row[2]), bool(row[3]), sums))
    mismatches = sum(p.aggregate_mismatch for p in differing)
    return Aggregates(spec.partition, total, tuple(differing), mismatches)
