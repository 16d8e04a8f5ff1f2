"""The job's status line shows its self-measurement (the counters: test_counters.py)."""

from __future__ import annotations

import io

from rich.console import Console

from migrate import render
from migrate.stream.status import StreamStatus


def test_the_status_line_shows_rate_and_idle_share() -> None:
    status = StreamStatus(pid=1, state="running", updated_at=0.0, started_at=0.0, exactly_once=True,
                          events_in=10, events_per_second=5000.0, idle_share=0.25)  # fmt: skip
    out = io.StringIO()
    render.stream_status_line(status, Console(file=out, width=200, color_system=None))
    assert "10 events in (5000/s, idle 25%)" in out.getvalue()
