"""`dualrun cdc register | status | restart | pause | resume | delete | offsets | tail`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from migrate.commands.options import PORT, REPORT_FORMATS, spec_option, stack_options, state_option
from migrate.errors import DualrunError
from migrate.stackconfig import StackConfig

if TYPE_CHECKING:
    from cdc.client import Kafka
    from cdc.connect import ConnectClient
    from cdc.connector import ConnectorSettings
    from cdc.health import ConnectorHealth

DEFAULT_NAME = "dualrun-shop"


def local_connector(config: StackConfig, name: str = DEFAULT_NAME, **overrides: Any) -> ConnectorSettings:
    """The Debezium connector for the local stack's `shop` database (MariaDB unless kind='postgres')."""
    from cdc.connector import ConnectorSettings

    postgres = overrides.get("kind") == "postgres"
    settings: dict[str, Any] = {
        "name": name, "kind": "mariadb", "hostname": "127.0.0.1",
        "port": config.ports.postgres if postgres else config.ports.mariadb,
        "user": config.debezium_user, "password": config.debezium_password,
        "databases": (config.database,), "bootstrap_servers": config.bootstrap_servers,
    }  # fmt: skip
    if config.secure:
        java = config.kafka("debezium").java_properties()
        # Connect's FileConfigProvider reads the JAAS line: the password stays out of Connect's topics.
        java["sasl.jaas.config"] = f"${{file:{config.state_dir / 'secure' / 'debezium.properties'}:sasl.jaas.config}}"
        settings["kafka_properties"] = java
    if postgres:
        # The stack's schema `shop` in database `shop`, through the publication its owner made.
        settings["publication"] = config.postgres_publication
        if overrides.get("databases") is None:
            # Only the publication's tables: others would be snapshotted, then never streamed.
            settings["tables"] = (f"{config.database}.customers", f"{config.database}.orders")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if config.secure and settings["password"] == config.debezium_password:
        # The stack's secrets file holds this password (Connect's FileConfigProvider resolves it).
        settings["password_ref"] = f"${{file:{config.state_dir / 'secure' / 'debezium.properties'}:database.password}}"
    return ConnectorSettings(**settings)


def _http_url(ctx: click.Context, param: click.Parameter, url: str | None) -> str | None:
    from migrate.spec.base import http_url_problem

    problem = None if url is None else http_url_problem(url)
    if problem:
        raise click.BadParameter(problem, ctx=ctx, param=param)
    return url


