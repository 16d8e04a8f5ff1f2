"""The cutover checklist: named checks against the live systems and the run history, and a verdict.

Each check is a small function `check(ctx) -> CheckResult` (the `Check` protocol),
registered in order in `CHECKS`. A check starts its result with `ctx.begin(name,
threshold)` and returns it passed, failed, warned or skipped, with the evidence a
person needs to believe it. A check that cannot reach the system it checks raises
`CheckUnavailable`; the checklist then records it as not evaluated, names what
could not be reached, and exits 2 instead of guessing.

Verdict: GO when no check failed and every check was evaluated; warnings do not
block. Exit codes: 0 GO, 1 NO-GO, 2 could not evaluate.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from cdc.connect import ConnectClient
from cdc.errors import ConnectorNotFound, ConnectUnreachable, TopicError
from cdc.topics import GroupLag, TopicAdmin, TopicInfo, quiet_logger
from comparators import history
from comparators.errors import ComparatorError
from comparators.report.runs import load_run as load_history_run
from migrate.batch import BatchRun, load_run, run_output, snapshot_position, source_url, translate
from migrate.errors import CheckUnavailable, DualrunError, SourceUnavailable, SpecError
from migrate.pipeline import BATCH_SQL
from migrate.spec import PipelineSpec
from migrate.stream.status import StreamStatus, read_status, status_path

STATUSES = ("pass", "fail", "warn", "skipped")
MONEY_COLUMNS = ("amount", "revenue")  # values that can never be negative in the reference pipeline


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: status pass|fail|warn|skipped, the evidence, and the threshold it was held to."""

    name: str
    status: str
    evidence: str
    threshold: str

    def passed(self, evidence: str) -> CheckResult:
        return dataclasses.replace(self, status="pass", evidence=evidence)

    def failed(self, evidence: str) -> CheckResult:
        return dataclasses.replace(self, status="fail", evidence=evidence)

    def warned(self, evidence: str) -> CheckResult:
        return dataclasses.replace(self, status="warn", evidence=evidence)

    def skip(self, evidence: str) -> CheckResult:
        return dataclasses.replace(self, status="skipped", evidence=evidence)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "evidence": self.evidence, "threshold": self.threshold}


@dataclass(frozen=True)
class Checklist:
    """Every check's result, in order, and the verdict they add up to."""

    spec_name: str
    checks: tuple[CheckResult, ...]
    unevaluated: tuple[str, ...] = ()  # checks that could not reach their system
    elapsed_s: float = 0.0

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    @property
    def verdict(self) -> str:
        return "GO" if not self.failed and not self.unevaluated else "NO-GO"

    @property
    def exit_code(self) -> int:
        if self.unevaluated:
            return 2
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "spec": self.spec_name,
            "exit_code": self.exit_code,
            "checks": [c.to_dict() for c in self.checks],
            "could_not_evaluate": list(self.unevaluated),
            "elapsed_s": round(self.elapsed_s, 3),
        }


