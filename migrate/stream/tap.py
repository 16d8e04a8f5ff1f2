"""The tap: a foreign streaming job's output topic read into the changelog contract, incrementally.

`tap_output` reads an output topic with `isolation.level=read_committed` from where the
previous call stopped up to each partition's last stable offset taken at the start of the
call (never waiting for more), decodes every record (`migrate.stream.decoder`) and appends
one Parquet segment per chunk under its folder, `<state_dir>/tap/<group>/<output>/`:

    seg-<n>.parquet   changelog rows (contract of `comparators.sources`, plus `__kafka_partition`,
                      `__kafka_offset`, `__has_position`)
    tap.json          the topic, the next offset per partition, the segments that count, the
                      records it could not decode (count and samples), the last `__processed_at`

A segment is written (temp name, rename) before `tap.json` names it, so a crash leaves at worst
an unnamed segment, removed on the next call, and its records are read again. `__processed_at`
grows with the Kafka offset across calls (never with the wall clock going backwards), so rows of
one key with one position (Debezium's snapshot events share one) order by offset, not at random.

`migrate.stream.findings.tap_report` then says, from the segments, what a reconciliation must not
take on trust. `TapLog` is the comparators `Source` over the segments.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from cdc import client
from cdc.client import Kafka
from cdc.connector import POSITION_HEADER
from comparators.sql import ident, literal
from migrate.errors import KafkaUnavailable, TapError
from migrate.stream.decoder import DecodedRecord, RecordDecoder, UndecodableRecord
from migrate.stream.kafka import Action, Timeouts, backoff, classify, describe, error_of
from migrate.stream.rows import to_arrow  # also importable from here, as before the split

STATE = "tap.json"
CHUNK_ROWS = 200_000  # rows per segment: bounds the tap's memory on a first read of a large topic
SAMPLES = 5  # evidence rows kept per finding
IDLE_S = 15.0  # no record and no end reached for this long: the broker is not answering
# At the start of a read, how long an unreachable broker (restarting, a leader moving) is waited for,
# retrying with backoff, before the read gives up with KafkaUnavailable.
BROKER_WAIT_S = 60.0
# A topic the metadata says is missing is missing: not waited for (the stream job may never write it).
_MISSING = frozenset({KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART})


def tap_dir(state_dir: Path, group: str, output: str) -> Path:
    """`<state_dir>/tap/<group>/<output>`: one folder per consumer group and output."""
    return Path(state_dir) / "tap" / group / output


@dataclass(frozen=True)
class TapRun:
    """What one `tap_output` call read. `complete`: every partition reached the end taken at start."""

    output: str
    topic: str
    records_read: int
    undecodable: int
    complete: bool
    ends: dict[int, int]  # partition -> last stable offset taken at the start
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output, "topic": self.topic, "records_read": self.records_read,
            "undecodable": self.undecodable, "complete": self.complete,
            "ends": {str(p): o for p, o in self.ends.items()}, "seconds": round(self.seconds, 3),
        }  # fmt: skip


@dataclass
class _State:
    topic: str
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset to read
    files: list[str] = field(default_factory=list)
    undecodable: int = 0
    undecodable_samples: list[dict[str, Any]] = field(default_factory=list)
    last_stamp_us: int = 0

    @classmethod
    def load(cls, root: Path, topic: str) -> _State:
        path = root / STATE
        if not path.exists():
            return cls(topic)
        data = orjson.loads(path.read_bytes())
        if data["topic"] != topic:
            raise TapError(
                f"{root} was filled from topic {data['topic']!r}, not {topic!r}: delete that folder to read {topic!r}"
            )
        return cls(
            topic, {int(p): int(o) for p, o in data["offsets"].items()}, list(data["files"]),
            int(data.get("undecodable", 0)), list(data.get("undecodable_samples", [])),
            int(data.get("last_stamp_us", 0)),
        )  # fmt: skip

    def save(self, root: Path) -> None:
        data = {
            "topic": self.topic, "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
            "files": self.files, "undecodable": self.undecodable,
            "undecodable_samples": self.undecodable_samples, "last_stamp_us": self.last_stamp_us,
        }  # fmt: skip
        tmp = root / (STATE + ".tmp")
        tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        os.replace(tmp, root / STATE)


def segment_files(root: Path) -> list[Path]:
    """The segments that count (those `tap.json` names); empty before the first read."""
    path = root / STATE
    if not path.exists():
        return []
    return [root / name for name in orjson.loads(path.read_bytes())["files"]]


def _consumer(bootstrap_servers: Kafka) -> Consumer:
    return client.consumer(
        bootstrap_servers,
        {
            # Never joins or commits: partitions are assigned, progress is kept in tap.json.
            "group.id": f"dualrun-tap-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "queued.max.messages.kbytes": 256 * 1024,
            "fetch.wait.max.ms": 100,  # the last fetch at the end of the log returns soon
        },
    )


def passing(error: KafkaError) -> bool:
    """A consumer error the read outlives: end of partition, or one Kafka calls retriable (a broker
    restarting, a leader moving; librdkafka reconnects by itself). The read is still bounded: with no
    progress for its idle limit it stops early and the output is reported incomplete, never compared.

    >>> passing(KafkaError(KafkaError._TRANSPORT, "Broker transport failure", retriable=True))
    True
    >>> passing(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not authorized"))
    False
    """
    return error.code() == KafkaError._PARTITION_EOF or classify(error) is Action.RETRY


def waitable(error: KafkaError) -> bool:
    """An error of the read's first queries (metadata, end offsets) worth waiting out: one Kafka
    calls retriable (`migrate.stream.kafka.classify`: the broker down or restarting, a leader
    moving, a timeout), not a topic the broker says does not exist, nor a refusal.

    >>> waitable(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))
    True
    >>> waitable(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "Unknown topic", retriable=True))
    False
    """
    return error.code() not in _MISSING and classify(error) is Action.RETRY


def tap_output(
    bootstrap_servers: Kafka,
    topic: str,
    root: Path,
    keys: Sequence[str],
    *,
    output: str | None = None,
    schema: pa.Schema | None = None,
    position_header: str = POSITION_HEADER,
    timeout: float = 15.0,
    chunk_rows: int = CHUNK_ROWS,
    broker_wait_s: float = BROKER_WAIT_S,
) -> TapRun:
    """Read `topic` from where the last call stopped up to its current last stable offsets.

    `schema`: column types of the batch output (Arrow), so "12.50" and 12.5 both become
    DECIMAL(p, 2); columns it does not name are typed from their values. Raises TapError when
    the topic is missing, was recreated, or lost records to retention before they were read, and
    KafkaUnavailable when the broker did not answer for `broker_wait_s` seconds at the start
    (retried with backoff until then). A broker lost later ends the read early, `complete` False.
    """
    started = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    state = _State.load(root, topic)
    _drop_orphans(root, state)
    decoder = RecordDecoder(keys, position_header)
    writer = _SegmentWriter(root, state, schema, keys)
    consumer = _consumer(bootstrap_servers)
    read = 0
    try:
        ends, starts = _bounds(consumer, bootstrap_servers, topic, state, timeout, broker_wait_s)
        pending = {p for p in ends if starts[p] < ends[p]}
        for p in ends:
            state.offsets[p] = max(state.offsets.get(p, starts[p]), starts[p]) if p in pending else ends[p]
        if pending:
            consumer.assign([TopicPartition(topic, p, starts[p]) for p in sorted(pending)])
        last_progress = time.monotonic()
        while pending:
            messages = consumer.consume(num_messages=10_000, timeout=0.2)
            for msg in messages:
                p = msg.partition() or 0
                err = msg.error()
                if err is not None:
                    if passing(err):
                        continue  # the position and idle checks below decide
                    raise TapError(f"reading {topic!r} partition {p}: {describe(err)}")
                offset = msg.offset() or 0
                if p not in pending or offset >= ends[p]:
                    continue  # committed after the call started: the next call reads it
                try:
                    writer.add(decoder.decode(msg.key(), msg.value(), msg.headers(), p, offset))  # type: ignore[arg-type]
                except UndecodableRecord as exc:
                    writer.reject(p, offset, msg.key(), str(exc))
                state.offsets[p] = offset + 1
                read += 1
            if messages:
                last_progress = time.monotonic()
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                # Past the end: control records (commit/abort markers) need no reading.
                if tp.offset >= 0 and tp.offset >= ends[tp.partition]:
                    state.offsets[tp.partition] = ends[tp.partition]
                    pending.discard(tp.partition)
            for p in list(pending):
                if state.offsets[p] >= ends[p]:
                    pending.discard(p)
            if len(writer) >= chunk_rows:
                writer.flush()
            if pending and time.monotonic() - last_progress > max(IDLE_S, timeout):
                break
        writer.flush()
    except KafkaException as exc:
        raise TapError(f"reading {topic!r} on {bootstrap_servers}: {exc.args[0].str()}") from exc
    finally:
        consumer.close()
    return TapRun(output or root.name, topic, read, writer.rejected, not pending, ends, time.monotonic() - started)


def _bounds(
    consumer: Consumer, bootstrap_servers: Kafka, topic: str, state: _State, timeout: float, wait_s: float
) -> tuple[dict[int, int], dict[int, int]]:
    """`_bounds_now`, with errors worth waiting out (`waitable`) retried with backoff for `wait_s` in all;
    then KafkaUnavailable, one line with the last error."""
    started, attempt = time.monotonic(), 0
    while True:
        left = wait_s - (time.monotonic() - started)
        try:
            return _bounds_now(consumer, topic, state, max(1.0, min(timeout, left)))
        except KafkaException as exc:
            error = error_of(exc)
            if not waitable(error):
                raise
            delay = backoff(attempt, Timeouts())
            waited = time.monotonic() - started
            if waited + delay >= wait_s:
                raise KafkaUnavailable(
                    f"Kafka at {bootstrap_servers} did not answer for {waited:.0f}s while reading {topic!r} "
                    f"(last error: {error.name()}: {error.str()}); nothing was read: check that the broker is up "
                    f"and reachable (`dualrun stack status` for the local stack), then run again"
                ) from exc
            time.sleep(delay)
            attempt += 1


def _bounds_now(consumer: Consumer, topic: str, state: _State, timeout: float) -> tuple[dict[int, int], dict[int, int]]:
    """Per partition: the last stable offset now (read_committed ListOffsets) and where to start."""
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is not None and metadata.error is not None and waitable(metadata.error):
        raise KafkaException(metadata.error)  # e.g. LEADER_NOT_AVAILABLE while the broker starts
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise TapError(f"output topic {topic!r} does not exist; is the streaming job writing it?")
    ends: dict[int, int] = {}
    starts: dict[int, int] = {}
    for p in sorted(metadata.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
        done = state.offsets.get(p)
        if done is not None and done > high:
            raise TapError(
                f"topic {topic!r} partition {p} ends at {high} but the tap already read up to {done}: the topic was "
                f"recreated; delete the tap folder to read it again"
            )
        if (done if done is not None else 0) < low:
            # Versions the tap never saw: keys would be missing or stale, reported as false defects.
            raise TapError(
                f"topic {topic!r} partition {p}: records {done or 0}..{low - 1} were deleted (retention) before "
                f"the tap read them, so its changelog would have gaps; keep the output topic's history (retention "
                f"or compaction without deleting records) and rebuild the tap folder"
            )
        ends[p], starts[p] = high, done if done is not None else low
    return ends, starts


def _drop_orphans(root: Path, state: _State) -> None:
    """Segments written by a call that stopped before naming them in tap.json: read again."""
    named = set(state.files)
    for path in root.glob("seg-*"):
        if path.name not in named:
            path.unlink(missing_ok=True)


class _SegmentWriter:
    """Buffers decoded records; each flush writes one segment and then tap.json."""

    def __init__(self, root: Path, state: _State, schema: pa.Schema | None, keys: Sequence[str] = ()) -> None:
        self.root = root
        self.state = state
        self.schema = schema
        self.keys = tuple(keys)
        self.rows: list[DecodedRecord] = []
        self.rejected = 0

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, record: DecodedRecord) -> None:
        self.rows.append(record)

    def reject(self, partition: int, offset: int, key: bytes | None, reason: str) -> None:
        self.rejected += 1
        self.state.undecodable += 1
        if len(self.state.undecodable_samples) < SAMPLES:
            shown = None if key is None else key[:200].decode(errors="replace")
            sample = {"partition": partition, "offset": offset, "key": shown, "reason": reason}
            self.state.undecodable_samples.append(sample)

    def flush(self) -> None:
        now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
        base = max(now_us, self.state.last_stamp_us + 1)
        try:
            table = to_arrow(self.rows, self.schema, base) if self.rows else None
        except TapError:
            self.rows = self._without_misfits(self.rows)
            table = to_arrow(self.rows, self.schema, base) if self.rows else None
        if table is not None:
            name = f"seg-{len(self.state.files):06d}-{uuid.uuid4().hex[:6]}.parquet"
            tmp = self.root / (name + ".tmp")
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, self.root / name)
            self.state.files.append(name)
            self.state.last_stamp_us = base + len(self.rows)
        self.rows = []
        self.state.save(self.root)

    def _without_misfits(self, rows: list[DecodedRecord]) -> list[DecodedRecord]:
        """`rows` less those with a value that does not fit the batch output's type (Decimal('12.505')
        in DECIMAL(12, 2), 'abc' in BIGINT): a stream defect, kept as undecodable evidence (the
        output is then not compared, verdict unreadable) rather than rounded or made a config error."""
        kept: list[DecodedRecord] = []
        for row in rows:  # only on this rare path: find the records at fault, one by one
            try:
                to_arrow([row], self.schema, 0)
                kept.append(row)
            except TapError as exc:
                key = orjson.dumps({k: row.columns.get(k) for k in self.keys}, default=str)
                self.reject(row.partition, row.offset, key, str(exc))
        return kept


@dataclass(frozen=True)
class TapLog:
    """The tap's segments as a comparators `Source` (segments may differ in extra columns)."""

    files: tuple[str, ...]
    name: str = "tap"

    @property
    def label(self) -> str:
        return f"{self.name} ({len(self.files)} segment(s))"

    def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[str]) -> None:
        files = "[" + ", ".join(literal(f) for f in self.files) + "]"
        con.execute(f"CREATE TEMP VIEW {ident(name)} AS SELECT * FROM read_parquet({files}, union_by_name = true)")
