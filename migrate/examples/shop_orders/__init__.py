"""The article's order-processing pipeline: dualrun's example of a pipeline brought to it.

Its batch SQL lives in `sql/*.sql`, its spec in `spec.yaml` (the local stack's, run by `dualrun demo`).
"""

from __future__ import annotations

from pathlib import Path

from migrate.spec import OutputSpec, OutputStreamSpec, load_spec

SPEC = Path(__file__).with_name("spec.yaml")
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
