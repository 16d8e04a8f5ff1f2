"""The column comparison: candidate rows of both sides joined by key, each compared column given a
status (equal, different within a tolerance rule, mismatch), and only differing rows kept in DIFF."""

from __future__ import annotations

from comparators.plan import Column, Plan
from comparators.spec import ReconcileSpec
from comparators.sql import Params, literal
from comparators.tables import COUNTS, DIFF, LROWS, RROWS
from comparators.types import family


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


def detail_pass(plan: Plan, spec: ReconcileSpec, params: Params) -> str:
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
