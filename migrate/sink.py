"""The third side: where users read an output, a table a Kafka Connect JDBC sink writes from the
output topic (`outputs.X.sink`, Debezium's JDBC sink connector).

The sink is checked against what it was fed, at the same point: the output topic as a
read_committed consumer sees it. Alignment (`align_sink`):

1. the read point E is the output topic's end offsets once the stream side is compared (the
   caller reconciles batch vs stream first, so the stream has passed the batch position);
2. wait (bounded) until the sink's consumer group `connect-<connector>` has committed ≥ E on every
   partition: Connect commits a sink's offsets only after its task flushed them, so every record
   before E is in the table;
3. read the sink table, then the topic from the start to its new end E'. The topic's state at E
   (last record per key; a tombstone deletes) is the expected table; keys with records in [E, E')
   may or may not have reached the table yet and are left out of both sides (in flight).

Differences are the sink's own (`side` "sink"): rows only in the table (e.g. a sink reading with
read_uncommitted wrote an aborted transaction's records), rows missing from it, values that differ.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pyarrow as pa

from cdc import client
from cdc.client import PartitionReader
from cdc.connector import file_reference
from cdc.errors import CdcError
from cdc.sink import JdbcSinkSettings
from cdc.topics import TopicAdmin
from comparators import FrameSource, Reconciliation, reconcile
from comparators.result import Schema, Side
from comparators.sources import open_source
from migrate.errors import DualrunError, SpecError
from migrate.spec import OutputSinkSpec, PipelineSpec
from migrate.stream.connectjson import unwrap

SIDE = "sink"  # the side's name in results, the run history and metrics
PASSWORD_KEY = "connection.password"  # the key in `password_file` (the connector property's name)


class SinkError(DualrunError):
    """The sink cannot be registered or read (one line: what, where, what to do)."""


def side_output(output: str) -> str:
    """The sink side's output id, in the run history (`<spec>/<id>`), metrics and checks.

    >>> side_output("orders_enriched")
    'orders_enriched@sink'
    """
    return f"{output}@{SIDE}"


def offsets_text(topic: str, offsets: dict[int, int] | tuple[tuple[int, int | None], ...]) -> str:
    """A position on a topic, one offset per partition (the sink side's position in the history).

    >>> offsets_text("orders-enriched", {1: 9, 0: 12})
    'orders-enriched [0]@12,[1]@9'
    """
    items = sorted(dict(offsets).items())
    return f"{topic} " + ",".join(f"[{p}]@{'-' if o is None else o}" for p, o in items)


def sink_of(spec: PipelineSpec, output: str) -> OutputSinkSpec:
    found = spec.outputs[output].sink
    if found is None:
        raise SpecError(f"outputs.{output}.sink is not set; add `sink: {{table: {output}}}` to the spec")
    return found


def connector_name(spec: PipelineSpec, output: str) -> str:
    """`outputs.X.sink.connector`, else `<spec name>-<table>-sink` (`-sink` once, also for a table
    named `..._sink`)."""
    import re

    sink = sink_of(spec, output)
    if sink.connector:
        return sink.connector
    # A variant's spec name has a `+` (`shop-orders+replay`): keep connector names URL-plain.
    plain = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{spec.name}-{sink.table}")
    return plain if plain.endswith("-sink") else f"{plain}-sink"


def sink_url(spec: PipelineSpec, output: str, *, password: bool) -> str:
    """The sink database's SQLAlchemy URL (the local stack's PostgreSQL unless `sink.url`)."""
    from migrate.stackconfig import StackConfig

    sink = sink_of(spec, output)
    if sink.url is not None:
        url = sink.url
        if password:
            secret = _password(spec, output)
            parts = urlsplit(url)
            user, _, host = parts.netloc.rpartition("@")
            secret = secret if secret is not None else StackConfig.from_env(spec.path(".")).db_password
            url = parts._replace(netloc=f"{user}:{quote(secret, safe='')}@{host}").geturl()
        return url
    if not spec.local:
        raise SpecError(
            f"outputs.{output}.sink.url is not set; give the sink database's URL (postgresql+psycopg://...)"
        )
    return StackConfig.from_env(spec.path(".")).postgres_url(password=password)


def _password(spec: PipelineSpec, output: str) -> str | None:
    """The sink database's password for dualrun: `password_env`'s variable, else `connection.password`
    of `password_file` when dualrun can read it; None on the local stack (its own password)."""
    import os

    from migrate.services.properties import read_properties

    sink = sink_of(spec, output)
    secret = os.environ.get(sink.password_env)
    if secret is not None:
        return secret
    where = f"outputs.{output}.sink"
    if sink.password_file is not None:
        try:
            found = read_properties(Path(sink.password_file)).get(PASSWORD_KEY)
        except OSError as exc:
            if spec.local:
                return None
            raise SpecError(
                f"{where}: environment variable {sink.password_env} is not set and password_file "
                f"{sink.password_file} is not readable here ({exc.strerror}); export {sink.password_env}"
            ) from None
        if found is None:
            raise SpecError(f"{where}.password_file: {sink.password_file} has no {PASSWORD_KEY}; add that key")
        return found
    if not spec.local:
        raise SpecError(f"{where}.password_env: environment variable {sink.password_env} is not set")
    return None


def password_reference(spec: PipelineSpec, output: str) -> str | None:
    """What the connector config carries as `connection.password`: a FileConfigProvider reference to
    `password_file`, else on the local stack's PostgreSQL to the stack's secrets file; None: the
    password itself (a secret in clear in Connect's config, which the checklist flags)."""
    from migrate.stackconfig import StackConfig

    sink = sink_of(spec, output)
    if sink.password_file is not None:
        return file_reference(sink.password_file, PASSWORD_KEY)
    if sink.url is None and spec.local:
        # The stack's home (DUALRUN_HOME), where its worker runs, as for cdc.password_file: not the spec's state dir.
        return file_reference(StackConfig.from_env().connect_secrets_file, PASSWORD_KEY)
    return None


def sink_settings(spec: PipelineSpec, output: str, *, read_committed: bool | None = None) -> JdbcSinkSettings:
    """The JDBC sink connector for `output`'s topic into its table; `read_committed` None: the spec's."""
    from sqlalchemy.engine import make_url

    sink, topic = sink_of(spec, output), spec.outputs[output].stream.topic
    if topic is None:
        raise SpecError(f"outputs.{output}: a sink reads the output topic; set outputs.{output}.stream.topic")
    url = make_url(sink_url(spec, output, password=True))
    return JdbcSinkSettings(
        name=connector_name(spec, output), topics=(topic,), table=sink.table,
        jdbc_url=f"jdbc:postgresql://{url.host}:{url.port or 5432}/{url.database}",
        user=url.username or "", password=url.password or "",
        read_committed=sink.read_committed if read_committed is None else read_committed,
        key_fields=tuple(spec.outputs[output].keys), password_ref=password_reference(spec, output),
    )  # fmt: skip


def clear_password_warning(output: str, settings: JdbcSinkSettings) -> str | None:
    """One line when `settings` send the sink's password itself to Connect (no password_file):
    what, where the fix goes; never the value. None: a reference, or no password at all."""
    if settings.password_ref is not None or not settings.password:
        return None
    return (
        f"warning: outputs.{output}.sink has no password_file: connector {settings.name} gets the password "
        f"in clear (Connect's config topic and GET /connectors/{settings.name}/config show it); "
        f"set outputs.{output}.sink.password_file to a properties file on the Connect worker"
    )


@dataclass(frozen=True)
class SinkRegistration:
    """A sink connector as registered, and the warning to show at once (None: none): a password sent
    in clear, named by its setting (the checklist's connector_secrets flags it too). The caller shows
    it (the CLI on stderr): this module never prints."""

    settings: JdbcSinkSettings
    warning: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "warning": self.warning}


