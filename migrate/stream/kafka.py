"""The streaming job's Kafka producer, and what the job does about each Kafka error.

librdkafka's contract for a transactional producer (see `rd_kafka_error_is_retriable`,
`rd_kafka_error_txn_requires_abort`, `rd_kafka_error_is_fatal` in its INTRODUCTION.md,
"Transactional producer: error handling"):

- retriable: the same call may succeed later (broker restarting, coordinator moving, a timeout);
  call it again. Nothing is lost: the open transaction is still open.
- requires abort: the transaction is spoiled (a record failed, the group rebalanced, the broker
  aborted a transaction that outlived `transaction.timeout.ms`); abort it, rewind the inputs to the
  committed offsets and rebuild state, then carry on.
- fatal: this producer instance is finished (fenced by a newer instance with the same
  `transactional.id`, or a broken invariant); only a new process may continue. The job exits
  non-zero with one line and its supervisor starts it again.

`classify` maps a `KafkaError` to one of these, and `TransactionalProducer` applies it to
its own calls: it retries with backoff, answers `commit()` with "committed" or "aborted",
and raises `KafkaFatal` for the rest.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from cdc.topics import quiet_logger
from migrate.errors import StreamJobError

T = TypeVar("T")


class Action(StrEnum):
    RETRY = "retry"  # back off, call again (or abort and rewind once the retry budget is spent)
    ABORT = "abort"  # abort the transaction, rewind to the committed offsets, rebuild state
    FATAL = "fatal"  # exit non-zero; a supervisor starts a new instance


# Another instance with our transactional.id took over, or the broker no longer knows our epoch:
# whatever this instance writes next would be refused, so it must end.
FENCED = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.TRANSACTION_COORDINATOR_FENCED,
    }
)
# Settings or permissions: retrying cannot help, and neither can a restart, but a restart says it loudly.
MISCONFIGURED = frozenset(
    {
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.INVALID_TRANSACTION_TIMEOUT,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)
# Transport and coordinator trouble that librdkafka does not always flag retriable (e.g. a
# transport failure surfaced by a consumer or an admin call): a broker restart looks like this.
TRANSIENT = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._WAIT_COORD,
        KafkaError._RESOLVE,
        KafkaError._QUEUE_FULL,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.CONCURRENT_TRANSACTIONS,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NOT_ENOUGH_REPLICAS,
    }
)
# The consumer group moved on without us (rebalance, session or poll interval expired): the
# offsets of this transaction may no longer be ours to commit.
GROUP_MOVED = frozenset(
    {
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError._MAX_POLL_EXCEEDED,
    }
)


def classify(error: KafkaError) -> Action:
    """What to do about `error`; the library's own flags first, then its code.

    >>> classify(KafkaError(KafkaError._TRANSPORT, "Broker transport failure", retriable=True))
    <Action.RETRY: 'retry'>
    >>> classify(KafkaError(KafkaError.PRODUCER_FENCED, "fenced", fatal=True))
    <Action.FATAL: 'fatal'>
    """
    code = error.code()
    if error.fatal() or code in FENCED or code in MISCONFIGURED:
        return Action.FATAL
    if error.txn_requires_abort() or code in GROUP_MOVED:
        return Action.ABORT
    if error.retriable() or code in TRANSIENT:
        return Action.RETRY
    # Anything else is a state this code did not expect: a fresh process restores from what Kafka
    # committed, which is always consistent, so ending is the safe choice.
    return Action.FATAL


def describe(error: KafkaError) -> str:
    """One line: `_TRANSPORT: Local: Broker transport failure (retry)`."""
    return f"{error.name()}: {error.str()} ({classify(error)})"


def consumer_config(group: str) -> dict[str, Any]:
    """The streaming job's own consumer properties (the user's cluster settings go under them)."""
    return {
        "group.id": group,
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


def producer_config(transactional_id: str | None) -> dict[str, Any]:
    """The streaming job's own producer properties; `transactional_id` None: exactly-once off."""
    config: dict[str, Any] = {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4"}
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
    return config


class KafkaFatal(StreamJobError):
    """This producer or consumer cannot continue; the process exits and its supervisor restarts it."""


class KafkaInterrupted(StreamJobError):
    """A stop was requested while Kafka was unavailable: nothing uncommitted is kept, which is safe."""


@dataclass(frozen=True)
class Timeouts:
    """How long each transactional call may block, in seconds, and how long to keep retrying."""

    # transaction.timeout.ms: the broker aborts a transaction open this long (a hung or stopped job's)
    # and fences its producer epoch. Far above a normal transaction (well under a second).
    transaction_s: float = 30.0
    init_s: float = 10.0  # init_transactions: find the coordinator, fence older instances
    # One attempt of send_offsets_to_transaction, commit or abort; the job's heartbeat waits for it,
    # so it stays well below the checklist's heartbeat limit (migrate.checklist.streaming).
    call_s: float = 10.0
    queue_full_s: float = 60.0  # waiting for room in the local queue before the transaction is given up
    commit_budget_s: float = 20.0  # retrying one commit before aborting it (below transaction_s)
    backoff_first_s: float = 0.5
    backoff_max_s: float = 5.0


def backoff(attempt: int, timeouts: Timeouts) -> float:
    """Exponential backoff, capped: 0.5, 1, 2, 4, 5, 5, ... seconds."""
    return float(min(timeouts.backoff_max_s, timeouts.backoff_first_s * 2 ** max(0, attempt)))


def error_of(exc: BaseException) -> KafkaError:
    """The KafkaError inside a KafkaException (or a BufferError: the local queue is full)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    if isinstance(exc, BufferError):
        return KafkaError(KafkaError._QUEUE_FULL, str(exc), retriable=True)
    return KafkaError(KafkaError._FAIL, f"{type(exc).__name__}: {exc}")


Outcome = Literal["committed", "aborted"]
Headers = list[tuple[str, str | bytes | None]] | None
OnRetry = Callable[[KafkaError, int], None]  # (error, attempt): heartbeat, or raise to give up


def with_retries(
    what: str, call: Callable[[], object], on_retry: Callable[[KafkaError, int], None], timeouts: Timeouts
) -> None:
    """`call` again after retriable or abortable Kafka errors, with backoff (`on_retry` before each
    wait); fatal ones raise KafkaFatal."""
    attempt = 0
    while True:
        try:
            call()
            return
        except KafkaException as exc:
            error = error_of(exc)
            if classify(error) is Action.FATAL:
                raise KafkaFatal(f"streaming job {what} failed: {describe(error)}") from exc
            on_retry(error, attempt)
            time.sleep(backoff(attempt, timeouts))
            attempt += 1


class TransactionalProducer:
    """confluent_kafka.Producer, transactional when `transactional_id` is set; connects on first use.

    Records go in with `produce` (never raises BufferError: it waits for room), transactions end
    with `commit` (answers "committed" or "aborted") or `abort`. Retriable errors are retried with
    backoff, calling `on_retry` before each wait; fatal ones raise `KafkaFatal`.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        transactional_id: str | None,
        *,
        timeouts: Timeouts = Timeouts(),
        on_retry: OnRetry | None = None,
    ) -> None:
        self.config = dict(config)
        if transactional_id:
            self.config.update({"transactional.id": transactional_id, "enable.idempotence": True})
            self.config.setdefault("transaction.timeout.ms", int(timeouts.transaction_s * 1000))
        self.transactional = bool(transactional_id)
        self.timeouts = timeouts
        self.on_retry = on_retry
        self._inner: Producer | None = None
        self.calling: str | None = None  # the Kafka call under way, for the job's watchdog to name
        self.calling_since = 0.0  # monotonic seconds
        self.in_transaction = False
        self.produced = 0  # records produced in the open transaction
        # The local queue's limit in records: a transaction is committed well before it.
        self.capacity = int(self.config.get("queue.buffering.max.messages", 100_000))

    @property
    def producer(self) -> Producer:
        if self._inner is None:
            inner = Producer(self.config, logger=quiet_logger())
            if self.transactional:
                self._retrying("init_transactions", lambda: inner.init_transactions(self.timeouts.init_s))
            self._inner = inner
        return self._inner

    # -- retries ---------------------------------------------------------------------------------
    def _retrying(self, what: str, call: Callable[[], T], budget_s: float | None = None) -> T:
        """`call` until it succeeds; retriable errors back off (within `budget_s`, else re-raised)."""
        started, attempt = time.monotonic(), 0
        while True:
            try:
                self.calling, self.calling_since = what, time.monotonic()
                return call()
            except KafkaException as exc:
                error = error_of(exc)
                action = classify(error)
                if action is Action.FATAL:
                    raise KafkaFatal(f"Kafka {what} failed for good: {describe(error)}") from exc
                if action is Action.ABORT:
                    raise
                if budget_s is not None and time.monotonic() - started >= budget_s:
                    raise
                if self.on_retry is not None:
                    self.on_retry(error, attempt)
                time.sleep(backoff(attempt, self.timeouts))
                attempt += 1
            finally:
                self.calling = None

    # -- records ---------------------------------------------------------------------------------
    def begin(self) -> None:
        if not self.in_transaction:
            if self.transactional:
                self._retrying("begin_transaction", self.producer.begin_transaction)
            self.in_transaction = True
            self.produced = 0

    def produce(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers = None) -> None:
        """Queue one record; when the local queue is full, serve delivery reports until it has room."""
        try:
            self.producer.produce(topic, key=key, value=value, headers=headers)
        except BufferError:
            self._wait_for_room(topic, key, value, headers)
        self.produced += 1

    def _wait_for_room(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        deadline = time.monotonic() + self.timeouts.queue_full_s
        attempt = 0
        while True:
            self.producer.poll(0.1)  # the broker acknowledges, the queue drains
            try:
                self.producer.produce(topic, key=key, value=value, headers=headers)
                return
            except BufferError as exc:
                if time.monotonic() >= deadline:
                    # The broker is not taking records: give the transaction up (the caller rewinds).
                    raise KafkaException(
                        KafkaError(
                            KafkaError._QUEUE_FULL,
                            f"local queue full for {self.timeouts.queue_full_s:g}s",
                            txn_requires_abort=self.transactional,
                            retriable=not self.transactional,
                        )
                    ) from exc
                if self.on_retry is not None and attempt % 20 == 0:
                    self.on_retry(error_of(exc), attempt)
                attempt += 1

    def poll(self, timeout: float = 0.0) -> int:
        return int(self.producer.poll(timeout))

    @property
    def full(self) -> bool:
        """The open transaction holds half of what the local queue can: time to commit it."""
        return self.produced >= self.capacity // 2

    # -- transactions ----------------------------------------------------------------------------
    def commit(self, offsets: list[TopicPartition], group: Any) -> Outcome:
        """Commit the records and the input `offsets` of `group` (consumer group metadata) as one.

        Retriable errors are retried for `commit_budget_s`; after that, or when Kafka demands an
        abort, the transaction is aborted and "aborted" returned: the caller rewinds its inputs.
        Without a transactional id, records are flushed and the caller commits the offsets itself.
        """
        if not self.transactional:
            self._retrying("flush", self._flush_all)
            self.in_transaction = False
            return "committed"
        producer, budget, call_s = self.producer, self.timeouts.commit_budget_s, self.timeouts.call_s
        started = time.monotonic()
        try:
            if offsets:
                send = lambda: producer.send_offsets_to_transaction(offsets, group, call_s)  # noqa: E731
                self._retrying("send_offsets_to_transaction", send, budget)
            left = max(1.0, budget - (time.monotonic() - started))
            self._retrying("commit_transaction", lambda: producer.commit_transaction(call_s), left)
        except KafkaException:
            # Abortable, or retriable past the budget: the broker may abort it anyway at
            # transaction.timeout.ms; aborting now lets the job rewind and go on.
            self.abort()
            return "aborted"
        self.in_transaction = False
        return "committed"

    def _flush_all(self) -> None:
        left = self.producer.flush(self.timeouts.call_s)
        if left:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{left} record(s) still unsent", retriable=True))

    def stuck_for(self) -> float:
        """Seconds the Kafka call under way has run past twice its own timeout (0 when none is).

        librdkafka does not always honour a call's timeout (send_offsets_to_transaction while the
        group coordinator is away: librdkafka issues #5456, #5511); the caller decides what to do.
        """
        if self.calling is None:
            return 0.0
        return max(0.0, time.monotonic() - self.calling_since - 2 * max(self.timeouts.call_s, self.timeouts.init_s))

    def abort(self) -> None:
        """Abort the open transaction, retrying for as long as the broker is away (with `on_retry`)."""
        if self.transactional and self._inner is not None:
            inner = self._inner
            try:
                self._retrying("abort_transaction", lambda: inner.abort_transaction(self.timeouts.call_s))
            except KafkaException as exc:  # an abort that itself demands an abort: nothing left to try
                raise KafkaFatal(f"Kafka abort_transaction failed: {describe(error_of(exc))}") from exc
        self.in_transaction = False
        self.produced = 0

    def close(self) -> None:
        """Deliver what is queued (outside a transaction) and let go of the client."""
        if self._inner is not None:
            if self.in_transaction and self.transactional:
                # Never committed: invisible to read_committed readers whether or not the abort lands.
                with contextlib.suppress(KafkaException):
                    self._inner.abort_transaction(5)
            self._inner.flush(5)
            self._inner = None
