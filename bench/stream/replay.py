"""Replay recorded Debezium records through the streaming job's own code, without a broker.

    python bench/stream/replay.py capture --database bench_x   # record a loaded benchmark database's topics
    python bench/stream/replay.py run                           # us per event, per stage, best of 3
    python bench/stream/replay.py count                         # instructions per event (valgrind)

The job's decoding, ordering, transform and changelog segments run exactly as in
`dualrun run stream`; only the Kafka clients are left out (records come from the
recording, produced records are encoded and then dropped), so what is measured is
the job's own CPU. `count` runs the replay under valgrind's callgrind at N and at 1
events and divides the difference: instruction counts do not drift with the
machine's speed, so a change of a few percent shows. For the job with Kafka, use
hotpath.py; for the goals of issue 4, run.py.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from bench.stream.run import make_spec  # noqa: E402
from migrate.examples.shop_orders import PIPELINE  # noqa: E402
from migrate.stackconfig import StackConfig  # noqa: E402
from migrate.stream.counters import Counters  # noqa: E402
from migrate.stream.job import GC_YOUNG_THRESHOLD, StreamJob  # noqa: E402

RECORDING = ROOT / ".dualrun" / "bench" / "replay.pickle"
Record = tuple[str, int, int, bytes | None, bytes | None]  # topic, partition, offset, key, value


class Recorded:
    """A recorded record with the accessors of confluent_kafka.Message that the job calls."""

    __slots__ = ("_topic", "_partition", "_offset", "_key", "_value")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        self._topic, self._partition, self._offset, self._key, self._value = topic, partition, offset, key, value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> None:
        return None

    def headers(self) -> None:
        return None


class DroppingProducer:
    """Takes produced records and drops them: the job has already encoded them."""

    def produce(self, topic: str, key: bytes | None = None, value: bytes | None = None, headers: Any = None) -> None:
        pass

    def poll(self, timeout: float) -> int:
        return 0


def capture(config: StackConfig, database: str, out: Path) -> None:
    spec = make_spec(config, database, "replay-capture", Path(tempfile.mkdtemp()), eos=False)
    topics = [*(spec.cdc.topic(t) for t in spec.cdc.tables), f"{spec.cdc.topic_prefix}.transaction"]
    consumer = Consumer({"bootstrap.servers": config.bootstrap_servers, "group.id": "replay-capture"})
    recorded: dict[str, list[Record]] = {}
    try:
        for topic in topics:
            end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
            consumer.assign([TopicPartition(topic, 0, 0)])
            rows: list[Record] = []
            while len(rows) < end:
                for msg in consumer.consume(10_000, timeout=5):
                    if msg.error() is None:
                        rows.append((topic, 0, msg.offset() or 0, msg.key(), msg.value()))
            recorded[topic] = rows
    finally:
        consumer.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pickle.dumps({"database": database, "topics": topics, "records": recorded}))
    print(f"{out}: " + ", ".join(f"{t} {len(r)}" for t, r in recorded.items()))


def interleaved(recording: dict[str, Any], events: int) -> list[Recorded]:
    """Customers first, then the orders with the transaction markers spread among them in proportion,
    as a consumer of all three topics receives them."""
    customers, orders, markers = (recording["records"][t] for t in recording["topics"])
    out = [Recorded(*r) for r in customers]
    ratio, owed, next_marker = len(markers) / max(1, len(orders)), 0.0, 0
    for record in orders[:events]:
        out.append(Recorded(*record))
        owed += ratio
        while owed >= 1 and next_marker < len(markers):
            out.append(Recorded(*markers[next_marker]))
            next_marker, owed = next_marker + 1, owed - 1
    return out


def replay(config: StackConfig, recording: dict[str, Any], events: int, reps: int, batch: int) -> None:
    records = interleaved(recording, events)
    spec = make_spec(config, recording["database"], "replay", Path(tempfile.mkdtemp()), eos=False)
    job = StreamJob(spec)  # its Kafka clients are created but never used
    job.producer = DroppingProducer()  # type: ignore[assignment]
    job.in_txn = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 1000)
    best: tuple[float, dict[str, float]] | None = None
    for _ in range(reps):
        job.transform, job.counters = PIPELINE.transform(), Counters()
        job.order.clear()
        stages = dict.fromkeys(("decode", "order", "transform", "changelog"), 0.0)
        now, started = time.monotonic(), time.process_time()
        for at in range(0, len(records), batch):
            t0 = time.process_time()
            for record in records[at : at + batch]:
                job._buffer(record, now)  # type: ignore[arg-type]
            t1 = time.process_time()
            released = job._release(now)
            t2 = time.process_time()
            job._process(released)
            t3 = time.process_time()
            job.changelog.flush()
            t4 = time.process_time()
            for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                stages[stage] += seconds
        total = time.process_time() - started
        if best is None or total < best[0]:
            best = (total, stages)
    assert best is not None
    total, stages = best
    n = job.counters.events_in
    parts = "  ".join(f"{stage} {1e6 * s / n:.1f}" for stage, s in stages.items())
    print(f"{n} events, {len(records)} records: {1e6 * total / n:.1f} us CPU per event (best of {reps}): {parts}")
    job.consumer.close()


def count(events: int) -> None:
    """Instructions per event: callgrind totals at `events` and at 1 event, differenced."""
    totals = []
    for n in (events, 1):
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, "run",
             "--events", str(n), "--reps", "1"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        match = re.search(r"Collected : (\d+)", done.stderr)
        if match is None:
            raise SystemExit(f"valgrind gave no instruction count:\n{done.stderr[-2000:]}")
        totals.append(int(match[1]))
        print(done.stdout.strip())
    print(f"instructions per event: {(totals[0] - totals[1]) / (events - 1):,.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("capture", "run", "count"))
    parser.add_argument("--database", help="capture: a database loaded by run.py or hotpath.py")
    parser.add_argument("--file", type=Path, default=RECORDING)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=3000, help="records per consume/commit cycle")
    args = parser.parse_args()
    config = StackConfig.from_env(ROOT / ".dualrun")
    if args.command == "capture":
        if not args.database:
            parser.error("capture needs --database")
        capture(config, args.database, args.file)
    elif args.command == "run":
        replay(config, pickle.loads(args.file.read_bytes()), args.events, args.reps, args.batch)
    else:
        count(min(args.events, 10_000))  # under valgrind, about 50x slower
    return 0


if __name__ == "__main__":
    sys.exit(main())
