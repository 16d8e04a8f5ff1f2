"""Where a report goes: an unwritable --output is the path's fault, never the spec's."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.cli import in_spec_file
from migrate.commands.output import emit_report
from migrate.errors import DualrunError
from migrate.spec.load import LOADED


def test_an_unwritable_output_names_the_path_and_not_the_spec(tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "x.txt"
    token = LOADED.set(tmp_path / "dualrun.yaml")  # a command that loaded a spec, as batch check does
    try:
        with pytest.raises(DualrunError) as caught:
            emit_report("report", target, "clean")
        line = in_spec_file(caught.value)
    finally:
        LOADED.reset(token)
    assert line == (
        f"cannot write report to {target}: No such file or directory; "
        "give --output a file in an existing, writable folder"
    )
