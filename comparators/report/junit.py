"""JUnit XML of a pipeline run, so any CI shows each output and each cutover check as a test case.

An output with unexplained differences is a failure whose message and body carry
the count per cause; a failed check is a failure carrying its evidence; a skipped
check is skipped; a warning passes with the warning in its system-out.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from comparators.report._common import cause_tag, cause_title, sample_line, side_titles
from comparators.report.model import CheckOutcome, OutputRun, RunReport
from comparators.result import UNEXPLAINED_CAUSES


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _output_case(suite: ET.Element, classname: str, output: OutputRun) -> None:
    result = output.result
    case = ET.SubElement(
        suite, "testcase", {"classname": classname, "name": output.output, "time": _seconds(result.elapsed_s)}
    )
    causes = result.causes
    left, right = side_titles(output.name)
    lines = [f"{cause}: {count}" for cause, count in causes.items()]
    if result.not_compared is not None:  # never compared (e.g. a sink behind): why, not zero counts
        verdict, reason = result.not_compared
        ET.SubElement(case, "failure", {"type": verdict, "message": f"not compared: {reason}"})
    elif result.unexplained:
        failing = ", ".join(
            f"{cause_tag(cause, result.name)} {causes[cause]}" for cause in UNEXPLAINED_CAUSES if causes[cause]
        )
        failure = ET.SubElement(
            case,
            "failure",
            {"type": "differences", "message": f"{result.unexplained} unexplained differences: {failing}"},
        )
        body = [f"{cause_title(c, result.name)}: {n}" for c, n in causes.items() if n]
        if result.samples:
            body += ["", "samples:"] + [
                f"  [{cause_tag(s.cause, result.name)}] {sample_line(s)}" for s in result.samples
            ]
        failure.text = "\n".join(body)
    out = [
        f"history entry {output.run_id} ({output.name})",
        f"{left} {result.left.rows} rows at {result.left.position or '-'}; {right} {result.right.rows} rows",
        *lines,
    ]
    ET.SubElement(case, "system-out").text = "\n".join(out)


def _check_case(suite: ET.Element, classname: str, check: CheckOutcome) -> None:
    case = ET.SubElement(suite, "testcase", {"classname": classname, "name": check.name, "time": "0.000"})
    if check.status == "fail":
        failure = ET.SubElement(case, "failure", {"type": "check", "message": check.evidence})
        failure.text = f"{check.evidence}\nthreshold: {check.threshold}"
    elif check.status == "skipped":
        ET.SubElement(case, "skipped", {"message": check.evidence})
    ET.SubElement(case, "system-out").text = f"{check.status}: {check.evidence}\nthreshold: {check.threshold}"


def _suite(
    parent: ET.Element, name: str, cases: int, failures: int, skipped: int, time: float, stamp: str
) -> ET.Element:
    return ET.SubElement(parent, "testsuite", {
        "name": name, "tests": str(cases), "failures": str(failures), "errors": "0", "skipped": str(skipped),
        "time": _seconds(time), "timestamp": stamp,
    })  # fmt: skip


def render_junit(report: RunReport) -> str:
    """The run as a JUnit `<testsuites>` document (one suite for outputs, one for checks)."""
    stamp = report.recorded_at.replace(microsecond=0).isoformat() if report.recorded_at else ""
    failures = sum(1 for o in report.outputs if o.result.unexplained)
    check_failures = sum(1 for c in report.checks if c.status == "fail")
    check_skipped = sum(1 for c in report.checks if c.status == "skipped")
    elapsed = sum(o.result.elapsed_s for o in report.outputs)
    root = ET.Element("testsuites", {
        "name": f"dualrun {report.title}", "tests": str(len(report.outputs) + len(report.checks)),
        "failures": str(failures + check_failures), "errors": "0", "skipped": str(check_skipped),
        "time": _seconds(elapsed),
    })  # fmt: skip
    classname = f"dualrun.reconcile.{report.title}"
    suite = _suite(root, classname, len(report.outputs), failures, 0, elapsed, stamp)
    props = ET.SubElement(suite, "properties")
    for key, val in (
        ("run_id", report.run_id),
        ("verdict", report.verdict),
        ("parity_streak", str(report.parity_streak)),
        ("min_parity_streak", "" if report.min_parity_streak is None else str(report.min_parity_streak)),
    ):
        ET.SubElement(props, "property", {"name": key, "value": val})
    for output in report.outputs:
        _output_case(suite, classname, output)
    if report.checks:
        check_class = f"dualrun.checklist.{report.title}"
        checks = _suite(root, check_class, len(report.checks), check_failures, check_skipped, 0.0, stamp)
        ET.SubElement(ET.SubElement(checks, "properties"), "property", {
            "name": "verdict", "value": report.checks_verdict or "",
        })  # fmt: skip
        for check in report.checks:
            _check_case(checks, check_class, check)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
