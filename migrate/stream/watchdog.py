"""The streaming job's watchdog: a thread that ends the process when the main loop stops turning.

librdkafka calls can block past their timeout (send_offsets_to_transaction after a broker
restart, librdkafka issues #5456 and #5511). Nothing is lost by exiting: what was not committed
is read again by the next instance, and the broker aborts the open transaction when that
instance fences this one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

from migrate.stream.kafka import TransactionalProducer

# A main loop silent this long ends the process, so that the supervisor starts a fresh one. More
# than four times the longest call the loop makes on purpose.
WATCHDOG_S = 45.0
WATCHDOG_EXIT = 3  # the exit code when the watchdog ends the job (1: a fatal Kafka error, 2: usage)


class Watched(Protocol):
    @property
    def finished(self) -> bool: ...  # run() has returned: the watchdog stands down

    @property
    def heartbeat_at(self) -> float: ...  # the main loop's last turn (epoch seconds)

    @property
    def kafka_error(self) -> str | None: ...  # the last Kafka error met, retried or not

    @property
    def producer(self) -> TransactionalProducer: ...


def start_watchdog(job: Watched, report: Callable[[str], None], limit_s: float = WATCHDOG_S) -> None:
    """Watch `job` from a daemon thread; when it is stuck, `report` why, say it on stderr and exit."""

    def watch() -> None:
        while not job.finished:
            time.sleep(1.0)
            silent, where = time.time() - job.heartbeat_at, job.producer.calling
            if silent > limit_s or job.producer.stuck_for() > 0:
                reason = (
                    f"streaming job stuck for {silent:.0f}s in {where or 'the main loop'}"
                    f"{' (past its timeout)' if where else ''}; exiting so it is started afresh"
                )
                if job.kafka_error:
                    reason += f" (last Kafka error {job.kafka_error})"
                try:
                    report(reason)
                finally:
                    print(f"error: {reason}", file=sys.stderr, flush=True)
                    os._exit(WATCHDOG_EXIT)

    threading.Thread(target=watch, name="dualrun-watchdog", daemon=True).start()
