"""The topics of one streaming job: what it reads, writes and restores from, and how each is created."""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException

from cdc import client
from cdc.errors import TopicError
from cdc.topics import TopicAdmin
from migrate.pipeline.contract import Pipeline
from migrate.spec import PipelineSpec

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class JobTopics:
    inputs: tuple[str, ...]  # the source tables' change topics
    marker: str  # Debezium's transaction topic (BEGIN/END of each source transaction)
    # Output name -> its topic (outputs the spec names no topic for go to the changelog only);
    # "state" -> the job's own state topic.
    outputs: dict[str, str]
    # Topic -> output name, for the outputs the transform restores its state from.
    restore: dict[str, str]
    dead_letter: str

    @classmethod
    def of(cls, spec: PipelineSpec, pipeline: Pipeline) -> JobTopics:
        outputs = {
            name: out.stream.topic
            for name, out in spec.outputs.items()
            if out.stream.topic is not None and name in pipeline.outputs
        }
        outputs["state"] = spec.stream.state_topic
        restore = {topic: name for name, topic in outputs.items() if name != "state" and pipeline.outputs[name].restore}
        return cls(
            inputs=tuple(spec.cdc.topic(t) for t in spec.cdc.tables),
            marker=f"{spec.cdc.topic_prefix}.transaction",
            outputs=outputs,
            restore=restore,
            dead_letter=spec.stream.dead_letter_topic,
        )

    def ensure(self, kafka: client.Kafka, pipeline: Pipeline) -> None:
        """Create whichever topics are missing, each with the retention its role needs. Kafka's
        errors come out as KafkaException, to be classified like any other (`migrate.stream.kafka`)."""
        try:
            self._create(TopicAdmin(kafka), pipeline)
        except TopicError as exc:  # the admin client's Kafka error inside
            if isinstance(exc.__cause__, KafkaException):
                raise exc.__cause__ from exc
            raise
        except concurrent.futures.TimeoutError as exc:
            timed_out = KafkaError(KafkaError._TIMED_OUT, "creating topics timed out", retriable=True)
            raise KafkaException(timed_out) from exc

    def _create(self, admin: TopicAdmin, pipeline: Pipeline) -> None:
        for name, topic in self.outputs.items():
            if name == "state":
                admin.create(topic, compact=True)
            elif pipeline.outputs[name].restore:
                # Tombstones are the transform's memory of where a key was deleted (state is restored
                # from this topic): kept four weeks, not compaction's default one day.
                admin.create(topic, compact=True, configs={"delete.retention.ms": str(4 * WEEK_MS)})
            elif pipeline.outputs[name].topic_role == "compacted":
                admin.create(topic, compact=True)
            else:
                admin.create(topic, retention_ms=WEEK_MS)
        admin.create(self.dead_letter, retention_ms=4 * WEEK_MS)
        for topic in [*self.inputs, self.marker]:
            # Debezium creates these on its first event; the job may start before that.
            admin.create(topic, retention_ms=WEEK_MS)
