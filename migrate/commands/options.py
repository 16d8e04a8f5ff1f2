"""Options shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from migrate.stackconfig import StackConfig


def stack_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--state-dir and the port overrides, turned into one `config: StackConfig` argument."""
    options = [
        click.option("--state-dir", type=click.Path(path_type=Path), default=None,
                     help="Where the stack keeps data, logs and pids (default ./.dualrun or $DUALRUN_HOME)."),
        click.option("--mariadb-port", type=int, default=None, help="MariaDB port (3306)."),
        click.option("--kafka-port", type=int, default=None, help="Kafka broker port (9092)."),
        click.option("--controller-port", type=int, default=None, help="KRaft controller port (9093)."),
        click.option("--connect-port", type=int, default=None, help="Kafka Connect REST port (8083)."),
        click.option("--postgres-port", type=int, default=None, help="PostgreSQL port (5432)."),
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