def register_sink(spec: PipelineSpec, output: str, *, read_committed: bool | None = None) -> SinkRegistration:
    """Create or update the sink connector on Connect (PUT /connectors/<name>/config)."""
    # A local sink's reference names the stack's secrets file, which `stack up` writes (Connect.start).
    settings = sink_settings(spec, output, read_committed=read_committed)
    connect = spec.cdc.connect_client(secrets=(settings.password,))
    connect.put(settings.name, settings.to_config())
    return SinkRegistration(settings, clear_password_warning(output, settings))


@dataclass(frozen=True)
class SinkAlignment:
    """The read point E (end offsets of the output topic, per partition) and how far the sink's
    consumer group had committed when dualrun stopped waiting."""

    connector: str
    group: str
    topic: str
    ends: tuple[tuple[int, int], ...]  # (partition, offset the sink must have committed: see align_sink)
    committed: tuple[tuple[int, int | None], ...]  # (partition, committed offset; None: never)
    waited_s: float
    read_point: tuple[tuple[int, int], ...] = ()  # (partition, the topic's end offset at the read point)

    @property
    def reached(self) -> bool:
        done = dict(self.committed)
        return all((done.get(p) or 0) >= end for p, end in self.ends)

    @property
    def lag(self) -> int:
        done = dict(self.committed)
        return sum(max(0, end - (done.get(p) or 0)) for p, end in self.ends)

    def to_dict(self) -> dict[str, Any]:
        return {"connector": self.connector, "group": self.group, "topic": self.topic, "reached": self.reached,
                "lag": self.lag, "needed": dict(self.ends), "committed": dict(self.committed),
                "read_point": dict(self.read_point),
                "waited_s": round(self.waited_s, 3)}  # fmt: skip


