"""Checks on the streaming job: alive and progressing, its last event, its consumer lag, its dead letters,
exactly-once."""

from __future__ import annotations

from pathlib import Path

from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.errors import CheckUnavailable
from migrate.stream.status import StreamStatus, status_path

# The job's main loop stamps its heartbeat every couple of seconds; its longest blocking Kafka call
# is 10 s (migrate.stream.kafka.Timeouts.call_s). Three times that is a hung or dead loop.
HEARTBEAT_LIMIT_S = 30.0


# A stamp this far ahead of the checklist's clock is the clocks disagreeing, not rounding.
CLOCK_SKEW_S = 1.0


def ago(seconds: float) -> str:
    """An age for people: a stamp up to CLOCK_SKEW_S in the future is "0s ago" (never "-0s"); one
    further ahead says the clocks disagree.

    >>> [ago(s) for s in (-0.4, 0.0, 3.6, 150.0, -5.0)]
    ['0s ago', '0s ago', '4s ago', '2 min ago', '5s in the future (clocks disagree)']
    """
    if seconds < -CLOCK_SKEW_S:
        return f"{-seconds:.0f}s in the future (clocks disagree)"
    seconds = max(0.0, seconds)
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def pid_alive(pid: int) -> bool:
    """A process with this pid exists on this machine and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def dead_or_hung(ctx: Context, status: StreamStatus) -> str | None:
    """Why the job is not alive and working, with the evidence; None when it is.

    Read from its status file (state, heartbeat) and from /proc (its pid): a job that died
    without a word, or whose loop stopped turning, still has its last 'running' report.
    """
    age = ctx.now - status.updated_at
    restarts = f"; restarted {status.restarts} time(s)" if status.restarts else ""
    error = f": {status.error}" if status.error else ""
    if status.state in ("crash_loop", "restarting", "failed", "stopped"):
        return f"streaming job is {status.state} (pid {status.pid}), last report {ago(age)}{error}{restarts}"
    if not pid_alive(status.pid):
        return f"streaming job pid {status.pid} is not running (last report {ago(age)}, state {status.state}){error}"
    beat = status.heartbeat_at if status.heartbeat_at is not None else status.updated_at
    if ctx.now - beat > HEARTBEAT_LIMIT_S:
        return f"streaming job (pid {status.pid}) main loop last turned {ago(ctx.now - beat)}: it is hung{error}"
    if status.state == "retrying":
        return f"streaming job (pid {status.pid}) cannot reach Kafka and is retrying{error}"
    return None


def _broker_reachable(ctx: Context) -> None:
    """The checklist's own look at the broker: unreachable means could-not-evaluate (exit 2), never pass."""
    _ = ctx.metadata


def events_fresh(ctx: Context) -> CheckResult:
    """The streaming job reports itself running and has seen a recent event, or has nothing waiting.

    Its status file is its heartbeat: the job rewrites it after every transaction and
    every few seconds when idle. A quiet source is fine when the job is caught up.
    Fails, like `job_alive`, on a dead pid, a stale heartbeat or a job not running; with the broker
    unreachable from the checklist it is not evaluated (exit 2), never passed.
    Example: `job running (pid 4242), reported 1s ago; last event 3s ago` passes;
    `last event 15 min ago with 1,204 records waiting` fails.
    """
    limit = ctx.spec.checklist.max_event_age_seconds
    r = ctx.begin("events_fresh", f"job report and last event within {limit:g}s (or nothing waiting)")
    if ctx.spec.is_external:
        return _external_events_fresh(ctx, r, limit)
    status = ctx.status
    if status is None:
        return r.failed(f"the streaming job has never reported here (no {status_path(ctx.spec)})")
    age = ctx.now - status.updated_at
    problem = dead_or_hung(ctx, status)
    if problem is not None:
        return r.failed(problem)
    if age > limit:
        return r.failed(f"streaming job (pid {status.pid}) last reported {ago(age)}; it is hung or gone")
    job = f"job running (pid {status.pid}), reported {ago(age)}"
    waiting = status.lag
    if waiting is None and status.lag_measured_at is not None:
        # The job tried and could not ask the broker: whether anything waits is unknown, not zero.
        raise CheckUnavailable(f"{job}, but it could not measure its lag: Kafka unreachable from the job?")

    def passed(evidence: str) -> CheckResult:
        # The job's last report may predate a broker outage (it can hang in a Kafka call): a pass also
        # needs the broker to answer the checklist itself.
        _broker_reachable(ctx)
        return r.passed(evidence)

    if status.last_event_ts_ms is None:
        if waiting == 0:
            return passed(f"{job}; no change event yet and nothing waiting")
        return r.warned(f"{job}; no change event processed yet ({waiting if waiting is not None else '?'} waiting)")
    event_age = ctx.now - status.last_event_ts_ms / 1000
    if event_age <= limit:
        return passed(f"{job}; last event {ago(event_age)}")
    if waiting == 0:
        return passed(f"{job}; last event {ago(event_age)} but nothing is waiting: the source is quiet")
    behind = f"{waiting:,} records waiting" if waiting is not None else "lag unknown"
    return r.failed(f"{job}; last event {ago(event_age)} with {behind}")


