"""Golden files for the human-readable reports; DUALRUN_REGEN_GOLDEN=1 rewrites them."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from comparators.report import FORMATS, render
from comparators.result import Reconciliation
from comparators.sources import FrameSource
from tests.unit.comparators.conftest import rec, table

GOLDEN = Path(__file__).parents[2] / "golden" / "comparators"
REGEN = os.environ.get("DUALRUN_REGEN_GOLDEN") == "1"

T = datetime(2024, 5, 1, 2, 0)


def _result() -> Reconciliation:
    batch = table(
        id=[1, 2, 3, 4, 5, 6, 6, 8],
        day=[date(2024, 5, 1)] * 4 + [date(2024, 5, 2)] * 4,
        amount=[D("10.00"), D("20.00"), D("30.00"), D("40.00"), D("50.00"), D("1"), D("1"),
                D("8")],
        customer=["Ann", "bob", "cy", "dee", "eve", "fay", "fay", "hal"],
        updated=[T] * 8,
        legacy_flag=[True] * 8,
    )  # fmt: skip
    stream = table(
        id=[1, 2, 3, 4, 5, 7, 8],
        day=[date(2024, 5, 1)] * 4 + [date(2024, 5, 2)] * 3,
        amount=[D("10.00"), D("20.01"), D("31.00"), None, D("50.00"), D("7"), D("8")],
        customer=["ann ", "bob", "cy", "dee", "Eve", "gus", "hal"],
        updated=["2024-05-01 02:00:00"] * 7,
        new_col=[1] * 7,
    )
    return rec(
        FrameSource(batch, "batch"),
        FrameSource(stream, "stream"),
        rules={"amount": "abs:0.01", "customer": "norm:trim,case"},
        partition="day",
        baseline_left=FrameSource(batch, "batch rerun"),
        name="orders",
    )


RESULT = _result()


@pytest.mark.parametrize(("fmt", "suffix"), [("text", "txt"), ("markdown", "md")])
def test_report_matches_golden(fmt: str, suffix: str) -> None:
    path = GOLDEN / f"report.{suffix}"
    rendered = render(RESULT, fmt)
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
    assert rendered == path.read_text(), f"{path} differs; rerun with DUALRUN_REGEN_GOLDEN=1"


def test_report_content_is_what_the_pair_contains() -> None:
    causes = RESULT.causes
    assert causes == {
        "missing_in_stream": 0, "missing_in_batch": 1, "duplicate_key": 1, "value_mismatch": 2,
        "schema_drift": 2, "type_mismatch": 1, "aggregate_mismatch": 2, "within_tolerance": 3,
        "in_flight": 0,
    }  # fmt: skip
    text = render(RESULT, "text")
    assert text.index("DIFFERENCES") < text.index("Causes") < text.index("Columns")
    assert text.index("Columns") < text.index("Samples") < text.index("Noise baseline")


def test_json_carries_the_cli_contract() -> None:
    data = json.loads(render(RESULT, "json"))
    for key in ("verdict", "left_rows", "right_rows", "only_in_left", "only_in_right",
                "duplicate_keys_left", "duplicate_keys_right", "mismatched_rows"):  # fmt: skip
        assert key in data
    assert data["columns"]["amount"]["mismatches"] == 2
    assert data["columns"]["amount"]["within_tolerance"] == 1
    assert data["baselines"]["batch vs batch rerun"]["verdict"] == "differences"  # its dup
    assert set(FORMATS) == {"text", "json", "markdown"}