class Context:
    """What the checks read, fetched lazily, once per checklist; an unreachable system fails fast after one try."""

    def __init__(self, spec: PipelineSpec, *, now: float | None = None, timeout: float = 10.0) -> None:
        self.spec = spec
        self.now = time.time() if now is None else now
        self.timeout = timeout
        self.current: CheckResult | None = None
        self._kafka_down: str | None = None

    def begin(self, name: str, threshold: str) -> CheckResult:
        """The result a check fills in; remembered so an unreachable system still reports the threshold."""
        self.current = CheckResult(name, "skipped", "", threshold)
        return self.current

    # -- Kafka Connect --------------------------------------------------------------------------
    @cached_property
    def connect(self) -> ConnectClient:
        secrets = []
        for section in (self.spec.cdc, self.spec.source):
            with suppress(SpecError):  # an unset password cannot leak either
                secrets.append(section.password())
        # Two retries: a checklist should answer in seconds, not wait out a long backoff.
        return ConnectClient(self.spec.cdc.connect_url, timeout=self.timeout, retries=2, secrets=tuple(secrets))

    # -- Kafka ----------------------------------------------------------------------------------
    @cached_property
    def admin(self) -> TopicAdmin:
        return TopicAdmin(self.spec.kafka.bootstrap_servers, timeout=self.timeout)

    @contextmanager
    def kafka(self) -> Iterator[TopicAdmin]:
        """The topic admin; a broker that does not answer becomes CheckUnavailable, once for all checks."""
        if self._kafka_down is not None:
            raise CheckUnavailable(self._kafka_down)
        try:
            yield self.admin
        except KafkaException as exc:
            self._kafka_down = f"Kafka is not reachable at {self.spec.kafka.bootstrap_servers}: {exc.args[0].str()}"
            raise CheckUnavailable(self._kafka_down) from exc

    @cached_property
    def metadata(self) -> Any:
        with self.kafka() as admin:
            return admin.admin.list_topics(timeout=self.timeout)

    def topic_exists(self, topic: str) -> bool:
        return topic in self.metadata.topics

    def describe(self, topic: str) -> TopicInfo | None:
        if not self.topic_exists(topic):
            return None
        with self.kafka() as admin:
            try:
                return admin.describe(topic)
            except TopicError as exc:
                raise CheckUnavailable(str(exc)) from exc

    def group_lag(self, group: str, topics: list[str]) -> GroupLag:
        with self.kafka() as admin:
            try:
                return admin.group_lag(group, topics)
            except TopicError as exc:
                raise CheckUnavailable(str(exc)) from exc

    def count_records(self, topic: str, limit_s: float = 20.0) -> tuple[int, str | None]:
        """Committed records retained in `topic`, and the `dualrun.error` header of the first one."""
        partitions = sorted(self.metadata.topics[topic].partitions)
        consumer = Consumer(
            {
                "bootstrap.servers": self.spec.kafka.bootstrap_servers,
                # assign() without commits never joins or creates this group on the broker
                "group.id": f"dualrun-checklist-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            },
            logger=quiet_logger(),
        )
        try:
            with self.kafka():
                todo: list[TopicPartition] = []
                for p in partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout)
                    if high > low:
                        todo.append(TopicPartition(topic, p, low))
                if not todo:
                    return 0, None
                consumer.assign(todo)
                count, first_error, open_parts = 0, None, {tp.partition for tp in todo}
                deadline = time.monotonic() + limit_s
                while open_parts and time.monotonic() < deadline:
                    msg = consumer.poll(0.5)
                    if msg is None:
                        continue
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            open_parts.discard(msg.partition())
                        continue
                    count += 1
                    if first_error is None:
                        headers = dict(msg.headers() or [])
                        raw = headers.get("dualrun.error")
                        first_error = raw.decode(errors="replace") if isinstance(raw, bytes) else None
                return count, first_error
        finally:
            consumer.close()

    # -- files: stream status, history, warehouse -------------------------------------------------
    @cached_property
    def status(self) -> StreamStatus | None:
        return read_status(self.spec)

    @cached_property
    def batch_run(self) -> BatchRun | None:
        try:
            return load_run(self.spec.warehouse_path, "latest")
        except DualrunError:
            return None

    @property
    def change_topics(self) -> list[str]:
        return [self.spec.cdc.topic(t) for t in self.spec.cdc.tables]

    @property
    def output_names(self) -> list[str]:
        return [f"{self.spec.name}/{output}" for output in self.spec.compare.outputs]


class Check(Protocol):
    """A cutover check: reads what it needs from the context and returns its result."""

    __name__: str

    def __call__(self, ctx: Context) -> CheckResult: ...


def _hours(ms: int | None) -> str:
    return "unlimited" if ms is None else f"{ms / 3_600_000:g}h"


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


# -- the checks, in the order a person reads them -------------------------------------------------


def connector_running(ctx: Context) -> CheckResult:
    """The Debezium connector and every one of its tasks are RUNNING on Kafka Connect.

    Example: `connector dualrun-shop RUNNING on 127.0.0.1:8083, 1/1 task(s) RUNNING` passes;
    `connector dualrun-shop PAUSED, task 0 PAUSED` fails.
    """
    r = ctx.begin("connector_running", "connector and all tasks RUNNING")
    name = ctx.spec.cdc.connector
    try:
        status = ctx.connect.status(name)
    except ConnectorNotFound:
        return r.failed(f"no connector named {name!r} is registered on {ctx.spec.cdc.connect_url}")
    except ConnectUnreachable as exc:
        raise CheckUnavailable(str(exc)) from exc
    running = sum(t.state == "RUNNING" for t in status.tasks)
    tasks = f"{running}/{len(status.tasks)} task(s) RUNNING"
    if status.running:
        return r.passed(f"connector {name} RUNNING on {status.worker or '?'}, {tasks}")
    states = ", ".join(f"task {t.id} {t.state}" for t in status.tasks) or "no tasks"
    reason = f"; reason: {status.reason}" if status.reason else ""
    return r.failed(f"connector {name} {status.state}, {states}{reason}")