def job_alive(ctx: Context) -> CheckResult:
    """The streaming job's process is alive, its main loop turns, and it makes progress when input waits.

    Fails on a dead pid, a heartbeat older than 30 s, a `failed`, `restarting` or `crash_loop`
    state (the supervisor's, with the last error), a job retrying against an unreachable Kafka,
    or records waiting while nothing was committed for `max_event_age_seconds`. A broker the
    checklist itself cannot reach makes the check unevaluated (exit 2), never a pass.
    Example: `pid 4242 alive, heartbeat 1s ago, last commit 2s ago, lag 0` passes;
    `crash_loop: 5 restarts without progress; last error: PRODUCER_FENCED ...` fails.
    """
    limit = ctx.spec.checklist.max_event_age_seconds
    r = ctx.begin(
        "job_alive", f"pid alive, heartbeat within {HEARTBEAT_LIMIT_S:g}s, a commit within {limit:g}s when behind"
    )
    if ctx.spec.is_external:
        return _external_job_alive(ctx, r)
    status = ctx.status
    if status is None:
        return r.failed(f"the streaming job has never reported here (no {status_path(ctx.spec)})")
    problem = dead_or_hung(ctx, status)
    if problem is not None:
        return r.failed(problem)
    progress = status.committed_at if status.committed_at is not None else status.started_at
    idle = ctx.now - progress
    last = f"last commit {ago(idle)}" if status.committed_at is not None else f"no commit since start {ago(idle)}"
    # Measured now by the checklist: the job's own last report of its lag may predate an outage.
    try:
        topics = [t for t in ctx.change_topics if ctx.topic_exists(t)]
        waiting = ctx.group_lag(ctx.spec.stream.group, topics).total if topics else status.lag
    except CheckUnavailable:
        waiting = status.lag  # enough to fail a stuck job; a pass still needs the broker (below)
    if waiting and idle > limit:
        return r.failed(f"streaming job (pid {status.pid}) has {waiting:,} records waiting and {last}: it is stuck")
    _broker_reachable(ctx)
    beat = status.heartbeat_at if status.heartbeat_at is not None else status.updated_at
    lag = f"lag {waiting:,}" if waiting is not None else "lag not measured yet"
    restarts = f", restarted {status.restarts} time(s)" if status.restarts else ""
    return r.passed(f"pid {status.pid} alive, heartbeat {ago(ctx.now - beat)}, {last}, {lag}{restarts}")


def consumer_lag(ctx: Context) -> CheckResult:
    """The streaming job's consumer group is close behind the change topics.

    Example: `group dualrun-stream 12 record(s) behind on 2 partition(s)` passes at a
    threshold of 1000; `group dualrun-stream 5,000 records behind: dbserver1.shop.orders 5,000` fails.
    """
    limit = ctx.spec.checklist.max_consumer_lag
    r = ctx.begin("consumer_lag", f"<= {limit:,} records behind the change topics")
    group = ctx.spec.stream.group
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


def exactly_once(ctx: Context) -> CheckResult:
    """The running streaming job is configured for exactly once: a transactional, idempotent
    producer and a read_committed consumer that never auto-commits.

    Example: `transactional.id dualrun-stream-1, enable.idempotence true, isolation.level
    read_committed, enable.auto.commit false` passes; `isolation.level read_uncommitted` fails.
    """
    r = ctx.begin("exactly_once", "transactional.id set, enable.idempotence true, isolation.level read_committed")
    if ctx.spec.is_external:
        # The user's job's settings are not visible from Kafka; say what to check instead of guessing.
        return r.warned(
            f"the stream job is the user's own (group {ctx.spec.stream.group}): its settings cannot be read here; "
            "make sure it runs exactly once (Kafka Streams: processing.guarantee=exactly_once_v2; a consumer: "
            "transactional producer, isolation.level=read_committed, offsets sent in the transaction)"
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


def _external_job_alive(ctx: Context, r: CheckResult) -> CheckResult:
    """The user's own job has no status file; its consumer group says whether it runs (its lag is
    `consumer_lag`'s). Example: `group balance-job STABLE with 2 member(s)` passes; `EMPTY` fails."""
    group = ctx.spec.stream.group
    # A broker that does not answer is could-not-evaluate (ctx.kafka raises CheckUnavailable), not a failure.
    with ctx.kafka() as admin:
        future = admin.admin.describe_consumer_groups([group], request_timeout=ctx.timeout)[group]
        try:
            description = future.result(timeout=ctx.timeout)
        except TimeoutError as exc:
            raise CheckUnavailable(
                f"Kafka is not reachable at {ctx.spec.kafka.bootstrap_servers}: "
                f"consumer group {group} was not described within {ctx.timeout:g}s"
            ) from exc
    state = str(getattr(description.state, "name", description.state))
    members = len(description.members)
    if members == 0:
        return r.failed(f"group {group} is {state} with no member: the stream job is not running")
    return r.passed(f"group {group} {state} with {members} member(s) (the user's own job)")


def _external_events_fresh(ctx: Context, r: CheckResult, limit: float) -> CheckResult:
    """The user's own job reports no events here: the oldest change event its group has not
    committed past (its Kafka timestamp) must be younger than the limit. Example: `group
    balance-job has committed every change event` passes; `group balance-job: the oldest change
    event not committed is from 15 min ago (1,204 waiting)` fails."""
    group = ctx.spec.stream.group
    missing = [t for t in ctx.change_topics if not ctx.topic_exists(t)]
    if missing:
        return r.skip(f"change topic(s) {', '.join(missing)} do not exist (see consumer_lag)")
    lag = ctx.group_lag(group, ctx.change_topics)
    if lag.total == 0:
        return r.passed(f"group {group} has committed every change event (nothing waiting)")
    oldest = ctx.oldest_waiting_ms(lag)
    if oldest is None:
        raise CheckUnavailable(f"group {group} is {lag.total:,} records behind but none could be read to date them")
    age = max(0.0, ctx.now - oldest / 1000)
    waiting = f"the oldest change event not committed is from {ago(age)} ({lag.total:,} waiting)"
    if age > limit:
        return r.failed(f"group {group}: {waiting}: the job is stopped or not keeping up")
    return r.passed(f"group {group}: {waiting}")
