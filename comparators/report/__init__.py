"""Renderers for a `Reconciliation` and for a pipeline run; the only place results are formatted."""

from __future__ import annotations

import json as jsonlib  # the package has a `json` submodule, which would shadow the name
from collections.abc import Callable

from comparators.errors import SpecError
from comparators.report._common import key_text
from comparators.report.json import render_json
from comparators.report.markdown import render_markdown
from comparators.report.model import RunReport
from comparators.report.text import render_text
from comparators.result import Reconciliation

RENDERERS: dict[str, Callable[[Reconciliation], str]] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
}
FORMATS = tuple(RENDERERS)

# Formats of a whole pipeline run read from the history (see comparators.report.runs).
RUN_FORMATS = ("html", "markdown", "json", "junit")


def render(result: Reconciliation, fmt: str = "text") -> str:
    """The result in one of `FORMATS`."""
    return RENDERERS[fmt](result)


def render_run(report: RunReport, fmt: str = "html") -> str:
    """A pipeline run in one of `RUN_FORMATS`; matplotlib is imported only for HTML."""
    if fmt == "html":
        from comparators.report.html import render_html

        return render_html(report)
    if fmt == "markdown":
        from comparators.report.run_markdown import render_run_markdown

        return render_run_markdown(report)
    if fmt == "junit":
        from comparators.report.junit import render_junit

        return render_junit(report)
    if fmt == "json":
        return jsonlib.dumps(report.to_dict(), indent=2) + "\n"
    raise SpecError(f"unknown report format {fmt!r}; expected one of {', '.join(RUN_FORMATS)}")


__all__ = [
    "FORMATS",
    "RUN_FORMATS",
    "RunReport",
    "key_text",
    "render",
    "render_json",
    "render_markdown",
    "render_run",
    "render_text",
]
