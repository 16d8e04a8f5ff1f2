"""Where a command's report goes: a file named by --output, else stdout."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def emit_report(report: str, output: Path | None, verdict: str) -> None:
    """Write `report` to `output` (SpecError, exit 2, when it cannot be written) or stdout."""
    from comparators.errors import SpecError

    if output is None:
        sys.stdout.write(report)
        return
    try:
        output.write_text(report)
    except OSError as exc:
        raise SpecError(f"cannot write report to {output}: {exc.strerror}") from exc
    click.echo(f"{verdict}: report written to {output}", err=True)
