"""Markdown of a pipeline run, for pull requests and chat: verdict line, one table, details folded."""

from __future__ import annotations

from comparators.report._common import cause_title, row_counts
from comparators.report.markdown import _body, _cell, _table
from comparators.report.model import RunReport
from comparators.result import UNEXPLAINED_CAUSES

_STATUS_MARK = {"pass": "✅ pass", "fail": "❌ fail", "warn": "⚠️ warn", "skipped": "⏭️ skipped"}


def _verdict(report: RunReport) -> str:
    if report.verdict == "clean":
        return "✅ CLEAN: no unexplained differences"
    return f"❌ DIFFERENCES: {report.unexplained:,} unexplained"


def render_run_markdown(report: RunReport) -> str:
    """Headline, per-output summary, checks, trend, then each output's full detail in a fold."""
    out = [f"# dualrun · {report.title}: {_verdict(report)}", ""]
    facts = []
    if report.recorded_at:
        facts.append(f"run recorded {report.recorded_at:%Y-%m-%d %H:%M:%S} UTC")
    streak = f"parity streak **{report.parity_streak}**"
    if report.min_parity_streak:
        streak += f" of {report.min_parity_streak} required"
    facts.append(streak)
    if report.checks_verdict:
        facts.append(f"cutover checklist **{report.checks_verdict}**")
    out += [" · ".join(facts), ""]
    headers, counts = row_counts([o.name for o in report.outputs], [o.result for o in report.outputs])
    out += _table(
        ["output", "verdict", *headers, "unexplained", "causes"],
        [
            [f"`{o.output}`", o.result.verdict, *cells, f"{o.result.unexplained:,}",
             ", ".join(f"{cause_title(c, o.name).split(' (')[0]} {n:,}" for c, n in o.result.causes.items()
                       if n and c in UNEXPLAINED_CAUSES) or "none"]
            for o, cells in zip(report.outputs, counts, strict=True)
        ],
    )  # fmt: skip
    if report.checks:
        out += ["", f"## Cutover checklist: {report.checks_verdict}", ""]
        out += _table(
            ["status", "check", "evidence", "threshold"],
            [[_STATUS_MARK.get(c.status, c.status), f"`{c.name}`", c.evidence, c.threshold] for c in report.checks],
        )
    if report.trend:
        marks = " ".join("✓" if p.clean else "✗" for p in report.trend)
        out += ["", f"Parity over the last {len(report.trend)} run(s), oldest first: {_cell(marks)}"]
    for o in report.outputs:
        out += ["", f"<details><summary><b>{o.output}</b>: {o.result.verdict}</summary>", ""]
        out += _body(o.result, "###")
        for what, noise in o.result.baselines:
            out += ["", f"#### Noise baseline: {what}", ""] + _body(noise, "####")
        out += ["", "</details>"]
    return "\n".join(out) + "\n"
