"""`dualrun checklist`: the cutover checks, a GO/NO-GO verdict, exit 0 / 1 / 2."""

from __future__ import annotations

from pathlib import Path

import click

from migrate.commands.options import CHECK_NAMES, spec_option, state_option


@click.command()
@spec_option
@state_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--check", "only", multiple=True, metavar="NAME",
              help=f"Evaluate only this check (repeatable): {', '.join(CHECK_NAMES)}.")  # fmt: skip
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for Connect or Kafka per request.")
def checklist(spec_path: Path | None, state_dir: Path | None, fmt: str, only: tuple[str, ...], timeout: float) -> None:
    """Evaluate the cutover checks against the live systems and the run history.

    Exit 0 GO, 1 NO-GO, 2 when a check could not reach its system (the output says which).
    """
    from rich.console import Console

    from migrate import render
    from migrate.checklist import evaluate, select
    from migrate.commands.run import spec_for

    spec = spec_for(spec_path, state_dir)
    result = evaluate(spec, select(only), timeout=timeout)
    if fmt == "json":
        click.echo(render.to_json(result.to_dict()))
    else:
        render.checklist(result, Console())
    click.get_current_context().exit(result.exit_code)
