"""Markdown report, for pull requests and wikis."""

from __future__ import annotations

from comparators.report._common import cause_rows, cause_tag, headline, sample_line, side_titles, value
from comparators.result import Reconciliation


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _text(text: str) -> str:
    """Data in running Markdown: its punctuation escaped, so 'a*b*' never renders as 'a' +
    italic 'b' (an underscore inside a word, as in order_id, cannot start emphasis)."""

    def escaped(i: int, ch: str) -> str:
        if ch == "_" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum():
            return ch
        return "\\" + ch if ch in "\\`*_[]<~" else ch

    return _cell("".join(escaped(i, ch) for i, ch in enumerate(text)))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]


def _body(result: Reconciliation, level: str) -> list[str]:
    out = [f"{level} Reconciliation: {headline(result)}", ""]
    sides = side_titles(result.name)
    out += _table(
        ["side", "rows", "duplicate keys", "source", "position"],
        [
            [what, f"{s.rows:,}", f"{s.duplicate_keys:,}", f"`{s.label}`", s.position or ""]
            for what, s in ((f"left ({sides[0]})", result.left), (f"right ({sides[1]})", result.right))
        ],
    )
    out += ["", f"Keys: {', '.join(f'`{k}`' for k in result.keys)}", ""]
    out += _table(["cause", "count", "note"], [[t, f"{c:,}", n] for t, c, n in cause_rows(result)])
    if result.columns:
        out.append("")
        out += _table(
            ["column", "compared as", "rules", "mismatches", "within tolerance", "null vs value",
             "max abs diff"],
            [
                [f"`{c.name}`", c.compared_as, ", ".join(c.rules) or "exact", f"{c.mismatches:,}",
                 f"{c.within_tolerance:,}", f"{c.null_vs_value:,}",
                 "" if c.max_abs_diff is None else value(c.max_abs_diff)]
                for c in result.columns
            ],
        )  # fmt: skip
    if result.notes:
        out += ["", "How values were compared:", ""] + [f"- {_text(n)}" for n in result.notes]
    if result.samples:
        out += ["", "Samples:", ""]
        out += [f"- **{cause_tag(s.cause, result.name)}** {_text(sample_line(s))}" for s in result.samples]
    return out


def render_markdown(result: Reconciliation) -> str:
    out = _body(result, "##")
    for what, noise in result.baselines:
        out += ["", f"### Noise baseline: {what}", ""] + _body(noise, "####")
    return "\n".join(out) + "\n"
