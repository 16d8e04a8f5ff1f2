"""Checks on change data capture: the Debezium connector on Kafka Connect."""

from __future__ import annotations

from cdc.errors import ConnectorNotFound, ConnectUnreachable
from migrate.checklist.context import Context
from migrate.checklist.model import CheckResult
from migrate.errors import CheckUnavailable


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
