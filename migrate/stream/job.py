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

import concurrent.futures
import gc
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from cdc import client
from cdc.envelope import ChangeEvent, decode
from cdc.errors import EnvelopeError, TopicError
from cdc.position import Position
from cdc.topics import TopicAdmin
from migrate.errors import StreamJobError
from migrate.metrics import serve_stream_metrics
from migrate.pipeline.contract import Pipeline
from migrate.pipeline.records import KafkaRecord
from migrate.pipeline.registry import pipeline_for
from migrate.spec import PipelineSpec
from migrate.stream import connectjson
from migrate.stream.changelog import ChangelogWriter
from migrate.stream.kafka import (
    Action,
    KafkaFatal,
    KafkaInterrupted,
    TransactionalProducer,
    backoff,
    classify,
    describe,
    error_of,
)
from migrate.stream.ordering import Item, TransactionOrder, parse_marker
from migrate.stream.status import StreamStatus, write_status
from migrate.stream.supervisor import RESTARTS_ENV, SUPERVISOR_ENV

WEEK_MS = 7 * 24 * 3600 * 1000
STATUS_EVERY_S = 2.0
# librdkafka calls can block past their timeout (send_offsets_to_transaction after a broker restart,
# librdkafka issues #5456 and #5511): a main loop silent this long ends the process, so that the
# supervisor starts a fresh one. More than four times the longest call the loop makes on purpose.
WATCHDOG_S = 45.0
LAG_EVERY_S = 2.0  # the lag costs broker round trips: measured at most this often
GC_YOUNG_THRESHOLD = 100_000  # allocations between young collections (CPython's default: 700)
POSITION_HEADER = "dualrun.position"
WATCHDOG_EXIT = 3  # the exit code when the watchdog ends the job (1: a fatal Kafka error, 2: usage)
RESTORE_STALL_S = 20.0  # restoring state with nothing read this long: the broker is away, start over
PROGRESS_KEY = "meta:progress"  # the committed source position, kept in the state topic


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # money stays exact on the wire
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _header_position(msg: Message) -> int | None:
    for header in msg.headers() or []:
        if header[0] == POSITION_HEADER and header[1] is not None:
            return int(header[1])
    return None


def _resumed(progress: dict[str, Any]) -> tuple[str, int]:
    """(where, order value) of the committed progress, for ChangelogWriter.claim."""
    position = Position.from_dict(progress)
    return str(position), position.order_value


def encode(value: dict[str, Any] | str | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value, default=_json_default)