def events_fresh(ctx: Context) -> CheckResult:
    """The streaming job reports itself running and has seen a recent event, or has nothing waiting.

    Its status file is its heartbeat: the job rewrites it after every transaction and
    every few seconds when idle. A quiet source is fine when the job is caught up.
    Example: `job running (pid 4242), reported 1s ago; last event 3s ago` passes;
    `last event 15 min ago with 1,204 records waiting` fails.
    """
    limit = ctx.spec.checklist.max_event_age_seconds
    r = ctx.begin("events_fresh", f"job report and last event within {limit:g}s (or nothing waiting)")
    status = ctx.status
    if status is None:
        return r.failed(f"the streaming job has never reported here (no {status_path(ctx.spec)})")
    age = ctx.now - status.updated_at
    if status.state != "running":
        error = f": {status.error}" if status.error else ""
        return r.failed(f"streaming job is {status.state} (pid {status.pid}), last report {_ago(age)}{error}")
    if age > limit:
        return r.failed(f"streaming job (pid {status.pid}) last reported {_ago(age)}; it is hung or gone")
    job = f"job running (pid {status.pid}), reported {_ago(age)}"
    waiting = status.lag
    if status.last_event_ts_ms is None:
        if waiting == 0:
            return r.passed(f"{job}; no change event yet and nothing waiting")
        return r.warned(f"{job}; no change event processed yet ({waiting if waiting is not None else '?'} waiting)")
    event_age = ctx.now - status.last_event_ts_ms / 1000
    if event_age <= limit:
        return r.passed(f"{job}; last event {_ago(event_age)}")
    if waiting == 0:
        return r.passed(f"{job}; last event {_ago(event_age)} but nothing is waiting: the source is quiet")
    behind = f"{waiting:,} records waiting" if waiting is not None else "lag unknown"
    return r.failed(f"{job}; last event {_ago(event_age)} with {behind}")


def consumer_lag(ctx: Context) -> CheckResult:
    """The streaming job's consumer group is close behind the change topics.

    Example: `group dualrun-stream 12 record(s) behind on 2 partition(s)` passes at a
    threshold of 1000; `group dualrun-stream 5,000 records behind: dbserver1.shop.orders 5,000` fails.
    """
    limit = ctx.spec.checklist.max_consumer_lag
    r = ctx.begin("consumer_lag", f"<= {limit:,} records behind the change topics")
    group = ctx.spec.stream.group_id
    missing = [t for t in ctx.change_topics if not ctx.topic_exists(t)]
    if missing:
        return r.failed(f"change topic(s) {', '.join(missing)} do not exist; has the connector captured the tables?")
    lag = ctx.group_lag(group, ctx.change_topics)
    per_topic: dict[str, int] = {}
    for p in lag.partitions:
        per_topic[p.topic] = per_topic.get(p.topic, 0) + p.lag
    never = sorted({p.topic for p in lag.partitions if p.committed is None and p.end > 0})
    detail = ", ".join(f"{t} {n:,}" for t, n in per_topic.items() if n)
    note = f" (no committed offset on {', '.join(never)})" if never else ""
    if lag.total <= limit:
        return r.passed(f"group {group} {lag.total:,} record(s) behind on {len(lag.partitions)} partition(s){note}")
    return r.failed(f"group {group} {lag.total:,} records behind: {detail}{note}")


def dead_letters_empty(ctx: Context) -> CheckResult:
    """Nothing sits in the streaming job's dead-letter topic.

    Example: `dead-letter topic dualrun-stream-dlq holds no records` passes;
    `dualrun-stream-dlq holds 3 record(s); first error: cannot decode ...` fails.
    """
    topic = ctx.spec.stream.dead_letter_topic
    r = ctx.begin("dead_letters_empty", f"0 records in {topic}")
    if not ctx.topic_exists(topic):
        return r.passed(f"dead-letter topic {topic} does not exist: nothing was ever dead-lettered")
    count, first_error = ctx.count_records(topic)
    if count == 0:
        return r.passed(f"dead-letter topic {topic} holds no records")
    why = f"; first error: {first_error}" if first_error else ""
    return r.failed(f"dead-letter topic {topic} holds {count:,} record(s){why}")


