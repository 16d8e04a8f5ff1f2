"""The `dualrun reconcile` contract: arguments, JSON keys, exit codes 0/1/2, one-line errors."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from migrate.cli import cli

CONTRACT = {
    "verdict", "left_rows", "right_rows", "only_in_left", "only_in_right",
    "duplicate_keys_left", "duplicate_keys_right", "mismatched_rows", "columns",
}  # fmt: skip


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str, str]:
    left = pa.table({"id": [1, 2, 3, 4], "amount": [D("1.00"), D("2.00"), D("3.00"), D("4.00")],
                     "name": ["a", "b", "c", "d"]})  # fmt: skip
    right = pa.table({"id": [1, 2, 3, 5], "amount": [D("1.00"), D("2.01"), D("3.50"), D("5.00")],
                      "name": ["a", "b", "c", "e"]})  # fmt: skip
    paths = []
    for name, data in (("batch.parquet", left), ("stream.parquet", right), ("same.parquet", left)):
        pq.write_table(data, tmp_path / name)
        paths.append(str(tmp_path / name))
    return paths[0], paths[1], paths[2]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["reconcile", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_clean_pair_exits_0(pair: tuple[str, str, str]) -> None:
    code, out, _ = invoke(pair[0], pair[2], "--key", "id")
    assert code == 0 and "CLEAN" in out


def test_json_contract_and_exit_1(pair: tuple[str, str, str]) -> None:
    code, out, _ = invoke(pair[0], pair[1], "--key", "id", "--tolerance", "amount=abs:0.01",
                          "--format", "json")  # fmt: skip
    data = json.loads(out)
    assert code == 1 and set(data) >= CONTRACT
    assert (data["verdict"], data["left_rows"], data["right_rows"]) == ("differences", 4, 4)
    assert (data["only_in_left"], data["only_in_right"], data["mismatched_rows"]) == (1, 1, 1)
    assert (data["duplicate_keys_left"], data["duplicate_keys_right"]) == (0, 0)
    assert data["columns"]["amount"]["mismatches"] == 1
    assert data["columns"]["amount"]["within_tolerance"] == 1
    assert data["columns"]["name"] == data["columns"]["name"] | {"mismatches": 0}


def test_output_file_markdown_and_history(pair: tuple[str, str, str], tmp_path: Path) -> None:
    report, db = tmp_path / "r.md", tmp_path / "h.duckdb"
    code, out, err = invoke(
        pair[0], pair[2], "--key", "id", "--format", "markdown",
        "--output", str(report), "--history", str(db), "--name", "orders",
    )  # fmt: skip
    assert code == 0 and out == ""
    assert report.read_text().startswith("## Reconciliation: CLEAN")
    # Without --as-of nothing ties two runs to one source state: each counts on its own, no streak claimed.
    assert "no --as-of position, so each run counts on its own (no parity streak claimed)" in err
    assert "clean batch runs" not in err and "parity streak 1" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key", "nope"], "key column 'nope' not in the left side"),
        (["--key", "id", "--tolerance", "amount=abs:x"], "not a number"),
        (["--key", "id", "--tolerance", "amount"], "expected COL=VALUE"),
        (["--key", "id", "--tolerance", "name=abs:1"], "does not fit column 'name'"),
        (["--key", "id", "--ignore", 'we"ird col'], "exist on neither side"),
        (["--key", "id", "--coerce", "amount=DOUBLE; DROP"], "not a DuckDB type"),
        (["--key", "id", "--memory-limit", "lots"], "memory limit"),
    ],
)
def test_bad_options_exit_2_with_one_line(pair: tuple[str, str, str], args: list[str], message: str) -> None:
    code, out, err = invoke(pair[0], pair[1], *args)
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("left", "message"),
    [
        ("/nowhere/x.parquet", "does not exist"),
        ("mysql+pymysql://u:topsecret@127.0.0.1:1/db?table=t", "cannot read"),
        ("duckdb:/nowhere.db", "name the table"),
    ],
)
def test_bad_sources_exit_2(pair: tuple[str, str, str], left: str, message: str) -> None:
    code, _, err = invoke(left, pair[1], "--key", "id")
    assert code == 2 and message in err and "topsecret" not in err
    assert len(err.strip().splitlines()) == 1


def test_empty_stream_is_every_row_missing_and_require_rows_refuses(pair: tuple[str, str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(pair[0]).slice(0, 0), empty)
    code, out, _ = invoke(pair[0], str(empty), "--key", "id", "--format", "json")
    assert code == 1 and json.loads(out)["only_in_left"] == pq.read_table(pair[0]).num_rows > 0
    assert invoke(str(empty), str(empty), "--key", "id")[0] == 0
    code, _, err = invoke(pair[0], str(empty), "--key", "id", "--require-rows")
    assert code == 2 and "has no rows" in err


def test_naive_timezone_option_is_applied_and_printed(tmp_path: Path) -> None:
    import datetime as dt

    import pyarrow as pa

    wall = dt.datetime(2026, 7, 1, 12, 0)
    left, right = tmp_path / "l.parquet", tmp_path / "r.parquet"
    pq.write_table(pa.table({"id": [1], "ts": pa.array([wall], pa.timestamp("us"))}), left)
    aware = wall.replace(tzinfo=dt.timezone(dt.timedelta(hours=-4)))  # 12:00 in New York in July
    pq.write_table(pa.table({"id": [1], "ts": pa.array([aware], pa.timestamp("us", tz="UTC"))}), right)
    code, out, _ = invoke(str(left), str(right), "--key", "id")
    assert code == 1 and "read as UTC" in out
    code, out, _ = invoke(str(left), str(right), "--key", "id", "--naive-tz", "America/New_York")
    assert code == 0 and "read as America/New_York" in out
    code, _, err = invoke(str(left), str(right), "--key", "id", "--naive-tz", "Mars/Base")
    assert code == 2 and "unknown time zone" in err


def test_left_and_right_are_required_without_spec(pair: tuple[str, str, str]) -> None:
    code, _, err = invoke(pair[0])
    assert code == 2 and "give LEFT and RIGHT" in err
    code, _, err = invoke(pair[0], pair[1])
    assert code == 2 and "--key" in err


def test_without_left_right_or_spec_the_default_spec_is_reconciled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """./dualrun.yaml is read, as checklist and batch check read it (here: broken, so it is named)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dualrun.yaml").write_text("name: [\n")
    code, _, err = invoke()
    assert code == 2 and "dualrun.yaml: not valid YAML" in err, err
    code, _, err = invoke("--key", "id")  # an option of the LEFT/RIGHT form: that form, not the spec
    assert code == 2 and "give LEFT and RIGHT" in err, err


def test_as_of_reads_the_right_side_as_a_changelog(tmp_path: Path) -> None:
    batch = tmp_path / "b.parquet"
    log = tmp_path / "log.parquet"
    pq.write_table(pa.table({"id": [1], "v": ["a1"]}), batch)
    pq.write_table(pa.table({"id": [1, 1], "v": ["a1", "a2"], "__op": ["c", "u"],
                             "__gtid": ["0-1-9", "0-1-10"]}), log)  # fmt: skip
    code, out, _ = invoke(str(batch), str(log), "--key", "id", "--as-of", "0-1-9", "--format", "json")
    assert code == 0 and json.loads(out)["right"]["position"] == "0-1-9"
    code, _, _ = invoke(str(batch), str(log), "--key", "id", "--as-of", "0-1-10")
    assert code == 1
    code, _, err = invoke(str(batch), str(log), "--key", "id", "--as-of", "yesterday")
    assert code == 2 and "unrecognised source position" in err


def test_runs_at_one_as_of_position_count_once_in_the_streak(tmp_path: Path) -> None:
    """Re-running a comparison at one source position is one piece of evidence, not one per run."""
    db, log = tmp_path / "h.duckdb", tmp_path / "log.parquet"
    pq.write_table(pa.table({"id": [1, 1], "v": ["a1", "a2"], "__op": ["c", "u"],
                             "__gtid": ["0-1-9", "0-1-10"]}), log)  # fmt: skip
    for position, value in [("0-1-9", "a1"), ("0-1-9", "a1"), ("0-1-10", "a2")]:
        batch = tmp_path / f"b-{value}.parquet"
        pq.write_table(pa.table({"id": [1], "v": [value]}), batch)
        code, _, err = invoke(
            str(batch), str(log), "--key", "id", "--as-of", position, "--history", str(db), "--name", "o"
        )
        assert code == 0 and "clean source positions in a row; runs at one --as-of position count once" in err
        streak = 2 if position == "0-1-10" else 1
        assert f"parity streak {streak} (" in err, err


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--key", "id"], "--key"), (["--tolerance", "a=abs:1"], "--tolerance"), (["--ignore", "a"], "--ignore"),
        (["--coerce", "a=INT"], "--coerce"), (["--rename", "a=b"], "--rename"), (["--require-rows"], "--require-rows"),
        (["--naive-tz", "UTC"], "--naive-tz"), (["--history", "h.db"], "--history"), (["--as-of", "0-1-1"], "--as-of"),
        (["--in-flight", "t=2024-01-01"], "--in-flight"), (["--baseline-left", "x"], "--baseline-left"),
        (["--baseline-right", "x"], "--baseline-right"), (["--memory-limit", "1GB"], "--memory-limit"),
    ],
)  # fmt: skip
def test_spec_refuses_left_right_options(tmp_path: Path, args: list[str], flag: str) -> None:
    # Checked before the spec is read: a given option is never silently dropped.
    code, _, err = invoke("--spec", str(tmp_path / "absent.yaml"), *args)
    assert code == 2 and f"{flag} does not apply with --spec" in err and ("instead" in err or "leave it out" in err)
    assert flag not in ("--key", "--history") or "instead" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--run", "3"], ["--wait", "5"]])
