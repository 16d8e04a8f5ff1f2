"""Lineage: which output rows a source change may affect (design-byo §3, issue 13).

Per output, per captured source table, either

* a mapping `output column -> SQL expression` (DuckDB dialect) over the columns of a change's row
  image; a change affects every output row, on either side, whose columns equal the expressions
  evaluated on its before image or on its after image (both: a moved order affects its old and
  its new group), or
* the coarse form `all`: any change to the table may affect every row of the output.

```yaml
outputs:
  daily_revenue:
    keys: [customer_id, order_day]
    lineage:
      shop.orders: {customer_id: customer_id, order_day: "CAST(created_at AS DATE)"}
      shop.customers: all
```

A table an output's lineage does not name is declared to never affect it. Over-approximating is
always safe (it only costs coverage); under-approximating is a spec error that makes keys look
verified when they are not.
"""

from __future__ import annotations

from typing import Any, Literal

ALL = "all"
TableLineage = dict[str, str] | Literal["all"]


def check_expression(expression: str) -> None:
    """Raise ValueError unless `expression` parses as one DuckDB scalar expression.

    >>> check_expression("CAST(created_at AS DATE)")
    >>> check_expression("id +")
    Traceback (most recent call last):
    ...
    ValueError: 'id +' is not a SQL expression: syntax error at or near ")"
    """
    import duckdb  # here: loading a spec without lineage (and every --help) stays light

    if not expression.strip():
        raise ValueError("an empty expression")
    try:
        statements = duckdb.extract_statements(f"SELECT ({expression}) AS v FROM __image")
    except duckdb.Error as exc:
        reason = str(exc).splitlines()[0].removeprefix("Parser Error: ")
        raise ValueError(f"{expression!r} is not a SQL expression: {reason}") from None
    if len(statements) != 1:
        raise ValueError(f"{expression!r} is not one SQL expression (it ends the statement)")


def check_lineage(lineage: Any) -> Any:
    """Validate one output's raw lineage (a pydantic `before` validator, so a wrong shape gets this
    message rather than the union's): tables named `database.table`, each mapped to `all` or to a
    non-empty `{output column: expression}`."""
    if not isinstance(lineage, dict):
        raise ValueError("expected a mapping of source tables (database.table) to `all` or {output column: expression}")
    for table, mapping in lineage.items():
        if not isinstance(table, str) or table.count(".") != 1:
            raise ValueError(f"{table!r}: name the source table as database.table, as in cdc.tables")
        if isinstance(mapping, str) and mapping == ALL:
            continue
        if not isinstance(mapping, dict):
            raise ValueError(f"{table}: expected `all` or a mapping of output columns to SQL expressions")
        if not mapping:
            raise ValueError(f"{table}: map at least one output column to an expression, or write `all`")
        for column, expression in mapping.items():
            if not isinstance(expression, str):
                raise ValueError(f"{table}.{column}: write the expression as text (quote it in YAML)")
            try:
                check_expression(expression)
            except ValueError as exc:
                raise ValueError(f"{table}.{column}: {exc}") from None
    return lineage
