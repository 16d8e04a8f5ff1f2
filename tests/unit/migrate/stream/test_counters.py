"""The job's self-measurement and progress: rate and idle share over a sliding window, and what a
commit makes reached (no broker needed)."""

from __future__ import annotations

from cdc.position import Position
from migrate.stream.counters import Counters
from migrate.stream.restore import resumed


def test_rate_and_idle_share_cover_the_last_ten_seconds() -> None:
    counters = Counters()
    assert counters.rate(100.0) == (0.0, 0.0)  # one sample: nothing to divide by
    counters.events_in, counters.input_wait_s = 20_000, 1.0
    assert counters.rate(104.0) == (5000.0, 0.25)  # busy three quarters of the time
    counters.events_in, counters.input_wait_s = 20_100, 12.0
    rate, idle = counters.rate(116.0)  # the first sample has left the window
    assert (rate, idle) == (100 / 12, 11 / 12)


def test_only_a_commit_makes_the_pending_position_reached() -> None:
    counters = Counters()
    assert counters.progress() is None  # nothing pending: no progress record to write
    at = Position("binlog", 7, 1234, 2, "mysql-bin.000007", "0-1-9")
    counters.pending_position, counters.pending_ts_ms, counters.pending_transaction = at, 1_000, "0-1-9"
    progress = counters.progress()
    assert progress == {"position": at.to_dict(), "transaction": "0-1-9", "ts_ms": 1_000}
    assert counters.last_position is None  # written, not yet committed
    counters.committed()
    assert (counters.last_position, counters.last_transaction, counters.transactions) == (at.to_dict(), "0-1-9", 1)
    assert resumed(counters.last_position) == (str(at), at.order_value)


def test_a_transaction_covering_nothing_new_writes_no_progress_record() -> None:
    """The job writes the progress record only when `progress()` is not None: after a commit, a
    transaction with no new event or transaction marker must not rewrite what was committed."""
    counters = Counters()
    at = Position("binlog", 7, 1234, 2, "mysql-bin.000007", "0-1-9")
    counters.pending_position, counters.pending_ts_ms, counters.pending_transaction = at, 1_000, "0-1-9"
    counters.committed()
    assert counters.progress() is None  # only dead letters or tombstones since: nothing to record
    assert (counters.last_position, counters.last_transaction, counters.last_event_ts_ms) == (
        at.to_dict(),
        "0-1-9",
        1_000,
    )
    counters.pending_transaction = "0-1-10"  # a transaction marker alone is something new
    assert counters.progress() == {"position": at.to_dict(), "transaction": "0-1-10", "ts_ms": 1_000}
    counters.committed()
    assert counters.progress() is None and counters.transactions == 2 and counters.last_transaction == "0-1-10"


def test_a_rewind_drops_what_is_pending_and_keeps_what_was_committed() -> None:
    counters = Counters()
    counters.restore_progress({"position": {"kind": "binlog"}, "transaction": "t1", "ts_ms": 5})
    counters.pending_transaction = "t2"
    counters.rewound()
    assert counters.progress() is None
    assert (counters.last_transaction, counters.last_event_ts_ms) == ("t1", 5)


def test_the_status_measures_round_the_rate_and_carry_what_was_committed() -> None:
    counters = Counters(events_in=3, dead_letters=1, last_transaction="t1")
    counters.rate(0.0)
    counters.events_in, counters.input_wait_s = 30_003, 1.0
    measures = counters.measures(3.0)
    assert (measures["events_per_second"], measures["idle_share"]) == (10000.0, 0.333)
    assert (measures["events_in"], measures["dead_letters"], measures["last_transaction"]) == (30_003, 1, "t1")