def _retained_topics(ctx: Context) -> list[str]:
    """Topics whose history must outlive a batch window: change topics, alerts, dead letters."""
    return [*ctx.change_topics, ctx.spec.stream.alerts_topic, ctx.spec.stream.dead_letter_topic]


def _state_topics(ctx: Context) -> list[str]:
    return [ctx.spec.stream.enriched_topic, ctx.spec.stream.state_topic]


def topic_retention(ctx: Context) -> CheckResult:
    """Change, alert and dead-letter topics keep records longer than the batch window.

    A rollback or a replay must be able to reread everything since the last batch run.
    Example: `dbserver1.shop.orders 168h, order-alerts 168h, dualrun-stream-dlq 672h` passes at 24h;
    `dbserver1.shop.orders 1h` fails.
    """
    window_h = ctx.spec.checklist.batch_window_hours
    r = ctx.begin("topic_retention", f"retention >= {window_h:g}h (the batch window)")
    window_ms = window_h * 3_600_000
    seen, short, missing = [], [], []
    for topic in _retained_topics(ctx):
        info = ctx.describe(topic)
        if info is None:
            missing.append(topic)
            continue
        seen.append(f"{topic} {_hours(info.retention_ms)}")
        if info.retention_ms is not None and info.retention_ms < window_ms:
            short.append(f"{topic} keeps {_hours(info.retention_ms)}")
    if short or (missing and set(missing) & set(ctx.change_topics)):
        problems = short + [f"{t} does not exist" for t in missing]
        return r.failed("; ".join(problems))
    absent = f"; not created yet: {', '.join(missing)}" if missing else ""
    return r.passed(", ".join(seen) + absent)


def state_topics_compacted(ctx: Context) -> CheckResult:
    """The enriched-orders and state topics are compacted, so the latest value per key is kept forever.

    Example: `orders-enriched compact, dualrun-stream-state compact` passes;
    `orders-enriched delete (retention 168h)` fails: state would expire.
    """
    r = ctx.begin("state_topics_compacted", "cleanup.policy includes compact")
    seen, bad = [], []
    for topic in _state_topics(ctx):
        info = ctx.describe(topic)
        if info is None:
            bad.append(f"{topic} does not exist")
            continue
        policy = info.configs.get("cleanup.policy", "?")
        seen.append(f"{topic} {policy}")
        if not info.compacted:
            bad.append(f"{topic} is {policy} (retention {_hours(info.retention_ms)})")
    return r.failed("; ".join(bad)) if bad else r.passed(", ".join(seen))


def replication(ctx: Context) -> CheckResult:
    """Topics survive a broker loss: replication factor >= 3 (or the broker count) and
    2 <= min.insync.replicas < replication factor. A one-broker stack can only warn.

    Example: `one broker: replication factor 1, min.insync.replicas 1 on 6 topic(s)` warns;
    `orders-enriched replication factor 1 on a 3-broker cluster` fails.
    """
    r = ctx.begin("replication", "RF >= min(3, brokers) and 2 <= min.insync.replicas < RF")
    brokers = len(ctx.metadata.brokers)
    topics = [t for t in [*_retained_topics(ctx), *_state_topics(ctx)] if ctx.topic_exists(t)]
    infos = [i for i in (ctx.describe(t) for t in topics) if i is not None]
    if not infos:
        return r.failed("none of the pipeline's topics exist yet")
    isr = {i.name: int(i.configs.get("min.insync.replicas", "1")) for i in infos}
    settings = sorted({(i.replication_factor, isr[i.name]) for i in infos})
    summary = "; ".join(f"replication factor {rf}, min.insync.replicas {m}" for rf, m in settings)
    if brokers == 1:
        return r.warned(f"one broker: {summary} on {len(infos)} topic(s); a broker loss stops the pipeline")
    want = min(3, brokers)
    low_rf = [f"{i.name} replication factor {i.replication_factor}" for i in infos if i.replication_factor < want]
    if low_rf:
        return r.failed(f"{'; '.join(low_rf)} on a {brokers}-broker cluster")
    weak = [
        f"{i.name} min.insync.replicas {isr[i.name]} with replication factor {i.replication_factor}"
        for i in infos
        if isr[i.name] < 2 or isr[i.name] >= i.replication_factor
    ]
    if weak:
        return r.warned("; ".join(weak))
    return r.passed(f"{brokers} brokers: {summary} on {len(infos)} topic(s)")


