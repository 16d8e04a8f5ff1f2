"""Checks on where users read: the Kafka Connect sinks of the outputs (`outputs.X.sink`)."""

from __future__ import annotations

from cdc.errors import ConnectError, ConnectorNotFound
from cdc.sink import isolation_problem, sink_topics
from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.errors import CheckUnavailable


def sink_isolation(ctx: Context) -> CheckResult:
    """Every output's sink connector reads the output topic with read_committed when the stream job
    writes it exactly once (in Kafka transactions); its config is read from Connect's REST API.

    Example: `sink shop-orders-orders-enriched-sink reads orders-enriched with read_committed`
    passes; `sink ... reads exactly-once topic(s) orders-enriched with isolation.level
    read_uncommitted (Connect's default): it also writes records of aborted transactions; fix: set
    consumer.override.isolation.level=read_committed ...` fails.
    """
    from migrate.sink import connector_name

    r = ctx.begin("sink_isolation", "a sink of an exactly-once topic reads with isolation.level read_committed")
    sinks = {name: out for name, out in ctx.spec.outputs.items() if out.sink is not None}
    if not sinks:
        return r.skip("no output has a sink (outputs.X.sink)")
    transactional = (
        {o.stream.topic for o in sinks.values() if o.stream.topic} if ctx.spec.stream.exactly_once else set()
    )
    problems, fine = [], []
    for output in sinks:
        name = connector_name(ctx.spec, output)
        try:
            config = ctx.connect.config(name)
        except ConnectorNotFound:
            problems.append(f"no sink connector {name!r} on {ctx.spec.cdc.connect_url}: `dualrun cdc register-sink`")
            continue
        except ConnectError as exc:  # unreachable, 401/403, 5xx: this check only, not the checklist
            raise CheckUnavailable(str(exc)) from exc
        problem = isolation_problem(name, config, transactional)
        if problem:
            problems.append(problem)
        else:
            level = config.get("consumer.override.isolation.level") or "read_uncommitted (not transactional)"
            fine.append(f"sink {name} reads {', '.join(sink_topics(config))} with {level}")
    if problems:
        return r.failed("; ".join(problems))
    return r.passed("; ".join(fine))
