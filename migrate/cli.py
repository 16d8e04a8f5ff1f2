"""The `dualrun` command. Errors from every package are caught here, and only here."""

from __future__ import annotations

import sys
from typing import Any

import click

from cdc.errors import CdcError
from comparators.errors import ComparatorError
from migrate import __version__
from migrate.errors import DualrunError

USER_ERRORS = (DualrunError, CdcError, ComparatorError)


class DualrunGroup(click.Group):
    """A click group that turns expected failures into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            if debug:
                raise
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(getattr(exc, "exit_code", 2))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=DualrunGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dualrun")
@click.option("--debug", is_flag=True, help="Show tracebacks for expected errors.")
def cli(debug: bool) -> None:
    """Run a batch pipeline and its CDC streaming replacement side by side and decide the cutover."""


def _register() -> None:
    from migrate.commands import cdc, checklist, demo, reconcile, report, run, stack

    cli.add_command(stack.stack)
    cli.add_command(run.run)
    cli.add_command(demo.demo)
    cli.add_command(cdc.cdc)
    cli.add_command(reconcile.reconcile)
    cli.add_command(report.report)
    cli.add_command(checklist.checklist)


_register()


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(standalone_mode=True))


if __name__ == "__main__":
    main()
