"""The CLI's one place for user-facing errors: one line and the error's exit code, with --debug too."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from migrate.cli import cli


def test_a_config_error_exits_2_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["checklist", "--spec", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "does not exist" in result.output


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path: Path) -> None:
    """Exit 1 means NO-GO or differences: a config error under --debug must not read as one."""
    result = CliRunner().invoke(cli, ["--debug", "checklist", "--spec", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2, result.output
    assert "Traceback (most recent call last)" in result.output and "does not exist" in result.output
