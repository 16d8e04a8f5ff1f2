"""The data-quality check: great-expectations suites on both sides' outputs, read at the same source position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from migrate.batch import BatchRun, run_output
from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.spec import ExpectSpec


def _stream_table(ctx: Context, output: str, run: BatchRun, schema: pa.Schema) -> pa.Table:
    # The same as-of view reconciliation uses: the stream's changelog at the batch's position.
    from migrate.sides import stream_side

    source = stream_side(ctx.spec, output, run.position, schema)
    con = duckdb.connect()
    try:
        source.register(con, "stream_side", list(ctx.spec.outputs[output].keys))
        return con.sql("SELECT * FROM stream_side").to_arrow_table()
    finally:
        con.close()


@dataclass(frozen=True)
class SuiteOutcome:
    """What one expectation suite found on one table."""

    evaluated: int
    failures: tuple[str, ...]


def expectations(table: pa.Table, keys: list[str], expect: ExpectSpec) -> list[Any]:
    """The suite for one output: keys not null and unique, and what the spec's `expect` declares
    (rows present, columns not negative)."""
    import great_expectations as gx

    suite: list[Any] = [gx.expectations.ExpectTableRowCountToBeBetween(min_value=1)] if expect.not_empty else []
    suite += [gx.expectations.ExpectColumnValuesToNotBeNull(column=k) for k in keys]
    if len(keys) == 1:
        suite.append(gx.expectations.ExpectColumnValuesToBeUnique(column=keys[0]))
    else:
        suite.append(gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=keys))
    suite += [gx.expectations.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in expect.non_negative]
    return suite


def _describe_expectation(config: Any) -> str:
    kwargs = config.kwargs
    kind = config.type
    if kind == "expect_table_row_count_to_be_between":
        return "row count > 0"
    if kind == "expect_column_values_to_not_be_null":
        return f"{kwargs['column']} not null"
    if kind == "expect_column_values_to_be_unique":
        return f"{kwargs['column']} unique"
    if kind == "expect_compound_columns_to_be_unique":
        return f"({', '.join(kwargs['column_list'])}) unique"
    if kind == "expect_column_values_to_be_between":
        return f"{kwargs['column']} >= {kwargs['min_value']:g}"
    return str(kind)


def validate(name: str, table: pa.Table, keys: list[str], expect: ExpectSpec | None = None) -> SuiteOutcome:
    """Run the output's suite with great-expectations in an ephemeral, in-memory context.

    Nothing is written to disk and analytics stay off; DECIMAL columns are read as
    floats, which keeps their sign, the only thing the range expectations look at.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    as_float = pa.schema([pa.field(f.name, pa.float64()) if pa.types.is_decimal(f.type) else f for f in table.schema])
    frame = table.cast(as_float).to_pandas()
    batch = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe(name)
        .get_batch(batch_parameters={"dataframe": frame})
    )
    missing = [c for c in (expect or ExpectSpec()).non_negative if c not in table.column_names]
    if missing:
        return SuiteOutcome(0, tuple(f"expect.non_negative names {c}, which the output does not have" for c in missing))
    suite = context.suites.add(
        gx.ExpectationSuite(name=name, expectations=expectations(table, keys, expect or ExpectSpec()))
    )
    result = batch.validate(suite)
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        what = _describe_expectation(outcome.expectation_config)
        observed = outcome.result.get("unexpected_count")
        if observed is None:
            observed = outcome.result.get("observed_value")
            failures.append(f"{what} failed (observed {observed})")
        else:
            failures.append(f"{what} failed ({observed:,} row(s))")
    return SuiteOutcome(len(result.results), tuple(failures))


def data_quality(ctx: Context) -> CheckResult:
    """Great Expectations suites pass on both sides' outputs: keys not null and unique, and each
    output's declared expectations (`outputs.<name>.expect`: rows present, columns not negative).

    Both sides are read at the same point: the latest batch run, and the stream's
    changelog as of that run's source position.
    Example: `batch 3/3 and stream 3/3 outputs pass 13 expectations each` passes;
    `stream daily_revenue: revenue >= 0 (1 row)` fails.
    """
    r = ctx.begin("data_quality", "keys not null and unique; each output's expect (rows present, columns >= 0)")
    run = ctx.batch_run
    if run is None:
        return r.failed(f"no batch run recorded in {ctx.spec.warehouse_path}; run `dualrun run batch` first")
    failures: list[str] = []
    totals = {"batch": 0, "stream": 0}
    for output, out_spec in ctx.spec.outputs.items():
        keys = list(out_spec.keys)
        batch = run_output(ctx.spec.warehouse_path, run.run_id, output)
        sides = {"batch": batch, "stream": _stream_table(ctx, output, run, batch.schema)}
        for side, table in sides.items():
            outcome = validate(f"{side}_{output}", table, keys, out_spec.expect)
            totals[side] += outcome.evaluated
            failures += [f"{side} {output}: {f}" for f in outcome.failures]
    outputs = len(ctx.spec.outputs)
    summary = f"batch run {run.run_id} and the stream as of {run.position}: {outputs} output(s) per side"
    if failures:
        return r.failed("; ".join(failures) + f" ({summary})")
    return r.passed(f"{summary}, {totals['batch']} + {totals['stream']} expectations pass")