@dataclass
class Counters:
    events_in: int = 0
    events_out: int = 0
    dead_letters: int = 0
    transactions: int = 0
    last_event_ts_ms: int | None = None  # as committed
    last_position: dict[str, Any] | None = None  # as committed
    pending_ts_ms: int | None = None
    pending_position: Position | None = None  # serialised only when committed: to_dict per event is costly
    last_transaction: str | None = None  # as committed
    pending_transaction: str | None = None
    rate_window: deque[tuple[float, int, float]] = field(default_factory=deque)  # (when, events_in, waited)
    input_wait_s: float = 0.0  # time spent waiting for input records

    def rate(self, now: float) -> tuple[float, float]:
        """Events per second and the share of time spent waiting for input, over the last ~10 s.

        A job that keeps up waits most of the time; one that never waits is the bottleneck.
        """
        self.rate_window.append((now, self.events_in, self.input_wait_s))
        while len(self.rate_window) > 2 and now - self.rate_window[0][0] > 10:
            self.rate_window.popleft()
        (t0, n0, w0), (t1, n1, w1) = self.rate_window[0], self.rate_window[-1]
        if t1 <= t0:
            return 0.0, 0.0
        return (n1 - n0) / (t1 - t0), min(1.0, (w1 - w0) / (t1 - t0))


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
        self.inputs = [spec.cdc.topic(t) for t in spec.cdc.tables]
        self.marker_topic = f"{spec.cdc.topic_prefix}.transaction"
        self.order = TransactionOrder(
            self.marker_topic, {spec.cdc.topic(t): t for t in spec.cdc.tables}, stall_after=stall_after,
            drained=self._inputs_drained,
        )  # fmt: skip
        # Output name -> its topic (outputs the spec names no topic for go to the changelog only);
        # "state" -> the job's own state topic.
        self.topics = {
            name: out.stream.topic
            for name, out in spec.outputs.items()
            if out.stream.topic is not None and name in self.pipeline.outputs
        }
        self.topics["state"] = spec.stream.state_topic
        # Topic -> output name, for the outputs the transform restores its state from.
        self.restore_topics = {
            topic: name
            for name, topic in self.topics.items()
            if name != "state" and self.pipeline.outputs[name].restore
        }
        # Outputs a Connect sink reads (outputs.X.sink): Connect's JSON with schemas, (key, value) schemas.
        self.envelopes = {name: self._envelope(name) for name in self.topics
                          if name != "state" and spec.outputs[name].sink is not None}  # fmt: skip
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
        self.lag: int | None = None
        self.lag_measured_at: float | None = None  # epoch seconds
        self._header_pos = -1
        self._header: list[tuple[str, str | bytes | None]] = []
        self.last_status = 0.0
        # The user's cluster settings (credentials included) stay in self.kafka; these are the job's
        # own properties, published in the status file with the settings' secrets masked.
        self.kafka = spec.stream_kafka()
        self.consumer_config: dict[str, Any] = {
            "group.id": spec.stream.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 2000,
            "fetch.wait.max.ms": 50,
            # When the job is behind, the prefetch queue fills up and librdkafka then postpones the
            # next fetch by this much (default 1000 ms): the job drained the queue and sat idle for
            # a third of its time in bench/stream. Checking again every 10 ms keeps it fed.
            "fetch.queue.backoff.ms": 10,
        }
        self.producer_config: dict[str, Any] = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
        if self.eos:
            self.producer_config["transactional.id"] = spec.stream.transactional_id
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
        self.broker_unreachable = False  # the last lag measurement could not reach the broker
        self.restarts = int(os.environ.get(RESTARTS_ENV, "0"))
        self._last_retry_report = 0.0

    # -- set-up ------------------------------------------------------------------------------
    def ensure_topics(self) -> None:
        admin = TopicAdmin(self.kafka)
        for name, topic in self.topics.items():
            if name == "state":
                admin.create(topic, compact=True)
            elif self.pipeline.outputs[name].restore:
                # Tombstones are the transform's memory of where a key was deleted (state is restored
                # from this topic): kept four weeks, not compaction's default one day.
                admin.create(topic, compact=True, configs={"delete.retention.ms": str(4 * WEEK_MS)})
            elif self.pipeline.outputs[name].topic_role == "compacted":
                admin.create(topic, compact=True)
            else:
                admin.create(topic, retention_ms=WEEK_MS)
        admin.create(self.spec.stream.dead_letter_topic, retention_ms=4 * WEEK_MS)
        for topic in [*self.inputs, self.marker_topic]:
            # Debezium creates these on its first event; the job may start before that.
            admin.create(topic, retention_ms=WEEK_MS)

    def restore_state(self) -> int:
        """Rebuild state from the committed contents of the state topic (the transform's records and
        the progress) and of the pipeline's restore topics: all are written in the job's transactions."""
        self.transform = self.pipeline.transform()
        reader = client.consumer(
            self.kafka,
            {**self.consumer_config, "group.id": f"{self.spec.stream.group}-restore", "enable.partition.eof": True},
        )
        try:
            topics = reader.list_topics(timeout=10).topics
            partitions = [
                TopicPartition(topic, p, 0)
                for topic in (self.topics["state"], *self.restore_topics)
                if topic in topics
                for p in topics[topic].partitions
            ]
            ends = {(tp.topic, tp.partition): reader.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
            pending = {tp for tp, end in ends.items() if end > 0}
            reader.assign(partitions)
            restored = 0
            last_read = time.monotonic()
            while pending:
                self.heartbeat_at = time.time()  # a large state takes a while: the loop is alive
                msgs = reader.consume(num_messages=10000, timeout=1.0)
                if msgs:
                    last_read = time.monotonic()
                elif time.monotonic() - last_read > RESTORE_STALL_S:
                    # The broker went away mid-restore: start over once it is back (retried by the caller).
                    stalled = f"restoring state: nothing read for {RESTORE_STALL_S:g}s"
                    raise KafkaException(KafkaError(KafkaError._TIMED_OUT, stalled, retriable=True))
                for msg in msgs:
                    error, where, offset = msg.error(), (msg.topic() or "", msg.partition() or 0), msg.offset() or 0
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard(where)
                        continue
                    key, value = (msg.key() or b"").decode(), msg.value()
                    parsed = orjson.loads(value) if value is not None else None
                    output = self.restore_topics.get(where[0])
                    if output in self.envelopes:  # back to the bare JSON the transform wrote
                        key = str(next(iter(connectjson.unwrap(msg.key()).values())))
                        wrapped = connectjson.unwrap(value)
                        parsed = None if wrapped is None else orjson.loads(encode(wrapped) or b"null")
                    if output is not None:
                        order = _header_position(msg)
                        if order is None:
                            raise StreamJobError(
                                f"record {where[0]}/{where[1]}@{offset} has no {POSITION_HEADER} header; "
                                "the job writes one on every record: was the topic written by something else?"
                            )
                        self.transform.restore(output, key, parsed, order)
                    elif key == PROGRESS_KEY and parsed is not None:
                        self._restore_progress(parsed)
                    else:
                        self.transform.restore("state", key, parsed, _header_position(msg))
                    restored += 1
                    if offset + 1 >= ends[where]:
                        pending.discard(where)
            return restored
        finally:
            reader.close()

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
            self._start_watchdog()
        try:
            # The broker may be away at start (a restart racing ours): wait for it like for any outage.
            self._with_retries("start", self._start)
        except StreamJobError as exc:
            self.finished = True
            self._publish_status("stopped" if isinstance(exc, KafkaInterrupted) else "failed", error=str(exc))
            self.consumer.close()
            self.producer.close()
            raise
        endpoint = serve_stream_metrics(self.spec, lambda: self.latest_status, self.metrics_port)
        resumed = self.counters.last_position
        self.changelog.claim(self.spec.stream.group, _resumed(resumed) if resumed else None)
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
        try:
            self.ensure_topics()
        except TopicError as exc:  # the admin client's Kafka error inside: classified like any other
            if isinstance(exc.__cause__, KafkaException):
                raise exc.__cause__ from exc
            raise
        except concurrent.futures.TimeoutError as exc:
            timed_out = KafkaError(KafkaError._TIMED_OUT, "creating topics timed out", retriable=True)
            raise KafkaException(timed_out) from exc
        _ = self.producer.producer  # connects, and fences an older instance of this transactional.id
        self.restore_state()

    # -- faults ------------------------------------------------------------------------------
    def _start_watchdog(self, limit_s: float = WATCHDOG_S) -> None:
        """A thread that ends the process when the main loop stops turning (a call that never returns).

        Nothing is lost: what was not committed is read again by the next instance, and the broker
        aborts the open transaction when that instance fences this one.
        """

        def watch() -> None:
            while not self.finished:
                time.sleep(1.0)
                silent, where = time.time() - self.heartbeat_at, self.producer.calling
                if silent > limit_s or self.producer.stuck_for() > 0:
                    reason = (
                        f"streaming job stuck for {silent:.0f}s in {where or 'the main loop'}"
                        f"{' (past its timeout)' if where else ''}; exiting so it is started afresh"
                    )
                    if self.kafka_error:
                        reason += f" (last Kafka error {self.kafka_error})"
                    try:
                        self._publish_status("failed", error=reason)
                    finally:
                        print(f"error: {reason}", file=sys.stderr, flush=True)
                        os._exit(WATCHDOG_EXIT)

        threading.Thread(target=watch, name="dualrun-watchdog", daemon=True).start()

    def _recover(self, error: KafkaError) -> None:
        """After a Kafka error in the loop: fatal ends the job; anything else aborts the open
        transaction and rewinds to what Kafka committed (retried while the broker is away)."""
        self.kafka_error = describe(error)
        if classify(error) is Action.FATAL:
            raise KafkaFatal(f"streaming job cannot continue: {self.kafka_error}")
        self._with_retries("rewind", self._abort_and_rewind)

    def _with_retries(self, what: str, call: Callable[[], object]) -> None:
        """`call` again after retriable or abortable Kafka errors, with backoff; fatal ones raise."""
        attempt = 0
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                error = error_of(exc)
                if classify(error) is Action.FATAL:
                    raise KafkaFatal(f"streaming job {what} failed: {describe(error)}") from exc
                self._on_retry(error, attempt)
                time.sleep(backoff(attempt, self.timeouts))
                attempt += 1

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
        apply, add, produce = self.transform.apply, self.changelog.add, self._produce
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
                produce(record)
            counters.events_out += len(changes)
            applied = event
        if applied is not None:
            counters.pending_ts_ms = applied.source_ts_ms
            counters.pending_position = applied.position

    def _envelope(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        output = self.pipeline.outputs[name]
        try:
            return (connectjson.struct_schema(output.schema, output.keys, key=True),
                    connectjson.struct_schema(output.schema, output.keys, key=False))  # fmt: skip
        except connectjson.UnsupportedType as exc:
            raise StreamJobError(f"outputs.{name}.sink: {exc}") from None

    def _keyed(self, name: str, key: str, value: dict[str, Any] | None) -> dict[str, Any]:
        """The record's key as the key struct's typed columns (`connectjson.key_payload`)."""
        schema = self.envelopes[name][0]
        if len(schema["fields"]) == 1:  # the key text is the value: as before, whatever the value holds
            field = schema["fields"][0]
            return {field["field"]: int(key) if field["type"] == "int64" else key}
        try:
            return connectjson.key_payload(key, value, schema)
        except connectjson.UnsupportedType as exc:
            raise StreamJobError(f"outputs.{name}: {exc}") from None

    def _produce(self, record: KafkaRecord) -> None:
        # The position header lets any reader check that no change was delivered twice.
        topic = self.topics.get(record.topic)
        if topic is None:
            return  # an output the spec gives no topic: its changelog is all dualrun keeps
        if record.pos != self._header_pos:  # the records of one event share it: encode once
            self._header_pos, self._header = record.pos, [(POSITION_HEADER, str(record.pos).encode())]
        envelope = self.envelopes.get(record.topic)
        if envelope is not None and not isinstance(record.value, str):
            key = connectjson.wrap(self._keyed(record.topic, record.key, record.value), envelope[0])
            self.producer.produce(topic, key, connectjson.wrap(record.value, envelope[1]), self._header)
            return
        self.producer.produce(topic, record.key.encode(), encode(record.value), self._header)

    def _dead_letter(self, item: Item, reason: str) -> None:
        msg = item.message
        headers: list[tuple[str, str | bytes | None]] = [
            ("dualrun.error", reason.encode()),
            ("dualrun.source.topic", item.topic.encode()),
            ("dualrun.source.partition", str(item.partition).encode()),
            ("dualrun.source.offset", str(item.offset).encode()),
        ]
        self.producer.produce(
            self.spec.stream.dead_letter_topic,
            msg.key() if msg is not None else None,
            msg.value() if msg is not None else None,
            headers,
        )
        self.counters.dead_letters += 1

    def _restore_progress(self, progress: dict[str, Any]) -> None:
        self.counters.last_position = progress.get("position")
        self.counters.last_transaction = progress.get("transaction")
        self.counters.last_event_ts_ms = progress.get("ts_ms")

    def _commit(self) -> None:
        pending = self.counters.pending_position
        if pending is not None or self.counters.pending_transaction is not None:
            # Progress travels in the same transaction, so a restarted job knows what it has covered.
            progress = {
                "position": pending.to_dict() if pending is not None else self.counters.last_position,
                "transaction": self.counters.pending_transaction or self.counters.last_transaction,
                "ts_ms": self.counters.pending_ts_ms or self.counters.last_event_ts_ms,
            }
            self._produce(KafkaRecord("state", PROGRESS_KEY, progress))
        self.changelog.flush(upto=pending.order_value if pending is not None else None)
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.next_offsets.items()]
        group = self.consumer.consumer_group_metadata() if self.eos else None
        if self.producer.commit(offsets, group) == "aborted":
            self._with_retries("rewind", self._rewind)
            return
        if not self.eos and offsets:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        self.in_txn = False
        self.committed_at = time.time()
        self.counters.transactions += 1
        if pending is not None:
            # Only what Kafka has committed counts as reached: reconciliation waits on it.
            self.counters.last_position = pending.to_dict()
            self.counters.last_event_ts_ms = self.counters.pending_ts_ms
        if self.counters.pending_transaction is not None:
            self.counters.last_transaction = self.counters.pending_transaction
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
        self.counters.pending_position = None
        self.counters.pending_transaction = None
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
    def _input_partitions(self) -> list[TopicPartition]:
        topics = self.consumer.list_topics(timeout=5).topics
        return [
            TopicPartition(topic, p)
            for topic in [*self.inputs, self.marker_topic]
            if topic in topics
            for p in topics[topic].partitions
        ]

    def _measure_lag(self) -> int | None:
        """Input records the group has not committed, over every input partition.

        Measured against the broker's committed offsets, not this member's assignment: while a
        restarted job waits to be assigned its partitions, the lag is still what it is.
        """
        try:
            lag = 0
            for tp in self.consumer.committed(self._input_partitions(), timeout=5):
                _, high = self.consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                lag += max(0, high - max(tp.offset, 0))
            self.broker_unreachable = False
            return lag
        except KafkaException as exc:
            # An idle job meets no error of its own while the broker is away: this is how it notices.
            self.kafka_error = describe(error_of(exc))
            self.broker_unreachable = True
            return None

    def _inputs_drained(self) -> bool:
        """Nothing left to fetch on any input, the marker topic included (so a missing event or END
        is really missing, not merely behind)."""
        try:
            for tp in self.consumer.position(self.consumer.assignment()):
                _, high = self.consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                if tp.offset < high:
                    return False
            return True
        except KafkaException:
            return False

    def _publish_status(self, state: str, error: str | None = None) -> None:
        now = time.time()
        rate, idle = self.counters.rate(time.monotonic())
        self.last_status = time.monotonic()
        if state == "running" and (self.lag_measured_at is None or now - self.lag_measured_at >= LAG_EVERY_S):
            self.lag, self.lag_measured_at = self._measure_lag(), now
        if state == "running" and self.broker_unreachable:
            state, error = "retrying", f"cannot reach Kafka: {self.kafka_error}"
        status = StreamStatus(
            pid=os.getpid(),
            state=state,
            updated_at=now,
            started_at=self.started_at,
            exactly_once=self.eos,
            producer=self.kafka.masked_config(**self.producer_config),
            consumer=self.kafka.masked_config(**self.consumer_config),
            events_in=self.counters.events_in,
            events_out=self.counters.events_out,
            dead_letters=self.counters.dead_letters,
            transactions=self.counters.transactions,
            stalled_transactions=self.order.stalled,
            last_event_ts_ms=self.counters.last_event_ts_ms,
            last_position=self.counters.last_position,
            last_transaction=self.counters.last_transaction,
            events_per_second=round(rate, 1),
            idle_share=round(idle, 3),
            lag=self.lag,
            lag_measured_at=self.lag_measured_at,
            error=error,
            pipeline=self.spec.stream.pipeline,
            heartbeat_at=self.heartbeat_at,
            committed_at=self.committed_at,
            restarts=self.restarts,
            supervisor_pid=int(os.environ[SUPERVISOR_ENV]) if os.environ.get(SUPERVISOR_ENV) else None,
        )
        write_status(self.spec, status)
        self.latest_status = status
        if self.report is not None:
            self.report(status)
