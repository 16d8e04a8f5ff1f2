"""Charts for the HTML report, drawn by matplotlib as inline SVG strings.

Text is drawn as paths (no fonts to fetch) and every SVG id is prefixed with the
chart's name, so several charts can live in one HTML document without their
clip paths and glyph definitions colliding.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from comparators.report._common import cause_title
from comparators.report.model import LagPoint, OutputRun, TrendPoint
from comparators.result import UNEXPLAINED_CAUSES

RED, AMBER, GREEN, GREY, BLUE = "#c62828", "#ef8f00", "#2e7d32", "#9e9e9e", "#1565c0"
# Any: matplotlib types rc keys as a Literal union, which a plain dict cannot satisfy.
_RC: Any = {"svg.fonttype": "path", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}


def _svg(fig: Figure, chart: str) -> str:
    buf = io.StringIO()
    import matplotlib

    rc: Any = {**_RC, "svg.hashsalt": chart}
    with matplotlib.rc_context(rc):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG is inlined in HTML
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    for old in sorted(ids, key=len, reverse=True):
        new = f"{chart}-{old}"
        text = text.replace(f'id="{old}"', f'id="{new}"').replace(f"#{old})", f"#{new})")
        text = text.replace(f'href="#{old}"', f'href="#{new}"')
    return text.replace("<svg ", f'<svg data-chart="{chart}" role="img" aria-label="{chart} chart" ', 1)


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height), dpi=96)


def _empty(fig: Figure, message: str) -> None:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", color=GREY, fontsize=11, transform=ax.transAxes)


def differences_by_cause(outputs: Sequence[OutputRun]) -> str:
    """Horizontal bars: count per cause, one bar group per output, unexplained causes in red."""
    rows = [(o, cause, count) for o in outputs for cause, count in o.result.causes.items() if count]
    fig = _figure(6.0, max(1.6, 0.32 * len(rows) + 0.9))
    if not rows:
        _empty(fig, "no differences of any cause")
        return _svg(fig, "causes")
    ax = fig.add_subplot()
    labels = [f"{o.output}: {cause_title(cause, o.result.name).split(' (')[0]}" for o, cause, _ in rows]
    counts = [count for _, _, count in rows]
    colours = [RED if cause in UNEXPLAINED_CAUSES else AMBER for _, cause, _ in rows]
    bars = ax.barh(range(len(rows)), counts, color=colours)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rows / keys / columns")
    ax.set_title("Differences by cause (red: unexplained, amber: explained)", loc="left", fontsize=10)
    return _svg(fig, "causes")


def differences_by_column(outputs: Sequence[OutputRun]) -> str:
    """Stacked bars per output column: mismatches beyond tolerance and differences within it."""
    rows = [
        (f"{o.output}.{c.name}", c.mismatches, c.within_tolerance)
        for o in outputs
        for c in o.result.columns
        if c.mismatches or c.within_tolerance
    ]
    fig = _figure(6.0, max(1.6, 0.32 * len(rows) + 0.9))
    if not rows:
        _empty(fig, "no column differs on key-matched rows")
        return _svg(fig, "columns")
    ax = fig.add_subplot()
    y = range(len(rows))
    mismatches = [r[1] for r in rows]
    within = [r[2] for r in rows]
    ax.barh(y, mismatches, color=RED, label="mismatch")
    ax.barh(y, within, left=mismatches, color=AMBER, label="within tolerance")
    ax.set_yticks(y, [r[0] for r in rows])
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rows")
    ax.set_title("Differences by column", loc="left", fontsize=10)
    return _svg(fig, "columns")


def parity_trend(trend: Sequence[TrendPoint], min_streak: int | None) -> str:
    """The parity streak (clean batch runs in a row) after each run; red markers for runs with
    unexplained differences."""
    fig = _figure(6.0, 2.4)
    if not trend:
        _empty(fig, "no data: no runs recorded")
        return _svg(fig, "parity")
    ax = fig.add_subplot()
    x = list(range(1, len(trend) + 1))
    ax.step(x, [p.streak for p in trend], where="mid", color=BLUE, linewidth=1.5)
    ax.scatter(x, [p.streak for p in trend], c=[GREEN if p.clean else RED for p in trend], s=28, zorder=3)
    if min_streak:
        ax.axhline(min_streak, color=GREY, linestyle="--", linewidth=1)
        ax.text(0.55, min_streak, f"required {min_streak}", va="bottom", fontsize=8, color=GREY)
    ax.set_xlabel("run (oldest to latest)")
    ax.set_ylabel("clean batch runs in a row")
    ax.set_xlim(0.5, len(trend) + 0.5)
    if len(trend) <= 15:
        ax.set_xticks(x)
    ax.set_ylim(0, max([p.streak for p in trend] + [min_streak or 0]) + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(trend) > 15:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Parity streak over runs (green: clean, red: differences)", loc="left", fontsize=10)
    return _svg(fig, "parity")


def stream_lag(series: Sequence[LagPoint] | None, unit: str = "records behind") -> str:
    """How far the streaming job was behind over the run, or 'no data' without a series."""
    fig = _figure(6.0, 2.2)
    if not series:
        _empty(fig, "no data: the stream recorded no lag series for this run")
        return _svg(fig, "lag")
    ax = fig.add_subplot()
    start = series[0].at
    seconds = [(p.at - start).total_seconds() for p in series]
    # Bars, not a line: points are time buckets with data, and a line would invent values across gaps.
    gaps = [b - a for a, b in zip(seconds, seconds[1:], strict=False) if b > a]
    width = min(gaps) * 0.9 if gaps else 1.0
    ax.bar(seconds, [p.lag for p in series], width=width, align="edge", color=BLUE)
    ax.set_xlabel(f"seconds since {start:%Y-%m-%d %H:%M:%S}")
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    ax.set_title("Stream lag over the run", loc="left", fontsize=10)
    return _svg(fig, "lag")
