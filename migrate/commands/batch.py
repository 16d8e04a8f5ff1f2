"""`dualrun batch mark --begin | --end` and `dualrun batch check`: an external batch job bracketed by
source positions (`migrate.bracket`)."""

from __future__ import annotations

from pathlib import Path

import click

from migrate.commands.options import spec_option, state_option
from migrate.commands.output import emit_report


@click.group()
def batch() -> None:
    """Bracket your own batch job by source positions and compare its outputs key by key."""


@batch.command()
@spec_option
@state_option
@click.option("--begin", "which", flag_value="begin", help="Before the job starts: record the source position.")
@click.option("--end", "which", flag_value="end", help="After the job ended: record the position, import outputs.")
@click.option("--abandon", is_flag=True, help="With --begin: discard a bracket still open (its job never ended).")
@click.option("--json", "as_json", is_flag=True)
def mark(spec_path: Path | None, state_dir: Path | None, which: str | None, abandon: bool, as_json: bool) -> None:
    """Record the source position before (--begin) or after (--end) your batch job.

    A second --begin while a bracket is open is refused (exit 2): --end it, or --begin --abandon.
    --end refuses an output file written before the begin mark (a previous run's output, exit 2).
    """
    from migrate import render
    from migrate.commands.run import spec_for
    from migrate.errors import DualrunError
    from migrate.marks import mark_begin, mark_end, open_mark

    if which is None:
        raise DualrunError("batch mark: give --begin (before your job starts) or --end (after it ended)")
    if abandon and which != "begin":
        raise DualrunError("batch mark: --abandon goes with --begin (it discards an open bracket and begins anew)")
    spec = spec_for(spec_path, state_dir)
    if which == "begin":
        discarded = open_mark(spec) if abandon else None
        begun = mark_begin(spec, abandon=abandon)
        if discarded is not None:
            click.echo(f"discarded the open bracket begun at {discarded.at.isoformat(timespec='seconds')} "
                       f"(position {discarded.position})", err=True)  # fmt: skip
        click.echo(render.as_json(begun) if as_json else f"bracket begun at {begun.position}")
        return
    run, bracket = mark_end(spec)
    click.echo(render.as_json(bracket) if as_json else render.bracketed_run(run, bracket, str(spec.warehouse_path)))


@batch.command()
@spec_option
@state_option
@click.option("--run", "run_id", default="latest", show_default=True, help="The bracketed batch run to check.")
@click.option("--wait", type=float, help="Seconds to wait for the stream to pass the end mark.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--output", type=click.Path(path_type=Path), metavar="FILE", help="Write the report here, not to stdout.")
def check(
    spec_path: Path | None, state_dir: Path | None, run_id: str, wait: float | None, as_json: bool, output: Path | None
) -> None:
    """Decide every key of a bracketed batch run: exact outside the window, tested inside it.

    Exit 0 clean, 1 defects or the stream not past the end mark yet (as `reconcile --spec`), 2 on config errors.
    """
    from migrate import render
    from migrate.bracket import check_bracket
    from migrate.commands.run import spec_for

    result = check_bracket(spec_for(spec_path, state_dir), run_id, wait=wait)
    emit_report(render.as_json(result) + "\n" if as_json else render.bracket_check(result), output, result.verdict)
    click.get_current_context().exit(result.exit_code)