def exactly_once(ctx: Context) -> CheckResult:
    """The running streaming job is configured for exactly once: a transactional, idempotent
    producer and a read_committed consumer that never auto-commits.

    Example: `transactional.id dualrun-stream-1, enable.idempotence true, isolation.level
    read_committed, enable.auto.commit false` passes; `isolation.level read_uncommitted` fails.
    """
    r = ctx.begin(
        "exactly_once", "transactional.id set, enable.idempotence true, isolation.level read_committed"
    )
    status = ctx.status
    if status is None:
        return r.failed(f"the streaming job has never reported its settings (no {status_path(ctx.spec)})")
    producer, consumer = status.producer, status.consumer
    txn = producer.get("transactional.id", "")
    idempotent = producer.get("enable.idempotence", "false").lower()
    isolation = consumer.get("isolation.level", "read_uncommitted (default)")
    auto_commit = consumer.get("enable.auto.commit", "true (default)").lower()
    problems = []
    if not status.exactly_once:
        problems.append("job runs without exactly-once (stream.exactly_once false)")
    if not txn:
        problems.append("producer has no transactional.id")
    if idempotent != "true":
        problems.append(f"enable.idempotence {idempotent}")
    if isolation != "read_committed":
        problems.append(f"isolation.level {isolation}")
    if not auto_commit.startswith("false"):
        problems.append(f"enable.auto.commit {auto_commit}")
    if problems:
        return r.failed("; ".join(problems))
    return r.passed(
        f"transactional.id {txn}, enable.idempotence true, isolation.level read_committed, enable.auto.commit false"
    )


def parity(ctx: Context) -> CheckResult:
    """The latest reconciliation of every output is clean and each has a streak of clean runs.

    Example: `orders_enriched streak 3, order_alerts streak 3, daily_revenue streak 4` passes
    at 3; `daily_revenue latest run has differences (streak 0)` fails.
    """
    need = ctx.spec.checklist.min_parity_streak
    r = ctx.begin("parity", f"latest run clean and >= {need} consecutive clean runs per output")
    path = ctx.spec.history_path
    if not path.exists():
        return r.failed(f"no run history at {path}; reconcile with `dualrun reconcile --spec` first")
    parts, bad = [], 0
    try:
        for name in ctx.output_names:
            output = name.rpartition("/")[2]
            latest = history.runs(path, name, limit=1)
            if not latest:
                parts.append(f"{output} never reconciled")
                bad += 1
                continue
            streak = history.parity_streak(path, name)
            if latest[0].verdict != "clean":
                parts.append(f"{output} latest run has {latest[0].unexplained:,} unexplained differences (streak 0)")
            elif streak < need:
                parts.append(f"{output} streak {streak} < {need}")
            else:
                parts.append(f"{output} streak {streak}")
                continue
            bad += 1
    except ComparatorError as exc:
        raise CheckUnavailable(str(exc)) from exc
    return r.failed("; ".join(parts)) if bad else r.passed(", ".join(parts))


def noise_baseline(ctx: Context) -> CheckResult:
    """The latest run's noise baseline (batch vs its rerun, stream vs its replay) is below the threshold.

    Example: `batch vs batch rerun 0 rows on 3 output(s)` passes at 0;
    `stream vs stream replay 12 rows (daily_revenue)` fails. No baseline measured warns.
    """
    limit = ctx.spec.checklist.max_noise_rows
    r = ctx.begin("noise_baseline", f"<= {limit:,} unexplained rows between a side and its own rerun")
    path = ctx.spec.history_path
    if not path.exists():
        return r.failed(f"no run history at {path}")
    try:
        report = load_history_run(path, pipeline=ctx.spec.name)
    except ComparatorError as exc:
        return r.failed(str(exc))
    noise: dict[str, int] = {}
    where: dict[str, list[str]] = {}
    for output in report.outputs:
        for what, baseline in output.result.baselines:
            noise[what] = noise.get(what, 0) + baseline.unexplained
            if baseline.unexplained:
                where.setdefault(what, []).append(output.output)
    if not noise:
        return r.warned("no noise baseline was measured in the latest run (rerun the batch / replay the stream)")
    detail = ", ".join(
        f"{what} {n:,} rows" + (f" ({', '.join(where[what])})" if what in where else "") for what, n in noise.items()
    )
    total = sum(noise.values())
    return r.passed(detail) if total <= limit else r.failed(detail)


