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


def test_an_unset_env_variable_of_the_spec_names_the_spec_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import yaml

    from migrate.spec.load import example_spec_path

    example = example_spec_path()
    shutil.copytree(example.parent / "sql", tmp_path / "sql")
    raw = yaml.safe_load(example.read_text())
    raw.pop("local", None)
    raw["kafka"]["properties"] = {"sasl.username": "dualrun", "sasl.password_env": "DUALRUN_TEST_NEVER_SET"}
    monkeypatch.delenv("DUALRUN_TEST_NEVER_SET", raising=False)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    for key, value in ((raw["source"], "DUALRUN_TEST_SOURCE"), (raw["cdc"], "DUALRUN_TEST_CDC")):
        monkeypatch.setenv(value, "x")
        key["password_env"] = value
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(cli, ["cdc", "tail", "--spec", str(path), "--max-events", "1"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.count("\n") == 0, line
    assert line.startswith(f"error: {path}: kafka.properties.sasl.password_env:"), line
    assert "DUALRUN_TEST_NEVER_SET is not set; export it" in line


def test_a_comparison_spec_error_after_loading_names_the_spec_file(tmp_path: Path) -> None:
    """A tolerance on a column the output lacks is found when comparing, long after loading."""
    from comparators.errors import SpecError as CompareSpecError
    from migrate.cli import in_spec_file
    from migrate.errors import StackError
    from migrate.spec.load import LOADED

    error = CompareSpecError("ruled column(s) ['amout'] exist on neither side; check the names")
    token = LOADED.set(tmp_path / "pipeline.yaml")
    try:
        assert in_spec_file(error) == f"{tmp_path / 'pipeline.yaml'}: {error}"
        assert in_spec_file(StackError("port 9092 is taken")) == "port 9092 is taken"  # not a spec error
    finally:
        LOADED.reset(token)
    assert in_spec_file(error) == str(error)  # no spec loaded: nothing to name


def _example_with(tmp_path: Path, section: str, key: str, value: object, local: bool = True) -> Path:
    """The example spec (with its SQL files) in `tmp_path`, `section.key` set to `value`."""
    import shutil

    import yaml

    from migrate.spec.load import example_spec_path

    example = example_spec_path()
    shutil.copytree(example.parent / "sql", tmp_path / "sql")
    data = yaml.safe_load(example.read_text())
    data[section][key] = value
    data["local"] = local
    spec = tmp_path / "dualrun.yaml"
    spec.write_text(yaml.safe_dump(data))
    return spec


@pytest.mark.parametrize("local", [True, False])
def test_a_source_url_that_is_no_url_names_the_field_in_one_line(tmp_path: Path, local: bool) -> None:
    spec = _example_with(tmp_path, "source", "url", "notaurl", local=local)
    result = CliRunner().invoke(cli, ["batch", "mark", "--begin", "--spec", str(spec)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0, result.output
    assert "source.url: 'notaurl' is not a SQLAlchemy URL" in result.output and "Traceback" not in result.output


def test_a_connect_url_that_is_not_http_names_the_field_in_one_line(tmp_path: Path) -> None:
    spec = _example_with(tmp_path, "cdc", "connect_url", "htp:/127.0.0.1:8083", local=False)
    result = CliRunner().invoke(cli, ["cdc", "status", "--spec", str(spec)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0, result.output
    assert "cdc.connect_url: 'htp:/127.0.0.1:8083' is not an http(s) URL" in result.output


def test_a_connect_url_option_that_is_no_url_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["cdc", "status", "--connect-url", "notaurl"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--connect-url': 'notaurl' is not an http(s) URL" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("url", ["htp://ops:hunter2@connect:8083", "http://ops:hun@ter2@connect:80x3"])
def test_a_connect_url_option_with_a_password_never_shows_it(url: str) -> None:
    result = CliRunner().invoke(cli, ["cdc", "status", "--connect-url", url])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--connect-url': " in result.output and ":********@connect" in result.output
    assert "hunter2" not in result.output and "ter2" not in result.output, result.output


def test_a_sink_url_with_a_port_that_is_no_number_names_the_field() -> None:
    from migrate.spec import OutputSinkSpec

    with pytest.raises(ValueError, match="is not a SQLAlchemy URL"):
        OutputSinkSpec(url="postgresql+psycopg://u@h:port/db", table="t")