def connector_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Common options: the stack settings, --connect-url and --name."""
    func = click.option("--name", default=DEFAULT_NAME, show_default=True, help="Connector name.")(func)
    func = click.option("--connect-url", default=None, callback=_http_url,
                        help="Kafka Connect REST URL (default: the local stack's).")(func)  # fmt: skip
    return stack_options(func)


def client_for(config: StackConfig, url: str | None) -> ConnectClient:
    return config.connect_client(url, secrets=(config.debezium_password, config.db_password))


@click.group()
def cdc() -> None:
    """Register and operate the Debezium connector on a running Kafka Connect."""


@cdc.command()
@connector_command
@click.option("--kind", type=click.Choice(["mariadb", "mysql", "postgres"]), default="mariadb", show_default=True)
@click.option("--db-host", default=None, help="Source database host (default 127.0.0.1).")
@click.option("--db-port", type=PORT, default=None, help="Source database port (default: the stack's, for --kind).")
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
        target = spec.cdc if connect_url is None else spec.cdc.model_copy(update={"connect_url": connect_url})
        _put(target.connect_client(secrets=(from_spec.password,)), from_spec, wait_seconds)
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
    client = config.connect_client(connect_url, secrets=(password, config.db_password))
    _put(client, settings, wait_seconds)


@cdc.command("register-sink")
@spec_option
@click.option(
    "--output", "outputs", multiple=True, help="Only this output (repeatable; default: every output with a sink)."
)
@click.option(
    "--read-uncommitted",
    is_flag=True,
    help="Leave Connect's default isolation (read_uncommitted): to reproduce the defect, never in production.",
)
@click.option(
    "--wait-seconds",
    type=float,
    default=60.0,
    show_default=True,
    help="Wait until the connector and its tasks settle (0: do not wait).",
)
def register_sink(
    spec_path: Path | None, outputs: tuple[str, ...], read_uncommitted: bool, wait_seconds: float
) -> None:
    """Create or update the Debezium JDBC sink of each output with `sink:` (its topic into its table)."""
    from rich.console import Console

    from migrate import render
    from migrate.sink import register_sink as put_sink
    from migrate.spec import load_spec

    spec = load_spec(spec_path)
    names = outputs or tuple(n for n, o in spec.outputs.items() if o.sink is not None)
    if not names:
        raise DualrunError("no output has a sink: add `sink: {table: NAME}` under outputs.X in the spec")
    failed = False
    for output in names:
        if output not in spec.outputs:
            raise DualrunError(f"--output {output}: the spec has no such output ({', '.join(spec.outputs)})")
        registered = put_sink(spec, output, read_committed=False if read_uncommitted else None)
        if registered.warning is not None:
            click.echo(registered.warning, err=True)  # as the CLI's other warnings: stderr, one line
        settings = registered.settings
        client = spec.cdc.connect_client(secrets=(settings.password,))
        render.connector_config(client.config(settings.name), Console(), settings.name)
        if wait_seconds > 0:
            status = client.wait_settled(settings.name, wait_seconds)
            render.connector_status(status, Console())
            failed = failed or status.failed
    raise SystemExit(1 if failed else 0)


def _put(client: ConnectClient, settings: ConnectorSettings, wait_seconds: float) -> None:
    from rich.console import Console

    from migrate import render

    stored = client.put(settings.name, settings.to_config())
    render.connector_config(stored, Console())
    if wait_seconds > 0:
        status = client.wait_settled(settings.name, wait_seconds)
        render.connector_status(status, Console())
        raise SystemExit(1 if status.failed else 0)


@cdc.command()
@connector_command
@click.option("--bootstrap-servers", default=None, help="The Kafka its topics go to (default: the local stack's).")
@click.option("--max-silence", type=float, default=60.0, show_default=True,
              help="Seconds without a record, the source writing, before RUNNING counts as stalled.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
              help="Take Connect, the connector name and Kafka's client settings from this pipeline spec.")  # fmt: skip
def status(config: StackConfig, connect_url: str | None, name: str, bootstrap_servers: str | None,
           max_silence: float, as_json: bool, spec_path: Path | None) -> None:  # fmt: skip
    """Connector and task states with the failure reason, and whether it delivers; exit 1 unless it
    does, 2 when the broker did not answer (its topics could not be checked).

    A RUNNING connector is stuck (exit 1, cause and fix) when its topics do not exist on a broker
    that will not create them (no topic.creation.default.*, auto.create.topics.enable=false), or
    (MariaDB, heartbeats on) when its offset is behind the source and its topics got no record
    for --max-silence seconds. The source is read as the connector's user ($DUALRUN_DEBEZIUM_PASSWORD).
    """
    from rich.console import Console

    from cdc.health import diagnose
    from cdc.topics import TopicAdmin
    from migrate import render
    from migrate.spec import load_spec

    kafka: Kafka = bootstrap_servers or config.kafka()
    connect, password = client_for(config, connect_url), config.debezium_password
    if spec_path is not None:
        spec = load_spec(spec_path)
        kafka = bootstrap_servers or spec.kafka.client()
        connect = client_for(config, connect_url) if connect_url else spec.cdc.connect_client()
        name = name if _given("name") else spec.cdc.connector
        password = spec.cdc.known_password() or ""
    broker = TopicAdmin(kafka, timeout=10)
    health = diagnose(connect, name, broker, _gtids_reader(password), limit_s=max_silence)
    if as_json:
        click.echo(render.as_json(health))
    else:
        render.connector_health(health, Console())
    raise SystemExit(status_exit_code(health))


def status_exit_code(health: ConnectorHealth) -> int:
    """0 delivers; 1 not running or stuck (a finding); 2 running but the broker did not answer, so
    whether it delivers could not be evaluated."""
    if health.ok:
        return 0
    return 1 if not health.status.running or health.stuck is not None else 2


def _gtids_reader(password: str) -> Callable[[dict[str, Any]], str | None]:
    """Reads a MariaDB source's @@gtid_binlog_pos where the connector's config points, as its user."""

    def read(connector: dict[str, Any]) -> str | None:
        import pymysql

        try:
            conn = pymysql.connect(
                host=str(connector.get("database.hostname", "127.0.0.1")),
                port=int(connector.get("database.port", 3306)), user=str(connector.get("database.user", "")),
                password=password, connect_timeout=3,
            )  # fmt: skip
            with conn, conn.cursor() as cur:
                cur.execute("SELECT @@gtid_binlog_pos")
                row = cur.fetchone()
        except pymysql.MySQLError:
            return None  # then only the topic rule applies
        return str(row[0]) if row and row[0] else None

    return read


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
    from migrate import render

    click.echo(render.to_json(client_for(config, connect_url).offsets(name)))


@cdc.command()
@stack_options
@click.option("--table", "tables", multiple=True, default=("shop.orders", "shop.customers"), show_default=True,
              help="A captured table (repeatable); with --spec, default: the spec's cdc.tables.")  # fmt: skip
@click.option("--topic-prefix", default="dbserver1", show_default=True,
              help="With --spec, default: the spec's cdc.topic_prefix.")  # fmt: skip
@click.option("--max-events", type=int, default=0, help="Stop after this many events (0: until Ctrl-C).")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset instead of now.")
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
              help="Take the tables, topic prefix and Kafka's client settings from this pipeline spec.")  # fmt: skip
def tail(
    config: StackConfig, tables: tuple[str, ...], topic_prefix: str, max_events: int, from_beginning: bool,
    spec_path: Path | None,
) -> None:  # fmt: skip
    """Print change events live as Debezium publishes them; exit 2 at once if none of the topics exists."""
    from rich.console import Console

    from migrate.spec import load_spec
    from migrate.tail import tail_events

    kafka: Kafka = config.kafka()
    if spec_path is not None:
        spec = load_spec(spec_path)
        kafka = spec.kafka.client()
        tables = tables if _given("tables") else spec.cdc.tables
        topic_prefix = topic_prefix if _given("topic_prefix") else spec.cdc.topic_prefix
    topics = [f"{topic_prefix}.{t}" for t in tables]
    tail_events(kafka, topics, max_events, from_beginning, Console())


def _given(param: str) -> bool:
    """True when the user typed the option (not its default), so it wins over the spec's value."""
    source = click.get_current_context().get_parameter_source(param)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


@cdc.command()
@spec_option
@state_option
@click.option("--wait", "wait_seconds", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the connector's offset to pass the snapshot position.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True)
@click.option("--no-record", is_flag=True, help="Do not store the result in the run history.")
def verify(spec_path: Path | None, state_dir: Path | None, wait_seconds: float, fmt: str, no_record: bool) -> None:
    """Check the change log against the source: rebuild each table of cdc.tables from its topic as of
    a consistent snapshot's position and reconcile it with the snapshot; exit 0 clean, 1 differences,
    2 not evaluated (the log did not reach the position, Connect or Kafka did not answer).

    Each difference gets a cause: not_captured, snapshot_gap, lost_insert, binlog_gap, lost_delete,
    decoding (with the connector setting that explains it) or lost_update.
    """
    from migrate import render
    from migrate.commands.run import spec_for
    from migrate.verify import history
    from migrate.verify.run import verify as run_verify

    spec = spec_for(spec_path, state_dir)
    result = run_verify(spec, wait_seconds=wait_seconds)
    if not no_record:
        history.record(spec.history_path, result)
    click.echo(render.cdc_verification(result, fmt), nl=False)
    raise SystemExit(result.exit_code)