def _stream_table(ctx: Context, output: str, run: BatchRun) -> pa.Table:
    # The same as-of view reconciliation uses: the stream's changelog at the batch's position.
    from migrate.asof import stream_side

    source = stream_side(ctx.spec, output, run.position)
    con = duckdb.connect()
    try:
        source.register(con, "stream_side", list(ctx.spec.compare.outputs[output].keys))
        return con.sql("SELECT * FROM stream_side").to_arrow_table()
    finally:
        con.close()


@dataclass(frozen=True)
class SuiteOutcome:
    """What one expectation suite found on one table."""

    evaluated: int
    failures: tuple[str, ...]


def expectations(table: pa.Table, keys: list[str]) -> list[Any]:
    """The default suite for one output: rows present, keys not null and unique, money not negative."""
    import great_expectations as gx

    suite: list[Any] = [gx.expectations.ExpectTableRowCountToBeBetween(min_value=1)]
    suite += [gx.expectations.ExpectColumnValuesToNotBeNull(column=k) for k in keys]
    if len(keys) == 1:
        suite.append(gx.expectations.ExpectColumnValuesToBeUnique(column=keys[0]))
    else:
        suite.append(gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=keys))
    suite += [
        gx.expectations.ExpectColumnValuesToBeBetween(column=c, min_value=0)
        for c in MONEY_COLUMNS
        if c in table.column_names
    ]
    return suite


def _describe_expectation(config: Any) -> str:
    kwargs = config.kwargs
    kind = config.type
    if kind == "expect_table_row_count_to_be_between":
        return "row count > 0"
    if kind == "expect_column_values_to_not_be_null":
        return f"{kwargs['column']} not null"
    if kind == "expect_column_values_to_be_unique":
        return f"{kwargs['column']} unique"
    if kind == "expect_compound_columns_to_be_unique":
        return f"({', '.join(kwargs['column_list'])}) unique"
    if kind == "expect_column_values_to_be_between":
        return f"{kwargs['column']} >= {kwargs['min_value']:g}"
    return str(kind)


