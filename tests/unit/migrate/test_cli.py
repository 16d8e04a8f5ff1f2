"""The CLI's one place for user-facing errors: one line and the error's exit code, with --debug too."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_stack_up_refuses_secure_with_plaintext_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["stack", "up", "--state-dir", str(tmp_path), "--secure", "--plaintext"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and "mutually exclusive" in result.output
    assert not (tmp_path / "kafka").exists()  # refused before anything started


@pytest.mark.parametrize("command", ["tail", "status"])
def test_cdc_tail_and_status_take_the_spec(tmp_path: Path, command: str) -> None:
    """The spec is read (here: a missing file, exit 2 in one line naming it), not ignored."""
    missing = tmp_path / "pipeline.yaml"
    result = CliRunner().invoke(cli, ["cdc", command, "--spec", str(missing)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and str(missing) in result.output
    assert "--spec" in CliRunner().invoke(cli, ["cdc", command, "--help"]).output


def test_cdc_tail_help_names_the_exit_code_it_uses() -> None:
    from migrate.tail import MissingTopics

    text = " ".join(CliRunner().invoke(cli, ["cdc", "tail", "--help"]).output.split())
    assert f"exit {MissingTopics.exit_code} at once if none of the topics exists" in text
