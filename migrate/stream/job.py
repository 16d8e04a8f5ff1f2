"""dualrun's exactly-once runner for a Python pipeline: Debezium topics in, the pipeline's output
topics and changelogs out.

Each cycle is one Kafka transaction holding the output records, the job's state
changes (the transform's records and the job's progress in a compacted state topic;
a pipeline may also restore from its own compacted output topics) and the input
offsets. On start, or after an aborted transaction, state is rebuilt from those
topics and the inputs resume at the committed offsets, so state, outputs and offsets
always agree. The pipeline (`migrate.pipeline.contract.Pipeline`) comes from the
spec's `stream.pipeline`.

Events of the input topics are released transaction by transaction in commit
order (see `migrate.stream.ordering`), so a customer change and an order change
are applied in the order the database committed them, as the batch job's
snapshot sees them.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from cdc import client
from cdc.envelope import ChangeEvent, decode
from cdc.errors import EnvelopeError
from migrate.errors import StreamJobError
from migrate.metrics import serve_stream_metrics
from migrate.pipeline.contract import Pipeline
from migrate.pipeline.records import KafkaRecord
from migrate.pipeline.registry import pipeline_for
from migrate.spec import PipelineSpec
from migrate.stream.changelog import ChangelogWriter
from migrate.stream.counters import Counters
from migrate.stream.kafka import (
    Action,
    KafkaFatal,
    KafkaInterrupted,
    TransactionalProducer,
    classify,
    consumer_config,
    describe,
    error_of,
    producer_config,
    with_retries,
)
from migrate.stream.lag import LagGauge, inputs_drained
from migrate.stream.ordering import Item, TransactionOrder, parse_marker
from migrate.stream.restore import PROGRESS_KEY, restore_state, resumed
from migrate.stream.status import StreamStatus, write_status
from migrate.stream.supervisor import RESTARTS_ENV, SUPERVISOR_ENV
from migrate.stream.topics import JobTopics
from migrate.stream.watchdog import start_watchdog
from migrate.stream.wire import Envelope, RecordWriter, envelope

STATUS_EVERY_S = 2.0
GC_YOUNG_THRESHOLD = 100_000  # allocations between young collections (CPython's default: 700)


class StreamJob:
    """One instance of the streaming job for a spec. `run()` blocks until `stop()`.

    `pipeline` defaults to the one the spec's `stream.pipeline` names (SpecError when it has none).
    """

    def __init__(
        self,
        spec: PipelineSpec,
        pipeline: Pipeline | None = None,
        *,
        stall_after: float = 5.0,
        report: Callable[[StreamStatus], None] | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.spec = spec
        self.metrics_port = metrics_port  # see migrate.metrics.serve_stream_metrics
        self.latest_status: StreamStatus | None = None
        self.pipeline = pipeline if pipeline is not None else pipeline_for(spec)
        self.report = report
        self.eos = spec.stream.exactly_once
        self.job_topics = JobTopics.of(spec, self.pipeline)
        self.inputs, self.marker_topic = list(self.job_topics.inputs), self.job_topics.marker
        self.order = TransactionOrder(
            self.marker_topic, {spec.cdc.topic(t): t for t in spec.cdc.tables}, stall_after=stall_after,
            drained=self._inputs_drained,
        )  # fmt: skip
        self.topics, self.restore_topics = self.job_topics.outputs, self.job_topics.restore
        # Outputs a Connect sink reads (outputs.X.sink): Connect's JSON with schemas, (key, value) schemas.
        self.envelopes: dict[str, Envelope] = {
            name: envelope(name, self.pipeline.outputs[name])
            for name in self.topics
            if name != "state" and spec.outputs[name].sink is not None
        }
        self.writer = RecordWriter(self.topics, self.envelopes, spec.stream.dead_letter_topic)
        self.stopping = False
        self.counters = Counters()
        self.started_at = time.time()
        self.transform = self.pipeline.transform()
        self.changelog = ChangelogWriter(
            spec.changelog_path, {name: output.schema for name, output in self.pipeline.outputs.items()}
        )
        self.next_offsets: dict[tuple[str, int], int] = {}
        self.in_txn = False
        self.txn_started = 0.0
        self.lag = LagGauge([*self.inputs, self.marker_topic])
        self.last_status = 0.0
        # The user's cluster settings (credentials included) stay in self.kafka; these are the job's
        # own properties, published in the status file with the settings' secrets masked.
        self.kafka = spec.stream_kafka()
        self.consumer_config = consumer_config(spec.stream.group)
        self.producer_config = producer_config(spec.stream.transactional_id if self.eos else None)
        self.consumer = client.consumer(self.kafka, self.consumer_config)
        self.producer = TransactionalProducer(
            self.kafka.config(**self.producer_config),
            spec.stream.transactional_id if self.eos else None,
            on_retry=self._on_retry,
        )
        self.timeouts = self.producer.timeouts
        self.heartbeat_at = time.time()  # the main loop's last turn (epoch seconds)
        self.finished = False  # run() has returned: the watchdog stands down
        self.committed_at: float | None = None  # the last committed transaction (epoch seconds)
        self.kafka_error: str | None = None  # the last Kafka error met, retried or not
        self.restarts = int(os.environ.get(RESTARTS_ENV, "0"))
        self._last_retry_report = 0.0

    # -- set-up ------------------------------------------------------------------------------
    def ensure_topics(self) -> None:
        self.job_topics.ensure(self.kafka, self.pipeline)

    def restore_state(self) -> int:
        """Rebuild state from what the job's transactions committed (`migrate.stream.restore`)."""
        self.transform = self.pipeline.transform()
        return restore_state(
            self.kafka, self.consumer_config, state_topic=self.topics["state"],
            restore_topics=self.restore_topics, enveloped=self.envelopes, transform=self.transform,
            counters=self.counters, alive=self._alive,
        )  # fmt: skip

    def _alive(self) -> None:
        self.heartbeat_at = time.time()

    @staticmethod
    def _tune_gc() -> None:
        """Keep the cyclic garbage collector off the hot path.

        The job's state (every order and customer) is long-lived and holds no cycles, yet each
        full collection walks all of it; per-event objects are freed by reference counting.
        Freezing the restored state and collecting young objects less often cut the job's CPU
        per event by about a third in bench/stream.
        """
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 1000)

    # -- the loop ----------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        self.stopping = True

    def run(self, install_signals: bool = True, max_seconds: float | None = None) -> Counters:
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        self.heartbeat_at = time.time()
        self.finished = False
        if install_signals:  # the job owns its process: only then may the watchdog end it
            start_watchdog(self, lambda reason: self._publish_status("failed", error=reason))
        try:
            # The broker may be away at start (a restart racing ours): wait for it like for any outage.
            with_retries("start", self._start, self._on_retry, self.timeouts)
        except StreamJobError as exc:
            self.finished = True
            self._publish_status("stopped" if isinstance(exc, KafkaInterrupted) else "failed", error=str(exc))
            self.consumer.close()
            self.producer.close()
            raise
        endpoint = serve_stream_metrics(self.spec, lambda: self.latest_status, self.metrics_port)
        progress = self.counters.last_position
        self.changelog.claim(self.spec.stream.group, resumed(progress) if progress else None)
        self._tune_gc()
        self.consumer.subscribe([*self.inputs, self.marker_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while not self.stopping and (deadline is None or time.monotonic() < deadline):
                self.heartbeat_at = time.time()
                try:
                    self._cycle()
                except KafkaException as exc:
                    self._recover(error_of(exc))
                if time.monotonic() - self.last_status > STATUS_EVERY_S:
                    self._publish_status("running")
            try:
                self._drain()
            except KafkaException as exc:  # not committed: the next start reads it again
                self._recover(error_of(exc))
            self._publish_status("stopped")
        except KafkaInterrupted as exc:
            # Stopped while Kafka was away: what was not committed is read again by the next start.
            self._publish_status("stopped", error=str(exc))
        except StreamJobError as exc:  # fatal: exit non-zero so the supervisor starts a new instance
            self._publish_status("failed", error=str(exc))
            raise
        except Exception as exc:  # a bug: say so in the status (the checklist reads it), then fail loudly
            self._publish_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.finished = True
            if endpoint is not None:
                endpoint.close()
            self.consumer.close()
            self.producer.close()
        return self.counters

    def _start(self) -> None:
        self.ensure_topics()
        _ = self.producer.producer  # connects, and fences an older instance of this transactional.id
        self.restore_state()

    # -- faults ------------------------------------------------------------------------------
    def _recover(self, error: KafkaError) -> None:
        """After a Kafka error in the loop: fatal ends the job; anything else aborts the open
        transaction and rewinds to what Kafka committed (retried while the broker is away)."""
        self.kafka_error = describe(error)
        if classify(error) is Action.FATAL:
            raise KafkaFatal(f"streaming job cannot continue: {self.kafka_error}")
        with_retries("rewind", self._abort_and_rewind, self._on_retry, self.timeouts)

    def _on_retry(self, error: KafkaError, attempt: int) -> None:
        """Before each backoff: keep the heartbeat and say what is retried; a stop request ends the wait."""
        self.kafka_error = describe(error)
        if self.stopping:
            raise KafkaInterrupted(f"stopped while retrying: {self.kafka_error}")
        self.heartbeat_at = time.time()
        if time.monotonic() - self._last_retry_report >= 1.0:
            self._last_retry_report = time.monotonic()
            self._publish_status("retrying", error=f"{self.kafka_error} (attempt {attempt + 1})")

    def _cycle(self) -> None:
        asked = time.monotonic()
        msgs = self.consumer.consume(num_messages=self.spec.stream.max_batch, timeout=0.05)
        now = time.monotonic()
        self.counters.input_wait_s += now - asked
        for msg in msgs:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    # The consumer reconnects by itself: only a fatal error ends it.
                    self.kafka_error = describe(error)
                    if error.fatal():
                        raise KafkaException(error)
                continue
            self._buffer(msg, now)
        released = self._release(now)
        if released:
            self._begin()
            self._process(released)
            self.producer.poll(0)  # delivery reports, once per batch rather than per record
        interval = self.spec.stream.commit_interval_ms / 1000
        if self.in_txn and (
            now - self.txn_started >= interval
            or len(self.changelog) >= self.spec.stream.max_batch
            or self.producer.full  # sized to what the producer's local queue holds
        ):
            self._commit()

    def _buffer(self, msg: Message, now: float) -> None:
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        if topic == self.marker_topic:
            self.order.add(Item(topic, partition, offset, now, marker=parse_marker(msg.value())))
            return
        try:
            item = Item(topic, partition, offset, now, decode(topic, msg.key(), msg.value()))
        except EnvelopeError as exc:
            item = Item(topic, partition, offset, now, None, str(exc), msg)
        self.order.add(item)

    def _release(self, now: float, force: bool = False) -> list[Item]:
        return self.order.release(now, force)

    def _begin(self) -> None:
        if not self.in_txn:
            self.producer.begin()
            self.in_txn = True
            self.txn_started = time.monotonic()

    def _process(self, items: list[Item]) -> None:
        """Apply released items in order; one call per batch, with the hot lookups bound once."""
        next_offsets, marker_topic, counters = self.next_offsets, self.marker_topic, self.counters
        apply, add, write, producer = self.transform.apply, self.changelog.add, self.writer.write, self.producer
        applied: ChangeEvent | None = None
        for item in items:
            next_offsets[(item.topic, item.partition)] = item.offset + 1
            if item.topic == marker_topic:
                if item.marker is not None and item.marker["status"] == "END":
                    counters.pending_transaction = item.marker["id"]
                continue
            counters.events_in += 1
            if item.error is not None:
                self._dead_letter(item, item.error)
                continue
            event = item.event
            if type(event) is not ChangeEvent:
                continue  # Debezium's tombstones: the delete event before them did the work
            try:
                changes, records = apply(event)
            except EnvelopeError as exc:
                self._dead_letter(item, str(exc))
                continue
            add(changes)
            for record in records:
                write(producer, record)
            counters.events_out += len(changes)
            applied = event
        if applied is not None:
            counters.pending_ts_ms = applied.source_ts_ms
            counters.pending_position = applied.position

    def _produce(self, record: KafkaRecord) -> None:
        self.writer.write(self.producer, record)

    def _dead_letter(self, item: Item, reason: str) -> None:
        self.writer.dead_letter(self.producer, item, reason)
        self.counters.dead_letters += 1

    def _commit(self) -> None:
        pending = self.counters.pending_position
        progress = self.counters.progress()
        if progress is not None:
            # Progress travels in the same transaction, so a restarted job knows what it has covered.
            self._produce(KafkaRecord("state", PROGRESS_KEY, progress))
        self.changelog.flush(upto=pending.order_value if pending is not None else None)
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.next_offsets.items()]
        group = self.consumer.consumer_group_metadata() if self.eos else None
        if self.producer.commit(offsets, group) == "aborted":
            with_retries("rewind", self._rewind, self._on_retry, self.timeouts)
            return
        if not self.eos and offsets:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        self.in_txn = False
        self.committed_at = time.time()
        self.counters.committed()  # only what Kafka has committed counts as reached
        if time.monotonic() - self.last_status > 0.5:
            self._publish_status("running")
        for output in self.spec.outputs:
            self.changelog.compact(output)

    def _abort_and_rewind(self) -> None:
        """Throw the open transaction away and resume from what Kafka committed."""
        self.producer.abort()
        self._rewind()

    def _rewind(self) -> None:
        """State and input positions back to what Kafka committed (the open transaction is gone)."""
        self.in_txn = False
        self.changelog.pending.clear()
        self.counters.rewound()
        self.order.clear()
        self.next_offsets.clear()
        self.restore_state()
        assignment = self.consumer.assignment()
        for tp in self.consumer.committed(assignment, timeout=30):
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))

    def _drain(self) -> None:
        """On shutdown: process every complete transaction and commit; the rest is read again later."""
        released = self._release(time.monotonic())
        if released:
            self._begin()
            self._process(released)
        if self.in_txn:
            self._commit()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.order.assign((tp.topic, tp.partition) for tp in partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Losing partitions mid-transaction: commit what is done before they move away.
        self._drain()
        self.order.revoke((tp.topic, tp.partition) for tp in partitions)
        for tp in partitions:
            self.next_offsets.pop((tp.topic, tp.partition), None)

    # -- reporting ---------------------------------------------------------------------------
    def _inputs_drained(self) -> bool:
        return inputs_drained(self.consumer)

    def _publish_status(self, state: str, error: str | None = None) -> None:
        now = time.time()
        measures = self.counters.measures(time.monotonic())
        self.last_status = time.monotonic()
        if state == "running" and self.lag.refresh(self.consumer, now) and self.lag.unreachable:
            self.kafka_error = self.lag.error
        if state == "running" and self.lag.unreachable:
            state, error = "retrying", f"cannot reach Kafka: {self.kafka_error}"
        status = StreamStatus(
            pid=os.getpid(),
            state=state,
            updated_at=now,
            started_at=self.started_at,
            exactly_once=self.eos,
            producer=self.kafka.masked_config(**self.producer_config),
            consumer=self.kafka.masked_config(**self.consumer_config),
            stalled_transactions=self.order.stalled,
            lag=self.lag.lag,
            lag_measured_at=self.lag.measured_at,
            error=error,
            pipeline=self.spec.stream.pipeline,
            heartbeat_at=self.heartbeat_at,
            committed_at=self.committed_at,
            restarts=self.restarts,
            supervisor_pid=int(os.environ[SUPERVISOR_ENV]) if os.environ.get(SUPERVISOR_ENV) else None,
            **measures,
        )
        write_status(self.spec, status)
        self.latest_status = status
        if self.report is not None:
            self.report(status)
