"""The `dualrun` command. Errors from every package are caught here, and only here.

Start-up stays light: this module and every command module import click and a few small
modules of ours; each command imports what it runs (pandas, pyarrow, DuckDB, SQLAlchemy,
confluent-kafka, ...) when it runs. tests/unit/test_cli_imports.py holds every `--help` to that.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from migrate import __version__

# The root error of each package: expected failures, shown as one line with their exit code.
# Named, not imported: importing comparators.errors would load the whole comparators package.
USER_ERRORS = (
    ("migrate.errors", "DualrunError"),
    ("cdc.errors", "CdcError"),
    ("comparators.errors", "ComparatorError"),
)


def user_error(exc: BaseException) -> bool:
    """True for an expected failure of any package (an error class that was never imported cannot be raised)."""
    for module, name in USER_ERRORS:
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(exc, getattr(loaded, name)):
            return True
    return False


def in_spec_file(exc: BaseException) -> str:
    """The error's one line, naming the spec file the command loaded when it is a spec error that
    does not name it yet (raised after loading, it knows only its key path)."""
    text = str(exc)
    loaded = sys.modules.get("migrate.spec.load")
    path = loaded.LOADED.get() if loaded is not None else None
    if path is None or str(path) in text or not any(c.__name__ == "SpecError" for c in type(exc).__mro__):
        return text
    return f"{path}: {text}"


class DualrunGroup(click.Group):
    """A click group that turns expected failures into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not user_error(exc):
                raise
            if debug:  # the traceback, but the same exit code: 1 would read as NO-GO / differences
                traceback.print_exc()
            click.secho(f"error: {in_spec_file(exc)}", fg="red", err=True)
            if debug:  # every problem of an invalid spec, not only the first
                for problem in getattr(exc, "problems", []):
                    click.echo(f"  - {problem}", err=True)
            ctx.exit(getattr(exc, "exit_code", 2))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        finally:
            loaded = sys.modules.get("migrate.spec.load")
            if loaded is not None:  # the next invocation in this process (tests) may load another spec
                loaded.LOADED.set(None)


@click.group(cls=DualrunGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dualrun")
@click.option("--debug", is_flag=True, help="Show tracebacks for expected errors.")
def cli(debug: bool) -> None:
    """Run a batch pipeline and its CDC streaming replacement side by side and decide the cutover."""


COMMANDS = (
    "stack",
    "run",
    "batch",
    "demo",
    "cdc",
    "reconcile",
    "report",
    "checklist",
    "history",
)  # module = command name


def _register() -> None:
    for name in COMMANDS:
        cli.add_command(getattr(importlib.import_module(f"migrate.commands.{name}"), name))


_register()


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(standalone_mode=True))


if __name__ == "__main__":
    main()
