"""Follow Debezium change topics and print each decoded event."""

from __future__ import annotations

import uuid

import click
from confluent_kafka import KafkaException
from rich.console import Console

from cdc import client
from cdc.client import Kafka
from cdc.envelope import decode
from cdc.errors import EnvelopeError
from cdc.topics import TopicAdmin
from migrate import render
from migrate.errors import MissingTopics, StackError

WHY_MISSING = (
    "if its connector is RUNNING, run `dualrun cdc status`: a connector without topic.creation.default.* on a "
    "broker that does not auto-create topics never creates them; otherwise check --topic-prefix and --table"
)


def check_topics(admin: TopicAdmin, topics: list[str]) -> list[str]:
    """The topics that exist; MissingTopics (exit 2) when none does, instead of waiting forever."""
    try:
        existing = admin.topic_names()
    except KafkaException as exc:
        raise StackError(
            f"Kafka is not reachable at {admin.bootstrap} ({exc.args[0].str() if exc.args else exc}); "
            "start it with `dualrun stack up` or pass the right --kafka-port"
        ) from None
    missing = [t for t in topics if t not in existing]
    if len(missing) == len(topics):
        prefixes = {t.split(".", 1)[0] for t in topics}
        similar = sorted(t for t in existing if t.split(".", 1)[0] in prefixes)
        seen = f" (topics with that prefix: {', '.join(similar)})" if similar else ""
        raise MissingTopics(f"none of the topics {', '.join(topics)} exists on {admin.bootstrap}{seen}; {WHY_MISSING}")
    if missing:
        click.echo(f"warning: topic(s) {', '.join(missing)} do not exist yet; {WHY_MISSING}", err=True)
    return [t for t in topics if t not in missing]


def tail_events(bootstrap: Kafka, topics: list[str], max_events: int, from_beginning: bool, console: Console) -> int:
    """Print events until `max_events` (0: forever); returns how many were printed."""
    client.check_access(bootstrap)
    check_topics(TopicAdmin(bootstrap, timeout=10), topics)
    consumer = client.consumer(
        bootstrap,
        {
            "group.id": f"dualrun-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        },
    )
    consumer.subscribe(topics)  # all of them: a missing one is picked up once it is created
    seen = 0
    try:
        while max_events == 0 or seen < max_events:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                render.change_event(decode(msg.topic() or "", msg.key(), msg.value()), console)
            except EnvelopeError as exc:
                console.print(f"[red]undecodable record on {msg.topic()}@{msg.offset()}: {exc}[/]")
            seen += 1
    finally:
        consumer.close()
    return seen
