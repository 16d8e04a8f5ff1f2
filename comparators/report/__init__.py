"""Renderers for a `Reconciliation`; the only place results are formatted."""

from __future__ import annotations

from collections.abc import Callable

from comparators.report.json import render_json
from comparators.report.markdown import render_markdown
from comparators.report.text import render_text
from comparators.result import Reconciliation

RENDERERS: dict[str, Callable[[Reconciliation], str]] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
}
FORMATS = tuple(RENDERERS)


def render(result: Reconciliation, fmt: str = "text") -> str:
    """The result in one of `FORMATS`."""
    return RENDERERS[fmt](result)


__all__ = ["FORMATS", "render", "render_json", "render_markdown", "render_text"]
