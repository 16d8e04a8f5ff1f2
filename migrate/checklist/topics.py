"""Checks on the pipeline's topics: retention past the batch window, compacted state, replication."""

from __future__ import annotations

from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.pipeline.contract import TopicRole
from migrate.pipeline.registry import load_pipeline


def _hours(ms: int | None) -> str:
    return "unlimited" if ms is None else f"{ms / 3_600_000:g}h"


def _output_topics(ctx: Context, role: TopicRole) -> list[str]:
    """The output topics of dualrun's own job with this role (the pipeline says which); an external
    job's output topics are the user's to configure."""
    if ctx.spec.stream.pipeline is None:
        return []
    pipeline = load_pipeline(ctx.spec.stream.pipeline)
    return [
        out.stream.topic
        for name, out in ctx.spec.outputs.items()
        if out.stream.topic is not None and name in pipeline.outputs and pipeline.outputs[name].topic_role == role
    ]


def _retained_topics(ctx: Context) -> list[str]:
    """Topics whose history must outlive a batch window: change topics, retained outputs, dead letters."""
    if ctx.spec.stream.pipeline is None:
        return list(ctx.change_topics)
    return [*ctx.change_topics, *_output_topics(ctx, "retained"), ctx.spec.stream.dead_letter_topic]


def _state_topics(ctx: Context) -> list[str]:
    """The compacted topics that hold the stream job's state: dualrun's job's compacted outputs and
    state topic; for the user's own job, its Kafka Streams changelogs (`<application.id>-...-changelog`)."""
    if ctx.spec.is_external:
        prefix = f"{ctx.spec.stream.group}-"
        return sorted(t for t in ctx.metadata.topics if t.startswith(prefix) and t.endswith("-changelog"))
    return [*_output_topics(ctx, "compacted"), ctx.spec.stream.state_topic]


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
    """The job's compacted output topics and its state topic are compacted, so the latest value per
    key is kept forever (dualrun's own job only: an external job keeps its state itself).

    Example: `orders-enriched compact, dualrun-stream-state compact` passes;
    `orders-enriched delete (retention 168h)` fails: state would expire.
    """
    r = ctx.begin("state_topics_compacted", "cleanup.policy includes compact")
    seen, bad = [], []
    topics = _state_topics(ctx)
    if not topics:
        return r.passed(f"the stream job (group {ctx.spec.stream.group}) keeps no state in Kafka topics")
    for topic in topics:
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
