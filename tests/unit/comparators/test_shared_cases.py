"""The six reconciliation cases from real users' reports (tests/unit/comparators/cases/,
vendored from the project's shared cases), run through the CLI as a user would, each
asserting the answer its EXPECTED.md gives. Their kinds are covered by test_semantics.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrate.cli import cli

CASES = Path(__file__).parent / "cases"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def case(tmp_path: Path) -> Any:
    def make(name: str) -> Path:
        where = tmp_path / name
        shutil.copytree(CASES / name, where)
        subprocess.run([sys.executable, "make_inputs.py"], cwd=where, check=True, capture_output=True)
        return where

    return make


def reconcile(where: Path, *args: str, tz: str | None = None) -> tuple[int, dict[str, Any], str]:
    """`dualrun reconcile ... --format json` in the case's folder: in its own process
    under host zone `tz`, else in this process (faster)."""
    if tz is None:
        cwd = os.getcwd()
        os.chdir(where)
        try:
            result = CliRunner().invoke(cli, ["reconcile", *args, "--format", "json"])
        finally:
            os.chdir(cwd)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        out = result.stdout
        return result.exit_code, json.loads(out) if out.strip() else {}, result.stderr
    env = {**os.environ, "TZ": tz, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-m", "migrate.cli", "reconcile", *args, "--format", "json"],
        cwd=where, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else {}, p.stderr


def test_06_one_cent_differences_are_within_abs_001_on_double_and_decimal(case: Any) -> None:
    where = case("06-float-abs-tolerance")
    for left, right in (("left.parquet", "right.parquet"), ("left.csv", "right.csv")):
        code, d, _ = reconcile(where, left, right, "--key", "id", "--tolerance", "amount=abs:0.01")
        assert (code, d["within_tolerance_rows"], d["mismatched_rows"]) == (0, 4, 0), left


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_08_naive_vs_aware_gives_the_same_verdict_in_every_host_zone(case: Any, tz: str) -> None:
    where = case("08-naive-vs-aware-timestamps")
    code, d, _ = reconcile(where, "left.parquet", "right_correct.parquet", "--key", "id", tz=tz)
    assert code == 0 and any("read as UTC" in n for n in d["notes"])
    code, d, _ = reconcile(where, "left.parquet", "right.parquet", "--key", "id", tz=tz)
    assert (code, d["mismatched_rows"]) == (1, 3)
    # The earlier hint's --coerce no longer depends on the host either.
    code, d, _ = reconcile(where, "left.parquet", "right.parquet", "--key", "id", "--coerce", "ts=TIMESTAMPTZ", tz=tz)
    assert (code, d["mismatched_rows"]) == (1, 3)


def test_08_skew_and_coercion_on_the_correct_stream_are_clean(case: Any) -> None:
    where = case("08-naive-vs-aware-timestamps")
    for extra in (["--tolerance", "ts=skew:1s"], ["--coerce", "ts=TIMESTAMPTZ"]):
        assert reconcile(where, "left.parquet", "right_correct.parquet", "--key", "id", *extra)[0] == 0


def test_11_lost_leading_zeros_are_never_clean(case: Any) -> None:
    where = case("11-leading-zero-ids")
    code, d, _ = reconcile(where, "left.csv", "right.csv", "--key", "acct")
    assert (code, d["only_in_left"], d["only_in_right"]) == (1, 2, 2)  # '00123' and '123' are different keys
    code, _, err = reconcile(
        where, "left.csv", "right.csv", "--key", "acct", "--coerce", "acct=BIGINT", "--coerce", "zip=BIGINT"
    )  # noqa: E501
    assert code == 2 and "'00123'" in err and "do not convert" in err and len(err.strip().splitlines()) == 1
    code, d, _ = reconcile(
        where, "left.csv", "right.csv", "--key", "acct", "--coerce", "acct=VARCHAR", "--coerce", "zip=VARCHAR"
    )  # noqa: E501
    assert code == 1


def test_11_a_numeric_coercion_of_a_value_column_says_it_converted_text(case: Any) -> None:
    where = case("11-leading-zero-ids")
    Path(where / "right.csv").write_text("acct,zip,amount\n00123,2134,10.00\n00456,90210,5.50\n")
    code, d, _ = reconcile(where, "left.csv", "right.csv", "--key", "acct", "--coerce", "zip=BIGINT")
    assert (code, d["mismatched_rows"]) == (1, 1)
    assert d["samples"][0]["values"]["zip"] == {"left": "02134", "right": 2134}
    assert any("--coerce zip=BIGINT loses information" in n and "'02134'" in n for n in d["notes"])


def test_14_an_empty_stream_is_every_row_missing_and_two_empty_sides_are_clean(case: Any) -> None:
    where = case("14-empty-side")
    code, d, _ = reconcile(where, "left.parquet", "right_empty.parquet", "--key", "id")
    assert (code, d["only_in_left"], d["verdict"]) == (1, 3, "differences")
    assert reconcile(where, "left_empty.parquet", "right_empty.parquet", "--key", "id")[0] == 0
    code, _, err = reconcile(where, "left_empty.parquet", "right_empty.parquet", "--key", "id", "--require-rows")
    assert code == 2 and "has no rows" in err


def test_16_a_bigint_key_is_never_matched_through_double(case: Any) -> None:
    where = case("16-bigint-key-vs-double")
    code, _, err = reconcile(where, "left.parquet", "right.parquet", "--key", "id")
    assert code == 2 and "--coerce id=" in err and len(err.strip().splitlines()) == 1
    code, d, _ = reconcile(where, "left.parquet", "right.parquet", "--key", "id", "--coerce", "id=BIGINT")
    assert (code, d["only_in_left"], d["only_in_right"]) == (1, 1, 1)
    assert d["duplicate_keys_left"] == d["duplicate_keys_right"] == 0
    missing = {s["cause"]: s["key"]["id"] for s in d["samples"]}
    assert missing == {"missing_in_stream": 2**53 + 1, "missing_in_batch": 2**53 + 2}


@pytest.mark.parametrize("coerce", [[], ["--coerce", "amount=DECIMAL(12,2)"]])
def test_20_undecoded_and_over_precise_decimal_text_are_differences_shown_raw(case: Any, coerce: list[str]) -> None:
    where = case("20-debezium-decimal-as-string")
    code, d, _ = reconcile(where, "left.parquet", "right.parquet", "--key", "id", *coerce)
    assert (code, d["mismatched_rows"]) == (1, 3)
    shown = {s["key"]["id"]: s["values"]["amount"] for s in d["samples"]}
    assert shown == {1: {"left": "10.25", "right": "BAE="}, 2: {"left": "5.00", "right": "AfQ="},
                     3: {"left": "12.51", "right": "12.505"}}  # fmt: skip
