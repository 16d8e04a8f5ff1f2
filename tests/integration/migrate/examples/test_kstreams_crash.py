"""A Kafka Streams job killed with SIGKILL mid-stream and restarted: at-least-once double counts, and the dual
run must say where; exactly_once_v2 recovers, and the dual run must stay clean.

The expected damage is derived from the output topic alone, independently of the batch side: with caches off
the daily_revenue aggregation writes one record per update, carrying the triggering change's `dbz.source`
header. An update applied twice (the aggregate's changelog restored past the last committed input offset,
then that input reprocessed; or a repartition record written twice) writes a second record for the same group
and the same source change with a different value. Only inserts happen between the last commit and the kill,
so every update raises order_count: a group is double counted iff it has such a pair.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

from cdc.client import consumer
from migrate.asof import reconcile_spec
from migrate.batch import run_batch
from migrate.connector import ensure_connector
from migrate.examples.order_enricher.runner import EnricherJob, EnricherSettings
from migrate.process import wait_until
from migrate.spec import PipelineSpec
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database
from tests.integration.migrate.conftest import workload_for
from tests.integration.migrate.examples.test_kstreams_dualrun import kstreams_spec
from tests.integration.migrate.test_pipelines import causes, mismatched_columns

pytestmark = pytest.mark.integration

Group = tuple[int, str]  # (customer_id, order_day)
INSERTS = 8  # new orders between the last commit and the kill, each in its own existing group (<= samples)


@dataclasses.dataclass(frozen=True)
class Emission:
    """One daily_revenue output record: its group, value (None: tombstone) and raw position header."""

    group: Group
    value: dict[str, Any] | None
    source: bytes | None
    offset: tuple[int, int]


def emissions(spec: PipelineSpec, isolation: str, timeout: float = 60) -> list[Emission]:
    """Every record of the daily_revenue topic up to its end (read_uncommitted) or last stable offset."""
    topic = spec.outputs["daily_revenue"].stream.topic or ""
    reader = consumer(spec.kafka.client(), {
        "group.id": f"oracle-{uuid.uuid4().hex}", "isolation.level": isolation, "enable.auto.commit": False,
        "enable.partition.eof": True, "auto.offset.reset": "earliest",
    })  # fmt: skip
    try:
        partitions = reader.list_topics(topic, timeout=timeout).topics[topic].partitions
        reader.assign([TopicPartition(topic, p, 0) for p in partitions])
        pending, found = set(partitions), []
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"reading {topic} timed out"
            for msg in reader.consume(num_messages=1000, timeout=0.5):
                error = msg.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error.str()
                    pending.discard(msg.partition())
                    continue
                key = json.loads(msg.key() or b"null")
                raw = msg.value()
                header = next((v for k, v in reversed(msg.headers() or []) if k == "dbz.source"), None)
                source = header.encode() if isinstance(header, str) else header
                found.append(Emission((int(key["customer_id"]), str(key["order_day"])),
                                      None if raw is None else json.loads(raw), source,
                                      (msg.partition() or 0, msg.offset() or 0)))  # fmt: skip
        return sorted(found, key=lambda e: e.offset)
    finally:
        reader.close()


def end_offset(spec: PipelineSpec, topic: str) -> int:
    """The sum of `topic`'s high watermarks (read_uncommitted: what the broker holds), 0 if it has none."""
    reader = consumer(spec.kafka.client(), {"group.id": f"oracle-{uuid.uuid4().hex}"})
    try:
        found = reader.list_topics(topic, timeout=30).topics[topic]
        if found.error is not None:
            return 0
        return sum(reader.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in found.partitions)
    finally:
        reader.close()


def latest_counts(records: list[Emission]) -> dict[Group, int]:
    last: dict[Group, Emission] = {}
    for record in records:
        last[record.group] = record
    return {g: int(e.value["order_count"]) for g, e in last.items() if e.value is not None}


def source_counts(db: Database, spec: PipelineSpec) -> dict[Group, int]:
    rows = db.run(
        f"SELECT customer_id, DATE_FORMAT(created_at, '%Y-%m-%d'), COUNT(*) FROM `{spec.source.database}`.orders "
        "WHERE status <> 'CANCELLED' GROUP BY 1, 2"
    )
    return {(int(c), str(d)): int(n) for c, d, n in rows}


def double_counted(records: list[Emission]) -> set[Group]:
    """Groups with two records for one source change and different values: an update applied twice."""
    seen: dict[tuple[Group, bytes], set[str]] = defaultdict(set)
    for record in records:
        if record.source is not None:
            seen[(record.group, record.source)].add(json.dumps(record.value, sort_keys=True))
    return {group for (group, _), values in seen.items() if len(values) > 1}


