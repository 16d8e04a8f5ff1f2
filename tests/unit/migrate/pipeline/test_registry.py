"""`stream.pipeline` references: found, or refused in one line saying what is wrong."""

from __future__ import annotations

import pyarrow as pa
import pytest

from migrate.errors import SpecError
from migrate.examples.shop_orders import PIPELINE
from migrate.pipeline.contract import Output
from migrate.pipeline.registry import load_pipeline, pipeline_for
from migrate.spec import example_spec_path, load_spec


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_pkg.mod:PIPELINE", "cannot import 'no_such_pkg.mod'"),
        ("migrate.examples.shop_orders:NOPE", "module 'migrate.examples.shop_orders' has no attribute 'NOPE'"),
        ("migrate.examples.shop_orders:SPEC", "is a PosixPath, not a migrate.pipeline.contract.Pipeline"),
        ("migrate.examples.shop_orders", "expected a Python reference like package.module:ATTRIBUTE"),
    ],
)
def test_a_wrong_reference_is_one_line(reference: str, message: str) -> None:
    with pytest.raises(SpecError, match="^stream.pipeline: ") as caught:
        load_pipeline(reference)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_pipeline_is_checked_against_the_spec() -> None:
    spec = load_spec(example_spec_path())
    assert pipeline_for(spec) is PIPELINE
    extra = spec.outputs["order_alerts"].model_copy(update={"keys": ("customer_id",)})
    with pytest.raises(SpecError, match="outputs.order_alerts.keys: \\['customer_id'\\] but pipeline"):
        pipeline_for(spec.model_copy(update={"outputs": {**spec.outputs, "order_alerts": extra}}))
    with pytest.raises(SpecError, match="outputs.nope: pipeline .* produces no such output"):
        pipeline_for(spec.model_copy(update={"outputs": {**spec.outputs, "nope": extra}}))
    no_topic = spec.outputs["orders_enriched"].model_copy(update={"stream": spec.outputs["daily_revenue"].stream})
    with pytest.raises(SpecError, match="outputs.orders_enriched.stream.topic: the pipeline restores its state"):
        pipeline_for(spec.model_copy(update={"outputs": {**spec.outputs, "orders_enriched": no_topic}}))
    with pytest.raises(SpecError, match="cdc.tables: pipeline .* reads customers"):
        pipeline_for(spec.with_changes(cdc={"tables": ("shop.orders",)}))


def test_an_external_spec_has_no_pipeline_for_dualrun_to_run() -> None:
    spec = load_spec(example_spec_path())
    external = spec.model_copy(update={"stream": spec.stream.model_copy(update={"pipeline": None})})
    assert external.is_external
    with pytest.raises(SpecError, match="stream.pipeline is not set: the user's own job writes the outputs"):
        pipeline_for(external)


def test_an_output_schema_starts_with_its_keys() -> None:
    schema = pa.schema([("amount", pa.int64()), ("id", pa.int64())])
    with pytest.raises(ValueError, match="first columns must be the keys"):
        Output(schema, ("id",))
    with pytest.raises(ValueError, match="only a compacted topic can restore"):
        Output(schema, ("amount",), "retained", restore=True)
