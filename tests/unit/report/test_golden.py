"""Golden files for the run report's Markdown and JUnit; DUALRUN_REGEN_GOLDEN=1 rewrites them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from comparators.report import render_run
from tests.unit.report.builders import rich_report

GOLDEN = Path(__file__).parents[2] / "golden" / "report"
REGEN = os.environ.get("DUALRUN_REGEN_GOLDEN") == "1"
REPORT = rich_report()


@pytest.mark.parametrize(("fmt", "name"), [("markdown", "run.md"), ("junit", "run.junit.xml")])
def test_run_report_matches_golden(fmt: str, name: str) -> None:
    path = GOLDEN / name
    rendered = render_run(REPORT, fmt)
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
    assert rendered == path.read_text(), f"{path} differs; rerun with DUALRUN_REGEN_GOLDEN=1"


def test_junit_has_a_case_per_output_and_check_and_failures_carry_cause_counts() -> None:
    root = ET.fromstring(render_run(REPORT, "junit"))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"orders_enriched", "daily_revenue", "connector_running", "consumer_lag", "replication",
                          "noise_baseline"}  # fmt: skip
    failure = cases["orders_enriched"].find("failure")
    assert failure is not None
    assert "missing_in_stream 1" in failure.get("message", "") and "value_mismatch 2" in failure.get("message", "")
    assert cases["consumer_lag"].find("failure") is not None
    assert cases["connector_running"].find("failure") is None
    assert cases["noise_baseline"].find("skipped") is not None
    assert root.get("tests") == "6" and root.get("failures") == "3" and root.get("skipped") == "1"


def test_markdown_leads_with_the_verdict_and_folds_the_detail() -> None:
    text = render_run(REPORT, "markdown")
    first = text.splitlines()[0]
    assert "DIFFERENCES: 7 unexplained" in first
    assert text.index("| output |") < text.index("Cutover checklist") < text.index("<details>")
    assert text.count("<details>") == text.count("</details>") == 2


def test_json_is_the_reports_to_dict() -> None:
    data = json.loads(render_run(REPORT, "json"))
    assert data["verdict"] == "differences" and data["unexplained"] == 7
    assert data["outputs"]["orders_enriched"]["result"]["causes"]["missing_in_stream"] == 1
    assert data["checks"]["verdict"] == "NO-GO" and len(data["checks"]["checks"]) == 4
    assert data["key_histories"][0]["events"][0]["values"]["amount"] == "200.25"  # exact, as a string
