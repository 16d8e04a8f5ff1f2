"""`dualrun history`: what the run history holds, so a run id can be handed to `dualrun report --run`."""

from __future__ import annotations

from pathlib import Path

import click

from migrate.commands.options import spec_option, state_option


@click.group()
def history() -> None:
    """The run history of a spec (its compare.history database)."""


@history.command("list")
@spec_option
@state_option
@click.option("--output", default=None, help="Only the runs of this output of the spec.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many runs.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_runs(spec_path: Path | None, state_dir: Path | None, output: str | None, limit: int, fmt: str) -> None:
    """The recorded runs, newest first: run id, when, the batch run it judged, verdict, unexplained
    rows and comparison.
    Exit 0 (an empty history too), 2 for an unknown --output or an unreadable spec."""
    from rich.console import Console

    from comparators.history import runs
    from migrate import render
    from migrate.commands.run import spec_for
    from migrate.errors import SpecError

    spec = spec_for(spec_path, state_dir)
    if output is not None and output not in spec.outputs:
        raise SpecError(f"--output {output}: the spec has no such output; its outputs are {', '.join(spec.outputs)}")
    path = spec.history_path
    found = runs(path, f"{spec.name}/{output}" if output else None, limit) if path.exists() else []
    if fmt == "json":
        click.echo(render.to_json([r.to_dict() for r in found]))
    else:
        render.history_runs(found, path, Console())
