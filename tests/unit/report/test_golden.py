"""Golden files for the run report's Markdown and JUnit; DUALRUN_REGEN_GOLDEN=1 rewrites them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from comparators.report import render_run
from tests.unit.report.builders import rich_report, sink_report

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


@pytest.mark.parametrize(("fmt", "name"), [("markdown", "run-sink.md"), ("junit", "run-sink.junit.xml")])
def test_run_report_with_a_sink_side_matches_golden(fmt: str, name: str) -> None:
    path = GOLDEN / name
    rendered = render_run(sink_report(), fmt)
    if REGEN:
        path.write_text(rendered)
    assert rendered == path.read_text(), f"{path} differs; rerun with DUALRUN_REGEN_GOLDEN=1"


def test_the_sink_side_is_a_row_of_its_own_with_its_counts_and_causes_named_for_the_sink() -> None:
    text = render_run(sink_report(), "markdown")
    assert "| output | verdict | batch rows | stream rows | sink rows | unexplained | causes |" in text
    assert "| `orders_enriched@sink` | differences | – | 12 | 13 | 2 | only in sink 1, value mismatch 1 |" in text
    assert "| `orders_enriched` | differences | 12 | 11 | – | 5 |" in text
    assert "| right (sink) | 13 |" in text and "- **only_in_sink** order_id=99" in text
    assert text.splitlines()[0].endswith("DIFFERENCES: 9 unexplained")  # the sink's 2 count in the run's verdict
    data = json.loads(render_run(sink_report(), "json"))
    assert data["outputs"]["orders_enriched@sink"]["result"]["verdict"] == "differences"


def test_html_shows_the_sink_side_with_its_own_column_and_side_names() -> None:
    html = render_run(sink_report(), "html")
    assert '<th class="n">sink rows</th>' in html and 'id="output-orders_enriched@sink"' in html
    section = html[html.index('id="output-orders_enriched@sink"') :]
    assert '<td class="left">stream</td>' in section and '<td class="right">sink</td>' in section
    assert "only in sink" in section and "missing in stream" not in section