def test_run_and_wait_need_spec(pair: tuple[str, str, str], args: list[str]) -> None:
    code, _, err = invoke(pair[0], pair[2], "--key", "id", *args)
    assert code == 2 and f"{args[0]} applies only with --spec" in err


def test_unwritable_output_is_one_line_exit_2(pair: tuple[str, str, str], tmp_path: Path) -> None:
    from migrate.commands.output import emit_report

    code, _, err = invoke(pair[0], pair[2], "--key", "id", "--output", str(tmp_path / "no" / "r.txt"))
    assert code == 2 and "cannot write report to" in err and "Traceback" not in err
    with pytest.raises(
        Exception, match="cannot write report to"
    ):  # the --spec form and `batch check` write through it too
        emit_report("report", tmp_path / "no" / "r.txt", "clean")


def test_one_as_of_position_spelled_two_ways_counts_once(tmp_path: Path) -> None:
    """History records the position in its canonical spelling: the same source state written another
    way (domain order, spaces) is the same evidence, not a second clean run."""
    db, log, batch = tmp_path / "h.duckdb", tmp_path / "log.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table({"id": [1, 1], "v": ["a1", "a2"], "__op": ["c", "u"],
                             "__gtid": ["0-1-9", "0-1-10"]}), log)  # fmt: skip
    pq.write_table(pa.table({"id": [1], "v": ["a1"]}), batch)
    for position in ("0-1-9,1-1-4", "1-1-4, 0-1-9 "):
        code, _, err = invoke(
            str(batch), str(log), "--key", "id", "--as-of", position, "--history", str(db), "--name", "o"
        )
        assert code == 0 and "parity streak 1 (" in err, err
    code, out, _ = invoke(str(batch), str(log), "--key", "id", "--as-of", "1-1-4, 0-1-9", "--format", "json")
    assert code == 0 and json.loads(out)["right"]["position"] == "0-1-9,1-1-4"


def test_a_bad_as_of_is_a_one_line_usage_error_before_anything_is_read(tmp_path: Path) -> None:
    code, _, err = invoke(str(tmp_path / "absent.parquet"), str(tmp_path / "absent2.parquet"), "--key", "id",
                          "--as-of", "0-1-9,yesterday")  # fmt: skip
    assert code == 2 and err.strip().count("\n") == 0, err
    assert err.startswith("error: --as-of: unrecognised source position '0-1-9,yesterday'"), err
