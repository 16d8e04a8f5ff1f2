"""Follow Debezium change topics and print each decoded event."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer
from rich.console import Console

from cdc.envelope import decode
from cdc.errors import EnvelopeError
from cdc.topics import quiet_logger
from migrate import render


def tail_events(bootstrap: str, topics: list[str], max_events: int, from_beginning: bool, console: Console) -> int:
    """Print events until `max_events` (0: forever); returns how many were printed."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"dualrun-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        },
        logger=quiet_logger(),
    )
    consumer.subscribe(topics)
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