def _ends(spec: PipelineSpec, topic: str) -> dict[int, int]:
    """The topic's end offsets now (high watermarks), per partition."""
    admin = TopicAdmin(spec.kafka.client())
    return {p.partition: p.end for p in admin.group_lag(f"dualrun-sink-ends-{topic}", [topic]).partitions}


def align_sink(spec: PipelineSpec, output: str, delivered: dict[int, int], ends: dict[int, int],
               timeout: float) -> SinkAlignment:  # fmt: skip
    """Wait up to `timeout` s until `connect-<connector>` has committed `delivered` on every partition.

    `delivered` is, per partition, one past the last record a read_committed consumer gets before
    the read point: Connect commits a sink's offsets as one past the last record it handed the
    task, so transaction markers and aborted records at a partition's tail are never "committed"
    by a read_committed sink and the end offset itself may stay out of reach.
    """
    name, topic = connector_name(spec, output), spec.outputs[output].stream.topic or ""
    group, admin, started = f"connect-{name}", TopicAdmin(spec.kafka.client()), time.monotonic()
    target = tuple(sorted(delivered.items()))
    while True:
        lag = admin.group_lag(group, [topic])
        alignment = SinkAlignment(name, group, topic, target, tuple((p.partition, p.committed) for p in lag.partitions),
                                  time.monotonic() - started, tuple(sorted(ends.items())))  # fmt: skip
        if alignment.reached or alignment.waited_s >= timeout:
            return alignment
        time.sleep(0.2)


def sink_secrets(spec: PipelineSpec, output: str) -> tuple[str, ...]:
    """The sink database's password, to scrub from what Connect says of the sink; none when dualrun
    cannot read it here (then it cannot know it either, and URL passwords are masked anyway)."""
    from sqlalchemy.engine import make_url

    try:
        secret = make_url(sink_url(spec, output, password=True)).password
    except DualrunError:
        return ()
    return (str(secret),) if secret else ()


def sink_failure(spec: PipelineSpec, output: str) -> str | None:
    """Why `output`'s sink connector cannot deliver, in one line: FAILED (the trace's first line and
    root cause) or not registered; None when it runs, or Connect cannot be asked (the wait then tells)."""
    from cdc.errors import ConnectError, ConnectorNotFound

    name = connector_name(spec, output)
    try:
        # The sink's trace may quote its database password: the reason goes into history and reports.
        status = spec.cdc.connect_client(secrets=sink_secrets(spec, output)).status(name)
    except ConnectorNotFound:
        return f"not registered on {spec.cdc.connect_url}; register it with `dualrun cdc register-sink --spec`"
    except ConnectError:
        return None
    if not status.failed:
        return None
    failed = ", ".join(f"task {t.id}" for t in status.tasks if t.state == "FAILED") or "the connector"
    return f"{failed} FAILED: {status.reason or 'no trace'}"