@pytest.fixture
def crash_spec(
    stack: StackConfig, db: Database, tmp_path: Path, unique: Callable[[str], str]
) -> Iterator[PipelineSpec]:
    spec = kstreams_spec(stack, db, tmp_path, unique("kc"), "dbz.source")
    ensure_connector(spec)
    workload_for(spec)  # 20 customers, 100 orders
    yield spec
    EnricherJob(Path(spec.state_dir), EnricherSettings.for_spec(spec)).cleanup()


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once_v2"])
def test_a_job_killed_mid_stream_double_counts_at_least_once_and_recovers_exactly_once(
    crash_spec: PipelineSpec, db: Database, guarantee: str
) -> None:
    spec = crash_spec.with_changes(stream={"exactly_once": guarantee == "exactly_once_v2"})
    settings = EnricherSettings.for_spec(spec)
    assert settings.processing_guarantee == guarantee  # the spec's stream.exactly_once picks it
    # A 6 s session (the broker's minimum): each restart's first rebalance waits out the dead member.
    base = dataclasses.replace(settings, session_timeout_ms=6000, commit_interval_ms=500)
    state = Path(spec.state_dir)

    def caught_up(groups: set[Group] | None = None) -> Callable[[], bool | None]:
        def probe() -> bool | None:
            truth = source_counts(db, spec)
            seen = latest_counts(emissions(spec, "read_uncommitted"))
            wanted = truth if groups is None else {g: truth[g] for g in groups}
            return True if all(seen.get(g) == n for g, n in wanted.items()) else None

        return probe

    # 1. The seed processed and committed: a clean close commits (at-least-once) or ends the transaction.
    job = EnricherJob(state, base)
    job.start()
    wait_until(caught_up(), timeout=180, what="the job to process the seed", process=job.process)
    job.stop()
    committed = emissions(spec, "read_committed")
    assert double_counted(committed) == set(), "no duplicates before the crash"

    # 2. New orders in existing groups, processed but not committed. At-least-once commits every 10 min here,
    # and the kill waits until the aggregate's changelog holds their updates, so a restart restores them and
    # then reprocesses their input: all are applied twice. Exactly-once keeps a transaction open for up to
    # 8 s (under its 10 s transaction timeout); a kill that found it committed already is tried again.
    seeded = db.run(
        f"SELECT order_id, customer_id, created_at FROM `{spec.source.database}`.orders "
        f"WHERE status <> 'CANCELLED' ORDER BY order_id"
    )
    targets: dict[Group, Any] = {}
    for _, customer, created in seeded:
        targets.setdefault((int(customer), created.strftime("%Y-%m-%d")), created)
        if len(targets) == INSERTS:
            break
    changelog = f"{spec.stream.group}-daily-revenue-changelog"

    def changelog_holds(updates: int) -> Callable[[], bool | None]:
        return lambda: end_offset(spec, changelog) >= updates or None

    interval = 600_000 if guarantee == "at_least_once" else 8_000
    uncommitted = 0
    for attempt in range(3):
        updates = end_offset(spec, changelog) + len(targets)
        job = EnricherJob(state, dataclasses.replace(base, commit_interval_ms=interval))
        job.start()
        for i, ((customer, _), created) in enumerate(targets.items()):
            db.run(
                f"INSERT INTO `{spec.source.database}`.orders (customer_id, amount, status, created_at) "
                "VALUES (%s, %s, 'NEW', %s)",
                args=(customer, f"{11 + i + 10 * attempt}.25", created),
            )
        what = "the job to process the new orders"
        wait_until(caught_up(set(targets)), timeout=120, what=what, process=job.process)
        if guarantee == "at_least_once":
            wait_until(changelog_holds(updates), timeout=60, what="the aggregate's changelog to hold the updates")
        job.kill()
        uncommitted = len(emissions(spec, "read_uncommitted")) - len(emissions(spec, "read_committed"))
        if guarantee == "at_least_once" or uncommitted > 0:
            break
    assert guarantee == "at_least_once" or uncommitted > 0, "every kill came after a commit"

    # 3. Restarted on the same state directory; the dual run waits for it to pass the batch position. The
    # same crash is reconciled twice: through the records' positions, and through the offset fence (the
    # positions ignored: lineage only), each in its own state directory.
    job = EnricherJob(state, base)
    job.start()
    result = reconcile_spec(spec, run_batch(spec).run_id)
    fenced_spec = spec.with_changes(cdc={"position_header": None}).model_copy(
        update={"state_dir": str(state / "fenced")}
    )
    fenced = reconcile_spec(fenced_spec, run_batch(fenced_spec).run_id)
    expected = double_counted(emissions(spec, "read_committed"))
    print(f"{guarantee}: {len(targets)} inserts, {uncommitted} output records unstable at the kill, "
          f"double counted {sorted(expected)}")  # fmt: skip
    if guarantee == "exactly_once_v2":
        assert expected == set(), sorted(expected)
    else:  # exactly the groups of the new orders (the seed was committed before the crash)
        assert expected == set(targets), (sorted(expected), sorted(targets))
    for run in (result, fenced):
        assert_caught(run, expected)
    window = {n: c.to_dict().get("window") for n, c in fenced.checks.items()}
    assert all(check.window is not None and check.in_flight_keys == 0 for check in fenced.checks.values()), window


def assert_caught(result: Any, expected: set[Group]) -> None:
    """Clean but for value mismatches on exactly the `expected` daily_revenue groups, stream side higher."""
    shown = {name: rec.to_dict()["samples"] for name, rec in result.outputs.items()}
    assert result.progress.reached, result.progress.describe()
    assert set(result.outputs) == {"orders_enriched", "order_alerts", "daily_revenue"}, (shown, result.to_dict())
    # Upserts by order id are idempotent: reprocessing leaves them right under either guarantee.
    assert result.outputs["orders_enriched"].verdict == result.outputs["order_alerts"].verdict == "clean", shown
    revenue = result.outputs["daily_revenue"]
    if not expected:
        assert result.verdict == "clean", shown
        return
    assert result.verdict == "differences", shown
    assert causes(revenue) == {"value_mismatch": len(expected)}, shown
    assert mismatched_columns(revenue) == {"order_count", "revenue"}, shown
    found = {(int(s["key"]["customer_id"]), str(s["key"]["order_day"])) for s in shown["daily_revenue"]}
    assert found == expected, (sorted(found), sorted(expected))
    for sample in shown["daily_revenue"]:  # double counted: the stream side (right) is higher
        count = sample["values"]["order_count"]
        assert count["right"] > count["left"], sample
