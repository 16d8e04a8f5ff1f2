"""`stream.pipeline: "pkg.module:ATTR"` -> the `Pipeline` object, checked against the spec."""

from __future__ import annotations

import importlib

from migrate.errors import SpecError
from migrate.pipeline.contract import Pipeline
from migrate.spec import PipelineSpec


def load_pipeline(reference: str) -> Pipeline:
    """Import `pkg.module` and return its `ATTR`; SpecError (one line) when it is not a Pipeline."""
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise SpecError(f"stream.pipeline: {reference!r}: expected a Python reference like package.module:ATTRIBUTE")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(
            f"stream.pipeline: cannot import {module_name!r} ({exc}); is it installed or on PYTHONPATH?"
        ) from None
    found = getattr(module, attr, None)
    if found is None:
        raise SpecError(f"stream.pipeline: module {module_name!r} has no attribute {attr!r}")
    if not isinstance(found, Pipeline):
        raise SpecError(
            f"stream.pipeline: {reference} is a {type(found).__name__}, not a migrate.pipeline.contract.Pipeline"
        )
    return found


def pipeline_for(spec: PipelineSpec) -> Pipeline:
    """The spec's Python pipeline, checked against the spec: every output the spec compares is one
    the pipeline produces, with the same keys, and a restore output has a topic to restore from."""
    if spec.stream.pipeline is None:
        raise SpecError(
            f"{spec.origin}: stream.pipeline is not set: the user's own job writes the outputs, so dualrun "
            "runs no streaming job of its own for this spec"
        )
    pipeline = load_pipeline(spec.stream.pipeline)
    for name, output in spec.outputs.items():
        produced = pipeline.outputs.get(name)
        if produced is None:
            raise SpecError(
                f"{spec.origin}: outputs.{name}: pipeline {spec.stream.pipeline} produces no such output "
                f"(it produces {', '.join(pipeline.outputs)})"
            )
        if tuple(output.keys) != produced.keys:
            raise SpecError(
                f"{spec.origin}: outputs.{name}.keys: {list(output.keys)} but pipeline {spec.stream.pipeline} "
                f"keys it by {list(produced.keys)}"
            )
        if produced.restore and output.stream.topic is None:
            raise SpecError(
                f"{spec.origin}: outputs.{name}.stream.topic: the pipeline restores its state from this "
                "output's topic; name one"
            )
    tables = {t.split(".", 1)[1] for t in spec.cdc.tables}
    unread = [t for t in pipeline.tables if t not in tables]
    if unread:
        raise SpecError(
            f"{spec.origin}: cdc.tables: pipeline {spec.stream.pipeline} reads {', '.join(unread)}, "
            "which the connector does not capture"
        )
    return pipeline