def decode_json(raw: bytes | None) -> dict[str, Any] | None:
    """A JSON record value (bare, or JsonConverter's {"schema", "payload"}, typed from its schema)."""
    data = unwrap(raw)
    return data if isinstance(data, dict) else None


def record_key(raw: bytes | None, keys: tuple[str, ...]) -> tuple[Any, ...]:
    """The key columns of a JSON record key: an object (bare or in a JsonConverter envelope), or
    one scalar for a single key column.

    >>> record_key(b'{"schema": {"type": "int64"}, "payload": 7}', ("order_id",))
    (7,)
    >>> record_key(b'{"order_id": 7}', ("order_id",))
    (7,)
    """
    data = unwrap(raw) if raw else None
    if isinstance(data, dict):
        return tuple(data.get(k) for k in keys)
    return (data,) if len(keys) == 1 else tuple(None for _ in keys)


@dataclass(frozen=True)
class TopicState:
    """A stretch [start, stop) of the output topic as a read_committed consumer sees it: each key's
    last value (tombstones delete), every key written, and per partition one past the last record."""

    rows: dict[tuple[Any, ...], dict[str, Any]]
    touched: frozenset[tuple[Any, ...]]
    delivered: dict[int, int]
    records: int


def topic_state(spec: PipelineSpec, topic: str, keys: tuple[str, ...], start: dict[int, int],
                stop: dict[int, int]) -> TopicState:  # fmt: skip
    """Read `topic` from `start` up to (not including) `stop`, per partition (assigned, never commits)."""
    consumer = client.reader(spec.kafka.client(), "sink")
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    touched: set[tuple[Any, ...]] = set()
    delivered = {p: start.get(p, 0) for p in stop}
    records = 0
    wanted = [p for p, end in stop.items() if end > start.get(p, 0)]
    reader = PartitionReader(consumer, {(topic, p): start.get(p, 0) for p in wanted},
                             stops={(topic, p): stop[p] for p in wanted}, timeout=120, what=topic)  # fmt: skip
    try:
        for msg in reader:
            partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
            records += 1
            delivered[partition] = offset + 1
            key = record_key(msg.key(), keys)
            touched.add(key)
            try:
                value = decode_json(msg.value())
            except ValueError:  # orjson's JSONDecodeError: something else wrote the topic
                raise SinkError(
                    f"record {topic}/{partition}@{offset} is not JSON: the output topic of a sink "
                    "holds the stream job's JSON records only; was it written by something else?"
                ) from None
            if value is None:
                rows.pop(key, None)
            else:  # a value may leave the key columns to the key (as the JDBC sink's record_key mode does)
                rows[key] = {**dict(zip(keys, key, strict=True)), **value}
    except CdcError as exc:
        raise SinkError(str(exc)) from exc
    finally:
        consumer.close()
    return TopicState(rows, frozenset(touched), delivered, records)


