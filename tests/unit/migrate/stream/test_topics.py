"""The streaming job's topics follow from the spec and the pipeline (no broker needed)."""

from __future__ import annotations

from migrate.examples.shop_orders import PIPELINE
from migrate.spec import example_spec_path, load_spec
from migrate.stream.topics import JobTopics


def test_outputs_without_a_topic_stay_in_the_changelog_and_restore_topics_are_the_pipelines() -> None:
    spec = load_spec(example_spec_path())
    topics = JobTopics.of(spec, PIPELINE)
    assert topics.inputs == tuple(spec.cdc.topic(t) for t in spec.cdc.tables)
    assert topics.marker == f"{spec.cdc.topic_prefix}.transaction"
    # daily_revenue names no stream topic: the job writes only its changelog.
    assert "daily_revenue" not in topics.outputs
    assert topics.outputs["state"] == spec.stream.state_topic
    assert topics.outputs["orders_enriched"] == spec.outputs["orders_enriched"].stream.topic
    # Only the outputs the transform restores its state from are read back on start.
    assert topics.restore == {spec.outputs["orders_enriched"].stream.topic: "orders_enriched"}
    assert topics.dead_letter == spec.stream.dead_letter_topic
