"""`dualrun stack up | down | status | fetch`."""

from __future__ import annotations

import click

from migrate.commands.options import stack_options
from migrate.errors import DualrunError
from migrate.stackconfig import StackConfig

# Services a user may add to the default stack (MariaDB, Kafka, Connect); see migrate.stack.OPTIONAL.
# `sink`: PostgreSQL for the Debezium JDBC sink's tables (the sink plugin is always on Connect's path).
OPTIONAL_SERVICES = ("postgres", "sink")
WITH = {"postgres": ("postgres",), "sink": ("postgres",)}


@click.group()
def stack() -> None:
    """Start, stop and check the local MariaDB, Kafka, Kafka Connect + Debezium (and PostgreSQL on request)."""


@stack.command()
@stack_options
@click.option("--with", "extras", multiple=True, type=click.Choice(OPTIONAL_SERVICES),
              help="Also run this optional service (repeatable): postgres, for PostgreSQL as a source; sink, "
                   "PostgreSQL for the tables of the Debezium JDBC sink (`dualrun cdc register-sink`).")  # fmt: skip
@click.option("--monitoring", is_flag=True, help="Also run Prometheus, Alertmanager and dualrun's exporter, with "
              "the JMX exporter agent in the broker and Connect (ports: DUALRUN_PROMETHEUS_PORT, ...).")  # fmt: skip
@click.option("--secure", is_flag=True,
              help="Kafka on SASL_SSL (SCRAM-SHA-256) with a mutual-TLS controller and ACLs, one user per "
                   "client. Default: as the stack was last brought up.")  # fmt: skip
@click.option("--plaintext", is_flag=True, help="Kafka on PLAINTEXT again after --secure.")
def up(config: StackConfig, extras: tuple[str, ...], monitoring: bool, secure: bool, plaintext: bool) -> None:
    """Start MariaDB, Kafka and Connect (plus any --with service) unless running; wait until each is healthy.
    Exit 2 for --secure with --plaintext or a service that cannot start."""
    from rich.console import Console

    from migrate import render
    from migrate.process import port_open
    from migrate.stack import DEFAULT, MONITORING, Stack, switch_security

    if secure and plaintext:
        raise DualrunError("stack up: --secure and --plaintext are mutually exclusive; give one of them")
    if secure or plaintext:
        config = switch_security(config, secure)
    console = Console(stderr=True)
    services = tuple(name for extra in extras for name in WITH[extra])
    stack = Stack(config, (*DEFAULT, *services, *(MONITORING if monitoring else ())))
    with console.status("starting the stack") as spinner:
        timings = stack.up(lambda step: spinner.update(f"starting {step}"))
    summary = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items())
    click.echo(f"stack up in {config.state_dir} ({summary})")
    if config.secure:
        home = config.state_dir / "secure"
        click.echo(f"secured: client settings in {home / 'kafka.yaml'} (spec) and {home / 'client.properties'}")
    if stack.monitored:
        unwatched = [name for name, port in (("kafka", config.ports.kafka_jmx), ("connect", config.ports.connect_jmx))
                     if not port_open(port)]  # fmt: skip
        if unwatched:
            click.echo(f"note: {' and '.join(unwatched)} started before --monitoring and run without the JMX "
                       "agent: `dualrun stack down`, then `stack up --monitoring` loads it", err=True)  # fmt: skip
        click.echo(f"Prometheus {config.prometheus_url} (console: {config.prometheus_url}/consoles/dualrun.html), "
                   f"Alertmanager {config.alertmanager_url}")  # fmt: skip
    render.stack_status(stack.status(), Console())


@stack.command()
@stack_options
def fetch(config: StackConfig) -> None:
    """Fetch the pinned Kafka, Connect and Debezium jars (Maven Central) without starting anything."""
    from migrate.artifacts import ensure_artifacts

    artifacts = ensure_artifacts(config.state_dir)
    click.echo(
        f"artifacts ready in {artifacts.lib_dir} (Kafka {artifacts.jar_version('kafka-clients')}, "
        f"Debezium {artifacts.jar_version('debezium-core') or artifacts.jar_version('debezium-api')})"
    )


@stack.command()
@stack_options
def down(config: StackConfig) -> None:
    """Stop the streaming jobs and services this state directory started (and nothing else)."""
    from migrate.commands.run import stream_jobs
    from migrate.stack import Stack

    # Jobs first: they would otherwise spin retrying against a broker that went away.
    jobs = sum(1 for job in stream_jobs(config.state_dir) if job.stop(timeout=60))
    stopped = ([f"{jobs} streaming job{'s' if jobs != 1 else ''}"] if jobs else []) + Stack(config).down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack.command()
@stack_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config: StackConfig, as_json: bool) -> None:
    """Each service's health, version and port; exit 1 unless every service this stack runs is healthy."""
    from rich.console import Console

    from migrate import render
    from migrate.stack import Stack

    result = Stack(config).status()
    if as_json:
        click.echo(render.as_json(result))
    else:
        render.stack_status(result, Console())
    raise SystemExit(0 if result.healthy else 1)
