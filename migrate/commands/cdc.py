"""`dualrun cdc register | status | restart | pause | resume | delete | offsets | tail`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from cdc.connect import ConnectClient
from cdc.connector import ConnectorSettings
from migrate import render
from migrate.commands.options import stack_options
from migrate.errors import DualrunError
from migrate.stackconfig import StackConfig

DEFAULT_NAME = "dualrun-shop"


def local_connector(config: StackConfig, name: str = DEFAULT_NAME, **overrides: Any) -> ConnectorSettings:
    """The Debezium connector for the local stack's `shop` database (MariaDB unless kind='postgres')."""
    postgres = overrides.get("kind") == "postgres"
    settings: dict[str, Any] = {
        "name": name, "kind": "mariadb", "hostname": "127.0.0.1",
        "port": config.ports.postgres if postgres else config.ports.mariadb,
        "user": config.debezium_user, "password": config.debezium_password,
        "databases": (config.database,), "bootstrap_servers": config.bootstrap_servers,
    }  # fmt: skip
    if postgres:
        # The stack's schema `shop` in database `shop`, through the publication its owner made.
        settings["publication"] = config.postgres_publication
        if overrides.get("databases") is None:
            # Only the publication's tables: others would be snapshotted, then never streamed.
            settings["tables"] = (f"{config.database}.customers", f"{config.database}.orders")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return ConnectorSettings(**settings)


def connector_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Common options: the stack settings, --connect-url and --name."""
    func = click.option("--name", default=DEFAULT_NAME, show_default=True, help="Connector name.")(func)
    func = click.option("--connect-url", default=None, help="Kafka Connect REST URL (default: the local stack's).")(
        func
    )
    return stack_options(func)


def client_for(config: StackConfig, url: str | None) -> ConnectClient:
    return ConnectClient(url or config.connect_url, secrets=(config.debezium_password, config.db_password))


@click.group()
def cdc() -> None:
    """Register and operate the Debezium connector on a running Kafka Connect."""


@cdc.command()
@connector_command
@click.option("--kind", type=click.Choice(["mariadb", "mysql", "postgres"]), default="mariadb", show_default=True)
@click.option("--db-host", default=None, help="Source database host (default 127.0.0.1).")
@click.option("--db-port", type=int, default=None, help="Source database port (default: the stack's, for --kind).")
@click.option("--db-user", default=None, help="Debezium's database user (default: debezium).")
@click.option("--password-env", default="DUALRUN_DEBEZIUM_PASSWORD", show_default=True,
              help="Environment variable holding that user's password.")  # fmt: skip
@click.option("--database", "databases", multiple=True,
              help="Database (PostgreSQL: schema) to capture (repeatable; default shop).")  # fmt: skip
@click.option("--topic-prefix", default=None, help="Topic prefix (default dbserver1).")
@click.option("--wait", "wait_seconds", type=float, default=60.0, show_default=True,
              help="Seconds to wait for RUNNING (or FAILED); 0 to return at once.")  # fmt: skip
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
              help="Build the connector from a pipeline spec's source and cdc sections (with the "
                   "position header SMT unless cdc.position_header is null); "
                   "other connection options are unused.")  # fmt: skip
def register(
    config: StackConfig, connect_url: str | None, name: str, kind: str, db_host: str | None,
    db_port: int | None, db_user: str | None, password_env: str, databases: tuple[str, ...],
    topic_prefix: str | None, wait_seconds: float, spec_path: Path | None,
) -> None:  # fmt: skip
    """Create or update the Debezium connector; exit 1 if it fails to run."""
    if spec_path is not None:
        from migrate.connector import connector_settings
        from migrate.spec import load_spec

        spec = load_spec(spec_path)
        from_spec = connector_settings(spec)
        _put(ConnectClient(connect_url or spec.cdc.connect_url, secrets=(from_spec.password,)), from_spec, wait_seconds)
        return
    password = os.environ.get(password_env) or (
        config.debezium_password if password_env == "DUALRUN_DEBEZIUM_PASSWORD" else None
    )
    if password is None:
        raise DualrunError(f"environment variable {password_env} is not set; export the database password there")
    settings = local_connector(
        config, name, kind=kind, hostname=db_host, port=db_port, user=db_user, password=password,
        databases=databases or None, topic_prefix=topic_prefix,
    )  # fmt: skip
    client = ConnectClient(connect_url or config.connect_url, secrets=(password, config.db_password))
    _put(client, settings, wait_seconds)


def _put(client: ConnectClient, settings: ConnectorSettings, wait_seconds: float) -> None:
    stored = client.put(settings.name, settings.to_config())
    render.connector_config(stored, Console())
    if wait_seconds > 0:
        status = client.wait_settled(settings.name, wait_seconds)
        render.connector_status(status, Console())
        raise SystemExit(1 if status.failed else 0)


@cdc.command()
@connector_command
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config: StackConfig, connect_url: str | None, name: str, as_json: bool) -> None:
    """Connector and task states, with the failure reason; exit 1 unless all RUNNING."""
    result = client_for(config, connect_url).status(name)
    if as_json:
        click.echo(render.as_json(result))
    else:
        render.connector_status(result, Console())
    raise SystemExit(0 if result.running else 1)


@cdc.command()
@connector_command
@click.option("--only-failed", is_flag=True, help="Restart only failed connector/tasks.")
@click.option("--connector-only", is_flag=True, help="Do not restart the tasks.")
def restart(config: StackConfig, connect_url: str | None, name: str, only_failed: bool, connector_only: bool) -> None:
    """Restart the connector and (by default) its tasks."""
    client_for(config, connect_url).restart(name, include_tasks=not connector_only, only_failed=only_failed)
    click.echo(f"restart requested for {name}")


@cdc.command()
@connector_command
def pause(config: StackConfig, connect_url: str | None, name: str) -> None:
    """Pause the connector (it keeps its offsets)."""
    client_for(config, connect_url).pause(name)
    click.echo(f"paused {name}")


@cdc.command()
@connector_command
def resume(config: StackConfig, connect_url: str | None, name: str) -> None:
    """Resume a paused connector."""
    client_for(config, connect_url).resume(name)
    click.echo(f"resumed {name}")


@cdc.command()
@connector_command
def delete(config: StackConfig, connect_url: str | None, name: str) -> None:
    """Delete the connector (its topics and offsets stay)."""
    client_for(config, connect_url).delete(name)
    click.echo(f"deleted {name}")


@cdc.command()
@connector_command
def offsets(config: StackConfig, connect_url: str | None, name: str) -> None:
    """The source offsets Connect has committed for the connector."""
    click.echo(render.to_json(client_for(config, connect_url).offsets(name)))


@cdc.command()
@stack_options
@click.option("--table", "tables", multiple=True, default=("shop.orders", "shop.customers"), show_default=True)
@click.option("--topic-prefix", default="dbserver1", show_default=True)
@click.option("--max-events", type=int, default=0, help="Stop after this many events (0: until Ctrl-C).")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset instead of now.")
def tail(
    config: StackConfig, tables: tuple[str, ...], topic_prefix: str, max_events: int, from_beginning: bool
) -> None:
    """Print change events live as Debezium publishes them."""
    from migrate.tail import tail_events

    topics = [f"{topic_prefix}.{t}" for t in tables]
    tail_events(config.bootstrap_servers, topics, max_events, from_beginning, Console())
