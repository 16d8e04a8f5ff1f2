"""The job's self-measurement: rate and idle share over a sliding window (no broker needed)."""

from __future__ import annotations

import io

from rich.console import Console

from migrate import render
from migrate.stream.job import Counters
from migrate.stream.status import StreamStatus


def test_rate_and_idle_share_cover_the_last_ten_seconds() -> None:
    counters = Counters()
    assert counters.rate(100.0) == (0.0, 0.0)  # one sample: nothing to divide by
    counters.events_in, counters.input_wait_s = 20_000, 1.0
    assert counters.rate(104.0) == (5000.0, 0.25)  # busy three quarters of the time
    counters.events_in, counters.input_wait_s = 20_100, 12.0
    rate, idle = counters.rate(116.0)  # the first sample has left the window
    assert (rate, idle) == (100 / 12, 11 / 12)


def test_the_status_line_shows_rate_and_idle_share() -> None:
    status = StreamStatus(pid=1, state="running", updated_at=0.0, started_at=0.0, exactly_once=True,
                          events_in=10, events_per_second=5000.0, idle_share=0.25)  # fmt: skip
    out = io.StringIO()
    render.stream_status_line(status, Console(file=out, width=200, color_system=None))
    assert "10 events in (5000/s, idle 25%)" in out.getvalue()
