"""The shop example as a pipeline: its SQL, its Python rules and its spec agree."""

from __future__ import annotations

from pathlib import Path

from migrate.examples.shop_orders import PIPELINE, SPEC, rules
from migrate.pipeline.registry import pipeline_for
from migrate.spec import load_spec

SQL = Path(rules.__file__).with_name("sql")


def test_the_batch_sql_uses_the_rules_thresholds() -> None:
    enriched = (SQL / "orders_enriched.sql").read_text()
    assert f"o.amount > {rules.GOLD_ABOVE} THEN 'GOLD'" in enriched
    assert f"o.amount > {rules.SILVER_ABOVE} THEN 'SILVER'" in enriched
    assert f"WHERE amount > {rules.ALERT_ABOVE}" in (SQL / "order_alerts.sql").read_text()
    assert f"status <> '{rules.CANCELLED}'" in (SQL / "daily_revenue.sql").read_text()


def test_the_example_spec_names_the_pipeline_and_matches_its_outputs() -> None:
    spec = load_spec(SPEC)
    assert pipeline_for(spec) is PIPELINE
    for name, output in PIPELINE.outputs.items():
        assert spec.outputs[name].keys == output.keys
        assert output.schema.names[: len(output.keys)] == list(output.keys)
    # The batch side's SQL is the spec's, read from the example's files.
    assert all(spec.outputs[n].batch.sql_file == str(SQL / f"{n}.sql") for n in PIPELINE.outputs)
