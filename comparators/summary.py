"""The Reconciliation a run reports, assembled from the small DIFF and COUNTS tables: the counts
per cause, per-column statistics and the samples."""

from __future__ import annotations

import duckdb

from comparators.conversions import Lossy, notes
from comparators.plan import Column, Plan
from comparators.result import ColumnStats, Reconciliation, Sample, Side
from comparators.spec import ReconcileSpec
from comparators.sql import one_row
from comparators.tables import COUNTS, DIFF
from comparators.types import family, is_integer


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


def summarise(
    con: duckdb.DuckDBPyConnection, plan: Plan, spec: ReconcileSpec, rows: list[int], lossy: Lossy
) -> Reconciliation:
    """The Reconciliation of the DIFF and COUNTS tables; `rows` are the sides' row counts and `lossy`
    what each verified conversion lost. Labels, positions and timings are the caller's to fill."""
    dups = one_row(
        con,
        f"SELECT count(*) FILTER (nl > 1), coalesce(sum(nl) FILTER (nl > 1), 0),"
        f" count(*) FILTER (nr > 1), coalesce(sum(nr) FILTER (nr > 1), 0),"
        f" coalesce(sum(nl), 0) - count(*) FILTER (nl = 1 AND nr = 1) FROM {COUNTS}",
    )
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
