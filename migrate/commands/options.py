"""Options shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from migrate.stackconfig import StackConfig

# Choices and defaults shown by --help, spelled out here so that `--help` does not import the
# libraries that define them (pandas, pyarrow, DuckDB...). tests/unit/test_cli_imports.py holds
# each one equal to its source.
REPORT_FORMATS = ("text", "json", "markdown")  # comparators.report.FORMATS
RUN_FORMATS = ("html", "markdown", "json", "junit")  # comparators.report.RUN_FORMATS
# The demo's streaming sides and the defects each can inject: migrate.examples.shop_orders.defects.DEFECTS
# (dualrun's own job) and migrate.examples.order_enricher.runner.DEFECTS (the Kafka Streams job).
STREAM_DEFECTS: dict[str, tuple[str, ...]] = {
    "dualrun": ("double-count-updates", "drop-deletes", "ignore-customer-changes"),
    "kafka-streams": ("drop-deletes", "ignore-customer-changes", "tier-boundary"),
}
CHECK_NAMES = (  # migrate.checklist.CHECK_NAMES, in registry order
    "connector_running", "job_alive", "events_fresh", "consumer_lag", "dead_letters_empty", "topic_retention",
    "state_topics_compacted", "replication", "kafka_security", "connector_secrets", "exactly_once",
    "sink_isolation", "outputs_carry_positions", "positions_monotone", "cdc_complete", "parity", "coverage",
    "noise_baseline", "data_quality", "rollback_ready",
)  # fmt: skip
PORT = click.IntRange(1, 65535)  # every port option: 99999 is a usage error, not a bind failure later
MEMORY_LIMIT = "1536MB"  # comparators.engine.Settings.memory_limit

spec_option = click.option("--spec", "spec_path", type=click.Path(path_type=Path), default=None,
                           help="Pipeline spec (default ./dualrun.yaml, else the reference spec).")  # fmt: skip
state_option = click.option("--state-dir", type=click.Path(path_type=Path), default=None,
                            help="Override the spec's state_dir.")  # fmt: skip


def stack_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--state-dir and the port overrides, turned into one `config: StackConfig` argument."""
    options = [
        click.option("--state-dir", type=click.Path(path_type=Path), default=None,
                     help="Where the stack keeps data, logs and pids (default ./.dualrun or $DUALRUN_HOME)."),
        click.option("--mariadb-port", type=PORT, default=None, help="MariaDB port (3306)."),
        click.option("--kafka-port", type=PORT, default=None, help="Kafka broker port (9092)."),
        click.option("--controller-port", type=PORT, default=None, help="KRaft controller port (9093)."),
        click.option("--connect-port", type=PORT, default=None, help="Kafka Connect REST port (8083)."),
        click.option("--postgres-port", type=PORT, default=None, help="PostgreSQL port (5432)."),
    ]  # fmt: skip

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        config = StackConfig.from_env(
            kwargs.pop("state_dir"),
            mariadb=kwargs.pop("mariadb_port"),
            kafka=kwargs.pop("kafka_port"),
            controller=kwargs.pop("controller_port"),
            connect=kwargs.pop("connect_port"),
            postgres=kwargs.pop("postgres_port"),
        )
        return func(config=config, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper
