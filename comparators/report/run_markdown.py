"""Markdown of a pipeline run, for pull requests and chat: verdict line, one table, details folded."""

from __future__ import annotations

from comparators.report._common import cause_title, row_counts
from comparators.report.logcheck import ChangeLogCheck, sample_text
from comparators.report.markdown import _body, _cell, _table
from comparators.report.model import RunReport
from comparators.result import UNEXPLAINED_CAUSES

_STATUS_MARK = {"pass": "✅ pass", "fail": "❌ fail", "warn": "⚠️ warn", "skipped": "⏭️ skipped"}


def _verdict(report: RunReport) -> str:
    if report.verdict == "clean":
        return "✅ CLEAN: no unexplained differences"
    if not report.unexplained:
        return "❌ DIFFERENCES: the change log differs from the database (see below)"
    log = "; the change log differs from the database" if report.log_differs else ""
    return f"❌ DIFFERENCES: {report.unexplained:,} unexplained{log}"


def render_run_markdown(report: RunReport) -> str:
    """Headline, per-output summary, checks, trend, then each output's full detail in a fold."""
    out = [f"# dualrun · {report.title}: {_verdict(report)}", ""]
    facts = []
    if report.recorded_at:
        facts.append(f"run recorded {report.recorded_at:%Y-%m-%d %H:%M:%S} UTC")
    streak = f"parity streak **{report.parity_streak}**"
    if report.min_parity_streak:
        streak += f" of {report.min_parity_streak} clean batch runs required"
    else:
        streak += " clean batch runs"
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
                       if n and c in UNEXPLAINED_CAUSES) or (o.result.not_compared or ("", "none"))[1]]
            for o, cells in zip(report.outputs, counts, strict=True)
        ],
    )  # fmt: skip
    if report.checks:
        out += ["", f"## Cutover checklist: {report.checks_verdict}", ""]
        out += _table(
            ["status", "check", "evidence", "threshold"],
            [[_STATUS_MARK.get(c.status, c.status), f"`{c.name}`", c.evidence, c.threshold] for c in report.checks],
        )
    if report.change_log is not None:
        out += _change_log(report.change_log)
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


def _change_log(log: ChangeLogCheck) -> list[str]:
    """The latest change-log verification: a line per table, each cause with its setting and samples."""
    out = ["", f"## Change log vs database: {log.verdict}", "",
           f"as of `{log.position}`, connector `{log.connector}`, verified {log.verified_at}"]  # fmt: skip
    if log.unevaluated:
        out += ["", f"Not evaluated: {_cell(log.unevaluated)}"]
    out.append("")
    out += _table(
        ["table", "status", "database rows", "log rows", "matched", "unverified", "coverage"],
        [[f"`{t.table}`", "clean" if t.clean else "differences", f"{t.database_rows:,}", f"{t.log_rows:,}",
          f"{t.matched_rows:,}", f"{t.unverified_rows:,}", t.coverage] for t in log.tables],
    )  # fmt: skip
    rows = [
        [f"`{t.table}`", f"**{f.cause}**", f"{f.rows:,}", f.explanation, f"`{f.setting}`" if f.setting else "",
         "; ".join(sample_text(s) for s in f.samples[:3])]
        for t in log.tables for f in t.findings
    ]  # fmt: skip
    if rows:
        out += ["", *_table(["table", "cause", "rows", "explanation", "connector setting", "samples"], rows)]
    notes = [f"`{t.table}`: {t.note}" for t in log.tables if t.note]
    if notes:
        out += ["", *(f"- {n}" for n in notes)]
    if log.settings:
        out += ["", "Connector settings: " + ", ".join(f"`{k}={v}`" for k, v in log.settings)]
    return out
