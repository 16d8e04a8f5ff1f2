"""What a Python pipeline hands dualrun's exactly-once runner: a `Pipeline` of `Output`s and a
`Transform` factory. Data is frozen; the user's code is a small Protocol.

The runner consumes the change topics of `spec.cdc.tables`, releases events in commit order, calls
`Transform.apply` per event, and writes the returned changelog rows and Kafka records in one Kafka
transaction with the input offsets. On start, and after an aborted transaction, it builds a new
transform and replays the committed state topic and every `restore` output's topic into
`Transform.restore`, so state, outputs and offsets always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import pyarrow as pa

from cdc.envelope import ChangeEvent
from migrate.pipeline.records import KafkaRecord, OutputChange

TopicRole = Literal["compacted", "retained"]


class Transform(Protocol):
    """Deterministic and idempotent: the same events in the same order give the same rows, and an
    event at or before the position already applied to its entity changes nothing (Debezium
    redelivers after a restart)."""

    def apply(self, event: ChangeEvent) -> tuple[Sequence[OutputChange], Sequence[KafkaRecord]]: ...

    def restore(self, topic: str, key: str, value: Any, order: int | None) -> None:
        """One committed record of the state topic (`topic` "state") or of a `restore` output's
        topic (`topic` the output's name): `value` is the decoded JSON (None: a tombstone), `order`
        the position order from its `dualrun.position` header (None when it has none)."""
        ...


@dataclass(frozen=True)
class Output:
    """One output as the pipeline produces it."""

    schema: pa.Schema  # key columns first, in `keys` order; the changelog adds its own columns
    keys: tuple[str, ...]
    # How the runner creates the output's topic (when the spec names one): compacted (latest value
    # per key) or retained (a history kept one week).
    topic_role: TopicRole = "retained"
    # The runner replays this output's committed topic into Transform.restore on start (compacted
    # topics only; their tombstones are kept four weeks, the transform's memory of deletes).
    restore: bool = False

    def __post_init__(self) -> None:
        if tuple(self.schema.names[: len(self.keys)]) != self.keys:
            raise ValueError(f"the schema's first columns must be the keys {self.keys}, not {self.schema.names}")
        if self.restore and self.topic_role != "compacted":
            raise ValueError("only a compacted topic can restore state")

    def key_of(self, change: OutputChange) -> tuple[Any, ...]:
        return change.row[: len(self.keys)]

    def values_of(self, change: OutputChange) -> dict[str, Any] | None:
        """The value columns after the change, or None for a delete."""
        names = self.schema.names
        if change.row[len(names)] == "d":
            return None
        width = len(self.keys)
        return dict(zip(names[width:], change.row[width : len(names)], strict=True))


@dataclass(frozen=True)
class Pipeline:
    """A streaming pipeline dualrun runs itself (`stream.pipeline: "pkg.module:ATTR"` in the spec)."""

    name: str
    tables: tuple[str, ...]  # source table names (no database) whose change events the transform reads
    outputs: Mapping[str, Output]
    transform: Callable[[], Transform]
