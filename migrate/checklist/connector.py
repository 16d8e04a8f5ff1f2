"""Checks on change data capture: the Debezium connector on Kafka Connect, and its topics."""

from __future__ import annotations

from typing import Any

from cdc.errors import ConnectError, ConnectorNotFound
from cdc.health import diagnose
from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.errors import CheckUnavailable


def _source_gtids(ctx: Context, _config: dict[str, Any]) -> str | None:
    """The spec's source's @@gtid_binlog_pos; None when it cannot be read (the stall rule then stays out)."""
    import sqlalchemy as sa

    from migrate.batch import source_url

    try:
        engine = sa.create_engine(source_url(ctx.spec), connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                gtids = conn.exec_driver_sql("SELECT @@gtid_binlog_pos").scalar()
        finally:
            engine.dispose()
    except sa.exc.SQLAlchemyError:
        return None
    return str(gtids) if gtids else None


def connector_running(ctx: Context) -> CheckResult:
    """The Debezium connector, each output's sink connector and every one of their tasks are RUNNING
    on Kafka Connect, and the Debezium connector's topics exist or can be created (see cdc.health:
    RUNNING alone can hide a connector that delivers nothing).

    Example: `connector dualrun-shop RUNNING on 127.0.0.1:8083, 1/1 task(s) RUNNING` passes;
    `connector dualrun-shop PAUSED, task 0 PAUSED` fails, and so do `connector dualrun-shop
    RUNNING but its topic(s) dbserver1.shop.orders do not exist and nothing will create them: ...`
    and `... RUNNING but delivering nothing: the last record 900s ago on its topics, while the
    source is at GTID 0-1-4242 and the connector's committed offset at 0-1-120`.
    """
    r = ctx.begin("connector_running", "connector and all tasks RUNNING, its topics exist or can be created")
    source = _source_running(ctx, r)
    sinks = _sinks_running(ctx)
    if not sinks:
        return source
    failing = [line for ok, line in sinks if not ok]
    if source.status == "pass" and not failing:
        return r.passed("; ".join([source.evidence, *(line for _, line in sinks)]))
    return r.failed("; ".join([source.evidence, *failing] if source.status != "pass" else failing))


def _sinks_running(ctx: Context) -> list[tuple[bool, str]]:
    """Each output's sink connector (`outputs.X.sink`): (running, one line), e.g. `sink connector
    shop-orders-oe-sink FAILED, task 0 FAILED; reason: ...TopicAuthorizationException: ...`."""
    from migrate.sink import connector_name

    found = []
    for output in (name for name, out in ctx.spec.outputs.items() if out.sink is not None):
        name = connector_name(ctx.spec, output)
        try:
            status = ctx.connect.status(name)
        except ConnectorNotFound:
            found.append((False, f"no sink connector {name!r} for {output}: `dualrun cdc register-sink --spec`"))
            continue
        except ConnectError as exc:
            raise CheckUnavailable(str(exc)) from exc
        states = ", ".join(f"task {t.id} {t.state}" for t in status.tasks) or "no tasks"
        reason = f"; reason: {status.reason}" if status.reason else ""
        found.append((status.running, f"sink connector {name} {status.state}, {states}{reason}"))
    return found


def _source_running(ctx: Context, r: CheckResult) -> CheckResult:
    name = ctx.spec.cdc.connector
    try:
        gtids = (lambda config: _source_gtids(ctx, config)) if ctx.spec.source.kind == "mariadb" else None
        health = diagnose(
            ctx.connect, name, ctx.admin, gtids, now=ctx.now, limit_s=ctx.spec.checklist.max_event_age_seconds
        )
    except ConnectorNotFound:
        return r.failed(f"no connector named {name!r} is registered on {ctx.spec.cdc.connect_url}")
    except ConnectError as exc:  # unreachable, 401/403, 5xx: this check only, not the checklist
        raise CheckUnavailable(str(exc)) from exc
    status = health.status
    if health.unchecked is not None:
        raise CheckUnavailable(f"connector {name} {status.state}, but its topics could not be checked: "
                               f"{health.unchecked}")  # fmt: skip
    running = sum(t.state == "RUNNING" for t in status.tasks)
    tasks = f"{running}/{len(status.tasks)} task(s) RUNNING"
    if health.stuck is not None:
        return r.failed(f"connector {name} {health.stuck}")
    if status.running:
        return r.passed(f"connector {name} RUNNING on {status.worker or '?'}, {tasks}")
    states = ", ".join(f"task {t.id} {t.state}" for t in status.tasks) or "no tasks"
    reason = f"; reason: {status.reason}" if status.reason else ""
    return r.failed(f"connector {name} {status.state}, {states}{reason}")