def validate(name: str, table: pa.Table, keys: list[str]) -> SuiteOutcome:
    """Run the default suite with great-expectations in an ephemeral, in-memory context.

    Nothing is written to disk and analytics stay off; DECIMAL columns are read as
    floats, which keeps their sign, the only thing the range expectations look at.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    as_float = pa.schema(
        [pa.field(f.name, pa.float64()) if pa.types.is_decimal(f.type) else f for f in table.schema]
    )
    frame = table.cast(as_float).to_pandas()
    batch = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe(name)
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations(table, keys)))
    result = batch.validate(suite)
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        what = _describe_expectation(outcome.expectation_config)
        observed = outcome.result.get("unexpected_count")
        if observed is None:
            observed = outcome.result.get("observed_value")
            failures.append(f"{what} failed (observed {observed})")
        else:
            failures.append(f"{what} failed ({observed:,} row(s))")
    return SuiteOutcome(len(result.results), tuple(failures))


def data_quality(ctx: Context) -> CheckResult:
    """Great Expectations suites pass on both sides' outputs: rows present, keys not null and
    unique, money columns (amount, revenue) not negative.

    Both sides are read at the same point: the latest batch run, and the stream's
    changelog as of that run's source position.
    Example: `batch 3/3 and stream 3/3 outputs pass 13 expectations each` passes;
    `stream daily_revenue: revenue >= 0 (1 row)` fails.
    """
    r = ctx.begin("data_quality", "row count > 0; keys not null and unique; amount/revenue >= 0")
    run = ctx.batch_run
    if run is None:
        return r.failed(f"no batch run recorded in {ctx.spec.warehouse_path}; run `dualrun run batch` first")
    failures: list[str] = []
    totals = {"batch": 0, "stream": 0}
    for output, out_spec in ctx.spec.compare.outputs.items():
        keys = list(out_spec.keys)
        sides = {
            "batch": run_output(ctx.spec.warehouse_path, run.run_id, output),
            "stream": _stream_table(ctx, output, run),
        }
        for side, table in sides.items():
            outcome = validate(f"{side}_{output}", table, keys)
            totals[side] += outcome.evaluated
            failures += [f"{side} {output}: {f}" for f in outcome.failures]
    outputs = len(ctx.spec.compare.outputs)
    summary = f"batch run {run.run_id} and the stream as of {run.position}: {outputs} output(s) per side"
    if failures:
        return r.failed("; ".join(failures) + f" ({summary})")
    return r.passed(f"{summary}, {totals['batch']} + {totals['stream']} expectations pass")


def _batch_still_runs(ctx: Context) -> str:
    """Open the batch job's consistent snapshot, read its position and plan every batch query (LIMIT 0)."""
    engine = sa.create_engine(
        source_url(ctx.spec), isolation_level="REPEATABLE READ", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            position = snapshot_position(conn)
            for sql in BATCH_SQL.values():
                conn.exec_driver_sql(f"SELECT * FROM ({sql}) AS q LIMIT 0")
            conn.exec_driver_sql("COMMIT")
    except sa.exc.DBAPIError as exc:
        error = translate(exc, ctx.spec)
        if isinstance(error, SourceUnavailable):
            raise CheckUnavailable(str(error)) from None
        raise error from None
    finally:
        engine.dispose()
    return str(position)


def rollback_ready(ctx: Context) -> CheckResult:
    """Going back stays possible: the batch job can still read the source in a consistent snapshot
    with a position, its last run is recorded, and the stream's committed offsets exist.

    Example: `batch snapshot at 0-1-812 (3 batch queries prepared), last batch run 20240501T020000-ab12cd;
    group dualrun-stream committed on 2/2 partition(s)` passes.
    """
    r = ctx.begin("rollback_ready", "batch snapshot+queries work, batch run recorded, stream offsets committed")
    problems, facts = [], []
    try:
        position = _batch_still_runs(ctx)
        facts.append(f"batch snapshot at {position} ({len(BATCH_SQL)} batch queries prepared)")
    except CheckUnavailable:
        raise
    except DualrunError as exc:
        problems.append(f"the batch job cannot run: {exc}")
    run = ctx.batch_run
    if run is None:
        problems.append(f"no batch run recorded in {ctx.spec.warehouse_path}")
    else:
        facts.append(f"last batch run {run.run_id}")
    group = ctx.spec.stream.group_id
    existing = [t for t in ctx.change_topics if ctx.topic_exists(t)]
    if not existing:
        problems.append("no change topic exists, so no stream offsets can be committed")
    else:
        lag = ctx.group_lag(group, existing)
        committed = [p for p in lag.partitions if p.committed is not None]
        if len(committed) < len(lag.partitions):
            missing = sorted({f"{p.topic}[{p.partition}]" for p in lag.partitions if p.committed is None})
            problems.append(f"group {group} has no committed offset on {', '.join(missing)}")
        else:
            facts.append(f"group {group} committed on {len(committed)}/{len(lag.partitions)} partition(s)")
    if problems:
        return r.failed("; ".join(problems + facts))
    return r.passed("; ".join(facts))


CHECKS: tuple[Check, ...] = (
    connector_running,
    events_fresh,
    consumer_lag,
    dead_letters_empty,
    topic_retention,
    state_topics_compacted,
    replication,
    exactly_once,
    parity,
    noise_baseline,
    data_quality,
    rollback_ready,
)
CHECK_NAMES = tuple(c.__name__ for c in CHECKS)


def evaluate(spec: PipelineSpec, checks: tuple[Check, ...] = CHECKS, *, timeout: float = 10.0) -> Checklist:
    """Run `checks` in order against the live systems and the history of `spec`."""
    started = time.monotonic()
    ctx = Context(spec, timeout=timeout)
    results: list[CheckResult] = []
    unevaluated: list[str] = []
    for check in checks:
        ctx.current = None
        try:
            results.append(check(ctx))
        except CheckUnavailable as exc:
            base = ctx.current or CheckResult(check.__name__, "skipped", "", "")
            results.append(base.skip(f"could not evaluate: {exc}"))
            unevaluated.append(base.name)
    return Checklist(spec.name, tuple(results), tuple(unevaluated), time.monotonic() - started)


def select(names: tuple[str, ...]) -> tuple[Check, ...]:
    """The registered checks with these names, in registry order; unknown names are a usage error."""
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown:
        raise SpecError(f"unknown check(s) {', '.join(unknown)}; the checks are {', '.join(CHECK_NAMES)}")
    return tuple(c for c in CHECKS if c.__name__ in names) if names else CHECKS
