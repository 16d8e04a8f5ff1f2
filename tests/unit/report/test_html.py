"""The HTML report's content: verdict first, every section, drill-down, no network, data escaped."""

from __future__ import annotations

import dataclasses
import re

from comparators.report import render_run
from comparators.report.model import KeyEvent, KeyHistory
from tests.unit.report.builders import rich_report

REPORT = rich_report()
HTML = render_run(REPORT, "html")


def test_verdict_comes_first_then_outputs_checks_charts_and_details() -> None:
    body = HTML[HTML.index("<body>") :]
    order = [body.index(marker) for marker in (
        "DIFFERENCES: 7 unexplained", 'id="summary"', 'id="checks"', 'id="charts"',
        'id="output-orders_enriched"', 'id="output-daily_revenue"',
    )]  # fmt: skip
    assert order == sorted(order)


def test_every_chart_is_inline_svg_with_ids_that_do_not_collide() -> None:
    charts = re.findall(r'<svg data-chart="([a-z]+)"', HTML)
    assert charts == ["causes", "columns", "parity", "lag"]
    ids = re.findall(r'\bid="([^"]+)"', HTML)
    assert len(ids) == len(set(ids)), "duplicate element ids across charts"
    assert "no data" not in HTML  # every chart had data here


def test_nothing_is_fetched_from_anywhere() -> None:
    assert "<script" not in HTML and "<link" not in HTML and "@import" not in HTML
    assert not re.search(r'\b(src|href)="(?!#)', HTML), "only in-document references are allowed"
    assert "url(http" not in HTML


def test_partitions_samples_with_both_values_and_the_key_drill_down() -> None:
    section = HTML[HTML.index('id="output-orders_enriched"') : HTML.index('id="output-daily_revenue"')]
    assert "Partitions by <code>order_day</code>: 2 of 2 differ" in section
    assert "2024-04-29" in section and "2024-04-30" in section
    # order 7's amount on both sides, and order 10 missing from the stream
    assert re.search(r"280\.25</td><td class=\"mono right\">560\.50", section)
    assert "order_id=10" in section and "(no row)" in section
    drill = section[section.index("order_id=5") :]
    drill = drill[: drill.index("</details>")]
    assert "<details" in drill and "batch run 20240504T020000-a1b2c3 @ 0-1-130" in drill
    assert drill.count("<tr><td>stream</td>") == 2 and "<tr><td>source</td>" in drill
    assert "no change history was gathered" in section  # order 7 had none passed in


def test_noise_baseline_and_checks_are_shown() -> None:
    assert HTML.count("batch vs batch rerun") == 2
    checks = HTML[HTML.index('id="checks"') : HTML.index('id="charts"')]
    for check in REPORT.checks:
        assert check.name in checks and f"chip {check.status}" in checks


def test_without_lag_series_or_trend_the_charts_say_no_data() -> None:
    bare = dataclasses.replace(REPORT, lag=None, trend=(), checks=(), checks_verdict=None)
    html = render_run(bare, "html")
    assert len(re.findall(r"<svg data-chart=", html)) == 4
    lag = html[html.index('data-chart="lag"') :]
    assert "no data" in html and 'id="checks"' not in html
    assert lag.index("</svg>") > 0


def test_values_from_the_data_are_escaped() -> None:
    hostile = KeyHistory("orders_enriched", (("order_id", 5),), (
        KeyEvent("stream", "<script>alert(1)</script>", "u", (("note", "<img src=x onerror=alert(1)>"),)),
    ))  # fmt: skip
    html = render_run(dataclasses.replace(REPORT, key_histories=(hostile,), title="a<b"), "html")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "a&lt;b" in html
