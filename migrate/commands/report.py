"""`dualrun report`: a run of the pipeline from the history, as HTML, Markdown, JSON or JUnit."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from migrate.commands.options import RUN_FORMATS, spec_option, state_option
from migrate.errors import DualrunError


@click.command()
@spec_option
@state_option
@click.option("--run", "run_id", default="latest", show_default=True, metavar="ID|latest",
              help="Which run: 'latest' or the history id of any of its outputs.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(RUN_FORMATS), default="html", show_default=True)
@click.option("--output", type=click.Path(path_type=Path), metavar="FILE",
              help="Where to write it (default: <state_dir>/report.html for HTML, stdout otherwise).")  # fmt: skip
@click.option("--history", "history_path", type=click.Path(path_type=Path), metavar="DB",
              help="A run-history database other than the spec's.")  # fmt: skip
@click.option("--checklist/--no-checklist", "with_checklist", default=False,
              help="Also evaluate the cutover checklist (live systems) and include it.")  # fmt: skip
@click.option("--source/--no-source", "with_source", default=False,
              help="Add each sampled key's current source row to its change history (queries the source).")  # fmt: skip
def report(spec_path: Path | None, state_dir: Path | None, run_id: str, fmt: str, output: Path | None,
           history_path: Path | None, with_checklist: bool, with_source: bool) -> None:  # fmt: skip
    """Render a recorded run: verdict, differences by cause, partitions, samples with key histories, trend.

    Exit 0 when the run was clean (and the checklist, if included, says GO), 1 otherwise.
    """
    from comparators.report import render_run
    from migrate.commands.run import spec_for
    from migrate.reporting import build_report

    spec = spec_for(spec_path, state_dir)
    checks = None
    if with_checklist:
        from migrate.checklist import evaluate

        checks = evaluate(spec)
    result = build_report(spec, run_id, history_path=history_path, checks=checks, source=with_source)
    text = render_run(result, fmt)
    if output is None and fmt == "html":
        output = spec.path("report.html")
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text)
        except OSError as exc:
            raise DualrunError(f"cannot write the report to {output}: {exc.strerror}") from exc
        what = f"{fmt} report of {result.title} run {result.run_id}"
        click.echo(f"{result.verdict}: {what} written to {output}", err=True)
    click.get_current_context().exit(result.exit_code)