@dataclass(frozen=True)
class SinkParity:
    """The sink's table reconciled with the output topic at the read point (left: topic, right: sink)."""

    output: str
    table: str
    alignment: SinkAlignment
    reconciliation: Reconciliation | None  # None: failed, or not aligned in time (never compared)
    in_flight_keys: int = 0
    side: str = SIDE
    failed: str | None = None  # the sink connector's failure (its task's trace, first line)

    @property
    def verdict(self) -> str:
        if self.failed is not None:
            return "sink_failed"
        if not self.alignment.reached or self.reconciliation is None:
            return "sink_behind"
        return self.reconciliation.verdict

    @property
    def reason(self) -> str:
        """Why the sink was not compared (one line), or what it found."""
        a = self.alignment
        if self.failed is not None:
            return f"sink connector {a.connector}: {self.failed} (not compared)"
        if self.reconciliation is None:
            return (f"connect group {a.group} still {a.lag} record(s) behind the read point after "
                    f"{a.waited_s:.0f}s (not compared)")  # fmt: skip
        return self.reconciliation.verdict

    def history_result(self, spec_name: str) -> Reconciliation:
        """What the run history records for this side: the comparison, or a never-clean result
        saying why there was none, so no report reads a sink not compared as clean."""
        if self.reconciliation is not None:
            return self.reconciliation
        a, keys = self.alignment, ()
        left = Side(f"{a.topic} (read_committed, at the read point)", 0, 0, 0, offsets_text(a.topic, a.read_point))
        right = Side(f"sink table {self.table}", 0, 0, 0, offsets_text(f"group {a.group} committed", a.committed))
        return Reconciliation(keys, left, right, 0, 0, 0, 0, 0, 0, (), Schema(), (),
                              name=f"{spec_name}/{side_output(self.output)}",
                              not_compared=(self.verdict, self.reason))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "table": self.table, "side": self.side, "verdict": self.verdict,
                "alignment": self.alignment.to_dict(), "in_flight_keys": self.in_flight_keys,
                "reason": self.reason, "failed": self.failed,
                "reconciliation": self.reconciliation.to_dict() if self.reconciliation else None}  # fmt: skip


def _frame(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """The topic's rows typed as the sink's columns; a field the table lacks keeps its own column
    (inferred type), so a column the sink dropped shows as schema drift, never as agreement."""
    extra = list(dict.fromkeys(name for r in rows for name in r if name not in schema.names))
    columns = {f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema}
    columns.update({name: pa.array([r.get(name) for r in rows]) for name in extra})
    return pa.table(columns)


def reconcile_sink(spec: PipelineSpec, output: str, timeout: float) -> SinkParity:
    """Align, read the sink's table and the topic, compare them (see the module docstring)."""
    import duckdb

    out, sink = spec.outputs[output], sink_of(spec, output)
    keys, topic = tuple(out.keys), out.stream.topic or ""
    read_point = _ends(spec, topic)
    # A FAILED task commits nothing: say so at once rather than wait `timeout` s and call it behind.
    failed = sink_failure(spec, output)
    if failed is not None:
        return SinkParity(output, sink.table, align_sink(spec, output, read_point, read_point, 0), None, failed=failed)
    state = topic_state(spec, topic, keys, {}, read_point)
    alignment = align_sink(spec, output, state.delivered, read_point, timeout)
    if not alignment.reached:  # it may have failed while dualrun waited
        return SinkParity(output, sink.table, alignment, None, failed=sink_failure(spec, output))
    table_src = open_source(f"{sink_url(spec, output, password=True)}?table={sink.table}")
    with duckdb.connect() as con:
        try:
            table_src.register(con, "sink", list(keys))
        except Exception as exc:  # the table's database: say which table, never the URL's password
            raise SinkError(f"cannot read the sink table {table_src.label}: {str(exc).splitlines()[0]}") from None
        sink_rows = con.sql("SELECT * FROM sink").to_arrow_table()
    # Written since the read point: the sink may or may not have applied them when it was read.
    late = topic_state(spec, topic, keys, read_point, _ends(spec, topic)).touched
    expected = [v for k, v in state.rows.items() if k not in late]
    mask = [tuple(row[k] for k in keys) not in late for row in sink_rows.select(list(keys)).to_pylist()]
    actual = sink_rows.filter(pa.array(mask, type=pa.bool_())) if late else sink_rows
    topic_side = FrameSource(_frame(expected, sink_rows.schema), name=f"{topic} (read_committed, at the read point)")
    sink_side = FrameSource(actual, name=f"sink table {sink.table}")
    read_at = offsets_text(topic, alignment.read_point)
    committed = offsets_text(f"group {alignment.group} committed", alignment.committed)
    result = reconcile(topic_side, sink_side, list(keys), rules=dict(out.tolerances) or None, ignore=out.ignore,
                       name=f"{spec.name}/{side_output(output)}", left_position=read_at,
                       right_position=committed)  # fmt: skip
    return SinkParity(output, sink.table, alignment, result, len(late))
