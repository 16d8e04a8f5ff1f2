"""Every terminal rendering of migrate's results lives here; commands only choose a format."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from cdc.connect import ConnectorStatus
from cdc.envelope import ChangeEvent, Tombstone
from migrate.stack import StackStatus


def as_json(result: Any) -> str:
    return json.dumps(result.to_dict(), indent=2, default=str)


def stack_status(status: StackStatus, console: Console) -> None:
    table = Table(title="dualrun stack", title_justify="left")
    for column in ("service", "port", "health", "version", "pid", "detail"):
        table.add_column(column)
    for s in status.services:
        health = "[green]healthy[/]" if s.healthy else ("[yellow]unhealthy[/]" if s.running else "[red]down[/]")
        table.add_row(s.name, str(s.port), health, s.version or "-", str(s.pid or "-"), s.detail)
    console.print(table)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def connector_config(stored: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]connector {stored['name']}[/] registered:")
    console.print_json(json.dumps(stored["config"], sort_keys=True))


def connector_status(status: ConnectorStatus, console: Console) -> None:
    colour = "green" if status.running else ("red" if status.failed else "yellow")
    console.print(f"connector [bold]{status.name}[/]: [{colour}]{status.state}[/] on {status.worker or '-'}")
    for task in status.tasks:
        console.print(f"  task {task.id}: {task.state}" + (f" - {task.error}" if task.error else ""))
    if not status.tasks:
        console.print("  no tasks")
    if status.error:
        console.print(f"  reason: {status.error}")


def change_event(event: ChangeEvent | Tombstone, console: Console) -> None:
    if isinstance(event, Tombstone):
        console.print(f"[dim]{event.topic} tombstone key={event.key}[/]")
        return
    values = event.after if event.op != "d" else event.before
    console.print(
        f"{event.topic} {event.op} key={event.key} @ {event.position} "
        f"{'(snapshot) ' if event.snapshot else ''}{values}",
        markup=False,
        highlight=False,
    )
