"""Profile the streaming job in-process over a Debezium snapshot already in Kafka.

    python bench/stream/hotpath.py --orders 200000            # load + snapshot, then one profiled run
    python bench/stream/hotpath.py --database bench_x --runs 2 # reuse a loaded database and its topics

Prints events/s of each run (job start-up excluded) and the top of the cProfile
by cumulative and own time, so a change to the hot path can be judged in minutes
instead of the full benchmark's quarter hour.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.stream.run import load_source, make_spec, topic_total, wait_snapshot  # noqa: E402
from migrate.stack import Stack  # noqa: E402
from migrate.stackconfig import StackConfig  # noqa: E402
from migrate.stream.job import StreamJob  # noqa: E402
from migrate.stream.status import StreamStatus  # noqa: E402


def profiled_run(config: StackConfig, database: str, total: int, eos: bool, profile: bool) -> float:
    name = f"prof-{uuid.uuid4().hex[:6]}"
    spec = make_spec(config, database, name, Path(tempfile.mkdtemp(prefix="dualrun-prof-")), eos=eos)
    marks: list[tuple[float, int, float, float, float]] = []

    def report(status: StreamStatus) -> None:
        if status.transactions:
            marks.append((time.monotonic(), status.events_in, time.process_time(), time.thread_time(),
                          job.counters.input_wait_s))  # fmt: skip
        if status.events_in >= total:
            job.stop()

    job = StreamJob(spec, report=report)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    job.run(install_signals=False, max_seconds=600)
    if profiler:
        profiler.disable()
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(30)
    (t0, n0, c0, m0, w0), (t1, n1, c1, m1, w1) = marks[0], marks[-1]
    # CPU time of every thread of the process (librdkafka's included): steadier than the rate
    # on a shared machine.
    print(
        f"CPU per event: {1e6 * (c1 - c0) / (n1 - n0):.1f} us "
        f"(job thread {1e6 * (m1 - m0) / (n1 - n0):.1f} us, Kafka client threads the rest); "
        f"waiting for input {100 * (w1 - w0) / (t1 - t0):.0f}% of the time",
        flush=True,
    )
    return (n1 - n0) / (t1 - t0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--database")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--eos-off", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    config = StackConfig.from_env(ROOT / ".dualrun")
    Stack(config).up()
    database = args.database
    if database is None:
        database = f"bench_{uuid.uuid4().hex[:6]}"
        load_source(config, database, args.orders)
        seed = make_spec(config, database, f"prof-{database}", Path(tempfile.mkdtemp()), eos=True)
        wait_snapshot(config, seed, args.orders + 1000)
        print(f"database {database} loaded and snapshotted", flush=True)
    seed = make_spec(config, database, f"prof-{database}", Path(tempfile.mkdtemp()), eos=True)
    total = topic_total(config, seed)
    for _ in range(args.runs):
        rate = profiled_run(config, database, total, eos=not args.eos_off, profile=not args.no_profile)
        print(f"{total} events: {rate:,.0f} events/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
