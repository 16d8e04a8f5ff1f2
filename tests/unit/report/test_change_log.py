"""The change-log verification (`dualrun cdc verify`) in the run report: its own section in HTML and
Markdown with each cause, its samples and the connector setting that explains it; golden files
(DUALRUN_REGEN_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from cdc.position import Position
from comparators.report import render_run
from comparators.report.logcheck import ChangeLogCheck
from migrate.verify.model import CdcVerification, Finding, TableVerification
from tests.unit.report.builders import rich_report

GOLDEN = Path(__file__).parents[2] / "golden" / "report"
REGEN = os.environ.get("DUALRUN_REGEN_GOLDEN") == "1"


def verification() -> CdcVerification:
    """A verification with a decoding cause (and its setting), a table left out of the capture and
    a topic whose head retention removed; fixed ids and times."""
    decoding = Finding(
        "decoding", 2, "values differ because of how the connector encodes amount", "decimal.handling.mode=double",
        ("amount",), ({"key": ["7"], "amount (database)": "12345678901234.5678", "amount (log)": "12345678901234.568"},
                      {"key": ["9"], "amount (database)": "0.1000", "amount (log)": "0.1"}),
    )  # fmt: skip
    lost = Finding("lost_delete", 1, "rows alive in the log but deleted in the database", samples=({"key": ["3"]},))
    missing = Finding("not_captured", 40, "the connector does not capture shop.fees: none of its 40 rows can reach "
                      "the log", "table.include.list=shop.orders,shop.customers")  # fmt: skip
    tables = (
        TableVerification("shop.orders", "dbserver1.shop.orders", 120, 121, 117, (decoding, lost)),
        TableVerification("shop.customers", "dbserver1.shop.customers", 20, 12, 12, (), "since_offset", 310,
                          Position.binlog("mysql-bin.000002", 4), 8,
                          "the topic no longer reaches back (earliest offset 310): verified only the 12 keys changed "
                          "since"),
        TableVerification("shop.fees", "dbserver1.shop.fees", 40, 0, 0, (missing,)),
    )  # fmt: skip
    settings = {"topic.prefix": "dbserver1", "decimal.handling.mode": "double", "snapshot.mode": "initial",
                "table.include.list": "shop.orders,shop.customers"}  # fmt: skip
    return CdcVerification("shop-orders", "dualrun-shop", Position.binlog_snapshot("mysql-bin.000003", 1234, "0-1-140"),
                           "2024-05-04T02:05:00+00:00", 3.5, tables, settings)  # fmt: skip


REPORT = dataclasses.replace(rich_report(), change_log=ChangeLogCheck.from_dict(verification().to_dict()))


def _section(html: str) -> str:
    return html[html.index('<section id="change-log">') : html.index('<section id="charts">')].strip() + "\n"


@pytest.mark.parametrize(("fmt", "name"), [("html", "change_log.html"), ("markdown", "change_log.md")])
def test_the_change_log_section_matches_golden(fmt: str, name: str) -> None:
    rendered = render_run(REPORT, fmt)
    part = _section(rendered) if fmt == "html" else rendered[rendered.index("## Change log") :]
    part = part[: part.index("\nParity over")] + "\n" if fmt == "markdown" else part
    path = GOLDEN / name
    if REGEN:
        path.write_text(part)
    assert part == path.read_text(), f"{path} differs; rerun with DUALRUN_REGEN_GOLDEN=1"


def test_the_section_names_every_cause_with_its_setting_as_evidence() -> None:
    html = render_run(REPORT, "html")
    section = _section(html)
    body = html[html.index("<body>") :]
    assert body.index('id="checks"') < body.index('id="change-log"') < body.index('id="charts"')
    assert '<span class="chip differences">differences</span>' in section.splitlines()[1]
    for cause in ("decoding", "lost_delete", "not_captured"):
        assert f"<b>{cause}</b>" in section
    assert "decimal.handling.mode=double" in section and "table.include.list=shop.orders,shop.customers" in section
    # The settings a cause names are highlighted in the connector settings list; others are not.
    assert "<b>decimal.handling.mode</b>" in section and "<b>table.include.list</b>" in section
    assert "<b>snapshot.mode</b>" not in section and "snapshot.mode" in section
    assert "key 7: amount (database)=12345678901234.5678, amount (log)=12345678901234.568" in section
    assert "the topic no longer reaches back" in section and "mysql-bin.000003:1234 (gtid 0-1-140)" in section


def test_data_in_the_section_is_escaped() -> None:
    hostile = verification().to_dict()
    hostile["tables"][0]["findings"][1]["samples"] = [{"key": ["<script>alert(1)</script>"]}]
    html = render_run(dataclasses.replace(REPORT, change_log=ChangeLogCheck.from_dict(hostile)), "html")
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_without_a_verification_there_is_no_section_and_json_carries_it_when_there_is() -> None:
    assert 'id="change-log"' not in render_run(rich_report(), "html")
    assert "Change log" not in render_run(rich_report(), "markdown")
    data = json.loads(render_run(REPORT, "json"))
    assert data["change_log"]["verdict"] == "differences"
    assert data["change_log"]["tables"][0]["findings"][0]["setting"] == "decimal.handling.mode=double"


def test_an_unevaluated_verification_says_why() -> None:
    result = dataclasses.replace(verification(), unevaluated="connector dualrun-shop's committed offset did not "
                                 "reach the snapshot position within 60s")  # fmt: skip
    section = _section(render_run(dataclasses.replace(REPORT, change_log=ChangeLogCheck.from_dict(result.to_dict())),
                                  "html"))  # fmt: skip
    assert "<b>Not evaluated:</b> connector dualrun-shop&#39;s committed offset did not reach" in section
    assert '<span class="chip unevaluated">unevaluated</span>' in section


def test_the_report_of_a_spec_carries_its_latest_recorded_verification(tmp_path: Path) -> None:
    from migrate.reporting import build_report
    from migrate.verify import history as verify_history
    from tests.unit.report.builders import build_history, local_spec

    spec = local_spec(tmp_path)
    build_history(spec.history_path, "CD")
    assert build_report(spec, histories=False).change_log is None
    older = dataclasses.replace(verification(), tables=(), verified_at="2024-05-03T02:05:00+00:00")
    verify_history.record(spec.history_path, older)
    verify_history.record(spec.history_path, verification())
    report = build_report(spec, histories=False)
    assert report.change_log is not None and report.change_log.verdict == "differences"
    assert [t.table for t in report.change_log.tables] == ["shop.orders", "shop.customers", "shop.fees"]
    assert 'id="change-log"' in render_run(report, "html")


def test_a_report_showing_a_log_that_differs_is_never_clean() -> None:
    """A run whose outputs agree (e.g. a batch side rebuilt from that same log) is not CLEAN while the
    report's change-log check says the log differs from the database (a trial saw CLEAN there)."""
    clean_outputs = dataclasses.replace(REPORT, outputs=tuple(o for o in REPORT.outputs if not o.result.unexplained))
    assert clean_outputs.unexplained == 0 and clean_outputs.log_differs
    assert (clean_outputs.verdict, clean_outputs.exit_code) == ("differences", 1)
    markdown = render_run(clean_outputs, "markdown")
    assert markdown.splitlines()[0].endswith("❌ DIFFERENCES: the change log differs from the database (see below)")
    assert "DIFFERENCES: the change log differs from the database</h1>" in render_run(clean_outputs, "html")
    assert json.loads(render_run(clean_outputs, "json"))["verdict"] == "differences"
    fine = dataclasses.replace(clean_outputs, change_log=dataclasses.replace(REPORT.change_log, verdict="clean"))
    assert fine.verdict == "clean" and fine.exit_code == (1 if fine.checks_verdict == "NO-GO" else 0)
