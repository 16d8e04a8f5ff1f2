"""The article's order-processing pipeline: dualrun's example of a pipeline brought to it.

Its batch SQL lives in `sql/*.sql` and its spec in `spec.yaml` (the local stack's, run by
`dualrun demo`); `PIPELINE` is what the spec's `stream.pipeline` names for dualrun to run:

    stream:
      pipeline: migrate.examples.shop_orders:PIPELINE
"""

from __future__ import annotations

from pathlib import Path

from migrate.examples.shop_orders.rules import KEYS, SCHEMAS
from migrate.examples.shop_orders.transform import ShopOrdersTransform
from migrate.pipeline.contract import Output, Pipeline
from migrate.spec import OutputSpec, OutputStreamSpec, load_spec

SPEC = Path(__file__).with_name("spec.yaml")

PIPELINE = Pipeline(
    name="shop-orders",
    tables=("customers", "orders"),
    outputs={
        # Compacted: the latest enriched order per id; the job restores its orders from it.
        "orders_enriched": Output(SCHEMAS["orders_enriched"], KEYS["orders_enriched"], "compacted", restore=True),
        "order_alerts": Output(SCHEMAS["order_alerts"], KEYS["order_alerts"], "retained"),
        "daily_revenue": Output(SCHEMAS["daily_revenue"], KEYS["daily_revenue"]),  # changelog only
    },
    transform=ShopOrdersTransform,
)

_TOPIC_SUFFIX = {"orders_enriched": "enriched", "order_alerts": "alerts"}


def outputs(name: str) -> dict[str, OutputSpec]:
    """The example's outputs with topics named after `name` (`<name>-enriched`, `<name>-alerts`), for
    tests and benchmarks that run many copies of the pipeline side by side."""
    renamed: dict[str, OutputSpec] = {}
    for output, spec in load_spec(SPEC).outputs.items():
        suffix = _TOPIC_SUFFIX.get(output)
        if suffix is not None:
            spec = spec.model_copy(update={"stream": OutputStreamSpec(topic=f"{name}-{suffix}")})
        renamed[output] = spec
    return renamed
