"""Each class of librdkafka error maps to one action of the streaming job, on the library's own KafkaError."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from migrate.stream.kafka import (
    Action,
    KafkaFatal,
    Timeouts,
    TransactionalProducer,
    backoff,
    classify,
    describe,
    error_of,
)

E = KafkaError


@pytest.mark.parametrize(
    ("error", "action"),
    [
        # retriable: the broker restarting, the coordinator moving, timeouts
        (E(E._TRANSPORT, "Failed to add offsets to transaction: Broker transport failure", retriable=True), "retry"),
        (E(E._TRANSPORT, "Broker transport failure"), "retry"),  # consumers report it without the flag
        (E(E._ALL_BROKERS_DOWN, "1/1 brokers are down"), "retry"),
        (E(E._TIMED_OUT, "commit_transaction timed out", retriable=True), "retry"),
        (E(E.REQUEST_TIMED_OUT, "request timed out"), "retry"),
        (E(E.COORDINATOR_NOT_AVAILABLE, "coordinator not available", retriable=True), "retry"),
        (E(E.NOT_COORDINATOR, "not coordinator"), "retry"),
        (E(E.COORDINATOR_LOAD_IN_PROGRESS, "loading"), "retry"),
        (E(E.CONCURRENT_TRANSACTIONS, "previous transaction still completing"), "retry"),
        (E(E._QUEUE_FULL, "Local: Queue full"), "retry"),
        (E(E.NOT_ENOUGH_REPLICAS, "isr shrank"), "retry"),
        (E(E.UNKNOWN_TOPIC_OR_PART, "metadata not yet propagated", retriable=True), "retry"),  # the flag decides
        # abortable: the transaction is spoiled, the producer is not
        (E(E._MSG_TIMED_OUT, "a record of the transaction failed", txn_requires_abort=True), "abort"),
        (E(E.INVALID_TXN_STATE, "transaction aborted by the broker", txn_requires_abort=True), "abort"),
        (E(E.UNKNOWN_PRODUCER_ID, "producer id expired", txn_requires_abort=True), "abort"),
        (E(E.ILLEGAL_GENERATION, "the group rebalanced"), "abort"),
        (E(E.UNKNOWN_MEMBER_ID, "the member left the group"), "abort"),
        (E(E._MAX_POLL_EXCEEDED, "max.poll.interval.ms exceeded"), "abort"),
        (E(E._TIMED_OUT, "both flags: abort wins", retriable=True, txn_requires_abort=True), "abort"),
        # fatal: fenced, misconfigured, or a state the code does not expect
        (E(E._FENCED, "fenced by a newer instance", fatal=True), "fatal"),
        (E(E.PRODUCER_FENCED, "producer fenced"), "fatal"),
        (E(E.INVALID_PRODUCER_EPOCH, "epoch bumped by a newer instance"), "fatal"),
        (E(E.TRANSACTION_COORDINATOR_FENCED, "coordinator fenced"), "fatal"),
        (E(E._FATAL, "idempotence invariant broken", fatal=True), "fatal"),
        (E(E.OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence gap", fatal=True), "fatal"),
        (E(E._TRANSPORT, "fatal flag wins over the code", fatal=True, retriable=True), "fatal"),
        (E(E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "not allowed"), "fatal"),
        (E(E.INVALID_TRANSACTION_TIMEOUT, "above transaction.max.timeout.ms"), "fatal"),
        (E(E.SASL_AUTHENTICATION_FAILED, "wrong password"), "fatal"),
        (E(E._STATE, "Operation not valid in state Ready"), "fatal"),
        (E(E._INVALID_ARG, "bad argument"), "fatal"),
    ],
    ids=lambda v: v.name() if isinstance(v, KafkaError) else v,
)
def test_each_error_class_maps_to_one_action(error: KafkaError, action: str) -> None:
    assert classify(error) == Action(action)
    assert describe(error).startswith(f"{error.name()}: ") and describe(error).endswith(f"({action})")


def test_error_of_unwraps_exceptions_and_treats_a_full_queue_as_retriable() -> None:
    inner = E(E.PRODUCER_FENCED, "fenced")
    assert error_of(KafkaException(inner)) is inner
    full = error_of(BufferError("Local: Queue full"))
    assert full.code() == E._QUEUE_FULL and classify(full) is Action.RETRY
    other = error_of(ValueError("boom"))
    assert classify(other) is Action.FATAL and "ValueError: boom" in other.str()


def test_backoff_doubles_and_is_capped() -> None:
    t = Timeouts(backoff_first_s=0.5, backoff_max_s=5.0)
    assert [backoff(n, t) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_full_local_queue_waits_for_room_and_then_gives_up_with_a_retriable_error() -> None:
    """A real librdkafka producer whose broker is not there: the queue (3 records) fills and stays full."""
    seen: list[str] = []
    producer = TransactionalProducer(
        {"bootstrap.servers": "127.0.0.1:1", "queue.buffering.max.messages": 3, "message.timeout.ms": 60000},
        None,
        timeouts=Timeouts(queue_full_s=0.6),
        on_retry=lambda error, attempt: seen.append(error.name()),
    )
    try:
        for n in range(3):
            producer.produce("t", str(n).encode(), b"v")
        started = time.monotonic()
        with pytest.raises(KafkaException) as raised:
            producer.produce("t", b"3", b"v")  # never BufferError
        assert time.monotonic() - started >= 0.6  # it waited for room before giving up
        assert classify(raised.value.args[0]) is Action.RETRY and "_QUEUE_FULL" in seen
        assert producer.produced == 3 and producer.full  # more than half the queue: the job commits now
    finally:
        producer._inner = None  # nothing to deliver: skip close()'s flush against an absent broker


def test_a_transactional_producer_connects_lazily_and_sizes_transactions_to_its_queue() -> None:
    producer = TransactionalProducer(
        {"bootstrap.servers": "127.0.0.1:1", "queue.buffering.max.messages": 1000}, "dualrun-test"
    )
    assert producer._inner is None  # no client, no connection attempt until first use
    assert producer.config["transactional.id"] == "dualrun-test" and producer.config["enable.idempotence"] is True
    assert producer.capacity == 1000
    producer.produced = 499
    assert not producer.full
    producer.produced = 500
    assert producer.full


def test_fatal_errors_raise_one_line_and_retriable_ones_are_retried_within_the_budget() -> None:
    calls: list[int] = []
    producer = TransactionalProducer({"bootstrap.servers": "127.0.0.1:1"}, None,
                                     timeouts=Timeouts(backoff_first_s=0.01, backoff_max_s=0.01))  # fmt: skip

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise KafkaException(E(E._TRANSPORT, "Broker transport failure", retriable=True))
        return "ok"

    assert producer._retrying("flaky", flaky) == "ok" and len(calls) == 3

    def fenced() -> None:
        raise KafkaException(E(E.PRODUCER_FENCED, "Producer fenced by newer instance", fatal=True))

    with pytest.raises(KafkaFatal, match="^Kafka commit_transaction failed for good: PRODUCER_FENCED") as raised:
        producer._retrying("commit_transaction", fenced)
    assert "\n" not in str(raised.value) and raised.value.exit_code != 0

    def down() -> None:
        raise KafkaException(E(E._TRANSPORT, "Broker transport failure", retriable=True))

    started = time.monotonic()
    with pytest.raises(KafkaException):
        producer._retrying("send_offsets_to_transaction", down, budget_s=0.1)
    assert time.monotonic() - started < 2


def test_a_call_running_past_twice_its_timeout_counts_as_stuck() -> None:
    """librdkafka #5456: send_offsets_to_transaction may ignore its timeout; the job's watchdog asks this."""
    producer = TransactionalProducer({"bootstrap.servers": "127.0.0.1:1"}, "t", timeouts=Timeouts(call_s=10, init_s=10))
    assert producer.stuck_for() == 0.0  # nothing under way
    producer.calling, producer.calling_since = "send_offsets_to_transaction", time.monotonic() - 15
    assert producer.stuck_for() == 0.0  # past its own timeout, not yet twice
    producer.calling_since = time.monotonic() - 25
    assert 4 < producer.stuck_for() < 6
