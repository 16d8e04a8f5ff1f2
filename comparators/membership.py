"""Which rows of one side equal some candidate row of the other, under the reconciliation's rules.

`reconcile` pairs one left row with one right row per key. Some questions have several right
candidates per key: an external batch job read the source at an unknown point inside a bracket,
so its row is right when it equals any version the stream held there. `matching_keys` answers
that with the same plan as `reconcile` (`comparators.plan`: key and column pairing, comparison
types, `ignore`, tolerance rules, lossy conversions compared as they are) and the same per-column
status (`comparators.comparison.column_status`): a candidate matches when no compared column is a
mismatch (equal, or different within a rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import duckdb
import pyarrow as pa

from comparators.candidates import row_exprs
from comparators.comparison import column_status
from comparators.conversions import check_options, check_rules
from comparators.errors import ComparatorError
from comparators.plan import make_plan
from comparators.rules import Rule
from comparators.spec import build_spec
from comparators.sql import Params, describe, ident
from comparators.tables import LEFT, RIGHT


def matching_keys(
    left: pa.Table,
    right: pa.Table,
    keys: Sequence[str],
    *,
    rules: Mapping[str, Rule | str | Sequence[Rule | str]] | None = None,
    ignore: Iterable[str] = (),
    naive_timezone: str = "UTC",
) -> pa.Table:
    """The distinct keys (columns `keys`, left's types) of `left` rows that match at least one
    `right` row with the same key (`right` may hold several rows per key). Columns on one side
    only are not compared. Raises SpecError / RuleError as `reconcile` does for a wrong rule,
    ignored column or key; ComparatorError when DuckDB fails.

    >>> from decimal import Decimal as D
    >>> batch = pa.table({"id": [1, 2], "v": [D("1.00"), D("2.00")]})
    >>> versions = pa.table({"id": [1, 1, 2], "v": [D("0.50"), D("1.01"), D("2.50")]})
    >>> matching_keys(batch, versions, ["id"], rules={"v": "abs:0.01"}).to_pylist()
    [{'id': 1}]
    """
    spec = build_spec(keys, rules=rules, ignore=ignore, naive_timezone=naive_timezone)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")  # nothing may depend on the host's zone
        con.register(LEFT, left)
        con.register(RIGHT, right)
        check_options(con, spec)
        plan = make_plan(spec, describe(con, LEFT), describe(con, RIGHT), "left", "right")
        check_rules(con, plan)
        params = Params()
        statuses = [column_status(col, j, params) for j, col in enumerate(plan.columns)]
        matched = " AND ".join(f"coalesce({s} < 2, FALSE)" for s in statuses) or "TRUE"
        on = " AND ".join(f"l.k{i} IS NOT DISTINCT FROM r.k{i}" for i in range(len(plan.keys)))
        shown = ", ".join(f"lk.{ident(k.name)}" for k in plan.keys)
        try:
            for table, side in (("lrows", LEFT), ("rrows", RIGHT)):
                con.execute(
                    f"CREATE TEMP TABLE {table} AS SELECT {', '.join(row_exprs(plan, spec, side))},"
                    f" TRUE AS present FROM {side} AS t"
                )
            # Keys as `left` holds them (not their comparison form), for the caller's key tuples.
            raw = ", ".join(f"{k.raw(True, 't.')} AS {ident(k.name)}" for k in plan.keys)
            kcols = ", ".join(f"{k.left('t.')} AS k{i}" for i, k in enumerate(plan.keys))
            join = " AND ".join(f"lk.k{i} IS NOT DISTINCT FROM m.k{i}" for i in range(len(plan.keys)))
            return con.sql(
                f"SELECT DISTINCT {shown} FROM (SELECT {raw}, {kcols} FROM {LEFT} AS t) AS lk SEMI JOIN"
                f" (SELECT l.* FROM lrows AS l JOIN rrows AS r ON {on} WHERE {matched}) AS m ON {join}"
                " ORDER BY ALL",
                params=params.values,
            ).to_arrow_table()
        except duckdb.Error as exc:
            raise ComparatorError(f"DuckDB failed while matching candidate rows: {str(exc).splitlines()[0]}") from exc
