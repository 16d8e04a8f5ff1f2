"""Where a command's report goes: a file named by --output, else stdout."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def emit_report(report: str, output: Path | None, verdict: str) -> None:
    """Write `report` to `output` (DualrunError, exit 2, when it cannot be written) or stdout."""
    from migrate.errors import DualrunError

    if output is None:
        sys.stdout.write(report)
        return
    try:
        output.write_text(report)
    except OSError as exc:
        # Not a SpecError: the CLI would prefix the spec file, blaming it for the path of --output.
        raise DualrunError(
            f"cannot write report to {output}: {exc.strerror}; give --output a file in an existing, writable folder"
        ) from exc
    click.echo(f"{verdict}: report written to {output}", err=True)
