"""The rows a transform emits: changelog rows (`OutputChange`) and Kafka records (`KafkaRecord`).

A changelog row is the output's columns in schema order (None for a delete's value columns), then
the changelog's own columns, `Meta`. The transform builds it whole, so the changelog writer turns a
transaction's rows into columns with one transpose in C instead of a Python pass per column.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cdc.position import Position

# The changelog's own columns after an output's: op, binlog file, binlog offset, GTID, LSN,
# source commit time (ms), position order. `__processed_at` is stamped by the writer.
Meta = tuple[str, str | None, int | None, str | None, str | None, int, int]
META_COLUMNS = ("__op", "__pos_file", "__pos_offset", "__gtid", "__lsn", "__source_ts_ms", "__pos_order")


# Named tuples rather than frozen dataclasses: immutable too, and several are built per event.
class OutputChange(NamedTuple):
    """One row of an output changelog: `row` is the output's columns, then `Meta`."""

    output: str
    row: tuple[Any, ...]

    @property
    def pos_order(self) -> int:
        return int(self.row[-1])


class KafkaRecord(NamedTuple):
    """One record the runner produces in the job's transaction."""

    topic: str  # an output name (its stream.topic in the spec), or "state" (the job's state topic)
    key: str
    value: dict[str, Any] | str | None  # None: a tombstone
    pos: int = 0  # source position (order value) of the change, sent as the dualrun.position header


def meta(op: str, position: Position, pos_order: int, source_ts_ms: int) -> Meta:
    """
    >>> meta("u", Position.binlog("mysql-bin.000003", 4242, gtid="0-1-17"), 42, 1700000000000)
    ('u', 'mysql-bin.000003', 4242, '0-1-17', None, 1700000000000, 42)
    """
    binlog = position.kind == "binlog"
    return (op, position.file, position.minor if binlog else None, position.gtid, None, source_ts_ms, pos_order)
