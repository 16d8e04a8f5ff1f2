"""The streaming job's counters: what it has read, written and committed, and its recent rate.

The `last_*` fields hold what Kafka has committed (reconciliation waits on them); the
`pending_*` fields what the open transaction will commit. The committed progress also
travels in the state topic (`progress`), so a restarted job knows what it has covered.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cdc.position import Position


@dataclass
class Counters:
    events_in: int = 0
    events_out: int = 0
    dead_letters: int = 0
    transactions: int = 0
    last_event_ts_ms: int | None = None  # as committed
    last_position: dict[str, Any] | None = None  # as committed
    pending_ts_ms: int | None = None
    pending_position: Position | None = None  # serialised only when committed: to_dict per event is costly
    last_transaction: str | None = None  # as committed
    pending_transaction: str | None = None
    rate_window: deque[tuple[float, int, float]] = field(default_factory=deque)  # (when, events_in, waited)
    input_wait_s: float = 0.0  # time spent waiting for input records

    def rate(self, now: float) -> tuple[float, float]:
        """Events per second and the share of time spent waiting for input, over the last ~10 s.

        A job that keeps up waits most of the time; one that never waits is the bottleneck.
        """
        self.rate_window.append((now, self.events_in, self.input_wait_s))
        while len(self.rate_window) > 2 and now - self.rate_window[0][0] > 10:
            self.rate_window.popleft()
        (t0, n0, w0), (t1, n1, w1) = self.rate_window[0], self.rate_window[-1]
        if t1 <= t0:
            return 0.0, 0.0
        return (n1 - n0) / (t1 - t0), min(1.0, (w1 - w0) / (t1 - t0))

    def measures(self, now: float) -> dict[str, Any]:
        """The counters' fields of the job's status (`StreamStatus`), the rate measured at `now`."""
        rate, idle = self.rate(now)
        return {
            "events_in": self.events_in,
            "events_out": self.events_out,
            "dead_letters": self.dead_letters,
            "transactions": self.transactions,
            "last_event_ts_ms": self.last_event_ts_ms,
            "last_position": self.last_position,
            "last_transaction": self.last_transaction,
            "events_per_second": round(rate, 1),
            "idle_share": round(idle, 3),
        }

    def progress(self) -> dict[str, Any] | None:
        """The progress record the open transaction commits; None when it covers nothing new."""
        pending = self.pending_position
        if pending is None and self.pending_transaction is None:
            return None
        return {
            "position": pending.to_dict() if pending is not None else self.last_position,
            "transaction": self.pending_transaction or self.last_transaction,
            "ts_ms": self.pending_ts_ms or self.last_event_ts_ms,
        }

    def restore_progress(self, progress: dict[str, Any]) -> None:
        """The committed progress read back from the state topic (see `progress`)."""
        self.last_position = progress.get("position")
        self.last_transaction = progress.get("transaction")
        self.last_event_ts_ms = progress.get("ts_ms")

    def committed(self) -> None:
        """The open transaction is committed: what it covered now counts as reached."""
        self.transactions += 1
        if self.pending_position is not None:
            self.last_position = self.pending_position.to_dict()
            self.last_event_ts_ms = self.pending_ts_ms
        if self.pending_transaction is not None:
            self.last_transaction = self.pending_transaction
        # Reached now, so no longer pending: the next transaction writes a progress record only if
        # it covers something new (`progress` is None otherwise), not the same one on every commit.
        self.pending_position, self.pending_ts_ms, self.pending_transaction = None, None, None

    def rewound(self) -> None:
        """The open transaction is gone: nothing is pending."""
        self.pending_position = None
        self.pending_transaction = None
