"""Benchmark: the tap reading a foreign output topic into changelogs, on one core.

    python bench/tap/run.py                    # 1M orders (~3 minutes), writes results.md/.json
    python bench/tap/run.py --records 100000 --out dev

1. Produces --records enriched-order JSON records (key {"order_id": n}, value with a DECIMAL
   amount as a JSON string, a `dbz.source` header holding a Debezium MariaDB source block) to a
   unique topic, in Kafka transactions of 1,000 records (as an exactly-once job writes them),
   with one aborted transaction per 100 committed ones, so read_committed has markers and
   aborted records to skip. Produced once; not timed.
2. Times, each as a whole process pinned to one core (`taskset -c 1`) and alternated
   --repeat times:
   - the baseline: a plain confluent-kafka consume loop (read_committed) that only counts records;
   - the tap: `tap_output` into a fresh folder (decoding, positions, Arrow typing by the batch
     schema, Parquet segments, tap.json), then `tap_report` over the result.
   Records/s = committed records / process wall time (interpreter start included in both).
3. Deletes the topic.

The machine has 2 cores shared with the stack and other work; read the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import orjson  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

from cdc.topics import TopicAdmin, quiet_logger  # noqa: E402
from migrate.stackconfig import StackConfig  # noqa: E402

BASELINE = """
import sys, time
from confluent_kafka import Consumer, TopicPartition
bootstrap, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count", "enable.auto.commit": False,
              "isolation.level": "read_committed", "fetch.max.bytes": 64 * 1024 * 1024,
              "queued.max.messages.kbytes": 256 * 1024})
c.assign([TopicPartition(topic, 0, 0)])
n = 0
while n < expected:
    for m in c.consume(num_messages=10000, timeout=1.0):
        if m.error() is None:
            n += 1
c.close()
print(n)
"""

TAP = """
import sys
import pyarrow as pa
from pathlib import Path
from migrate.stream.findings import tap_report
from migrate.stream.tap import tap_output
bootstrap, topic, root = sys.argv[1], sys.argv[2], Path(sys.argv[3])
schema = pa.schema([("order_id", pa.int64()), ("customer_id", pa.int64()), ("customer_name", pa.string()),
                    ("customer_tier", pa.string()), ("amount", pa.decimal128(12, 2)), ("status", pa.string()),
                    ("loyalty_tier", pa.string()), ("order_day", pa.date32())])
run = tap_output(bootstrap, topic, root, ["order_id"], schema=schema)
report = tap_report(root, ["order_id"], 0)
assert run.complete and report.without_position == 0 and report.reordered_keys == 0, (run, report)
print(run.records_read)
"""


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def produce(bootstrap: str, topic: str, records: int) -> dict[str, Any]:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"bench-tap-{uuid.uuid4().hex[:8]}",
         "linger.ms": 20, "batch.size": 1_000_000, "compression.type": "lz4"},
        logger=quiet_logger(),
    )  # fmt: skip
    producer.init_transactions(30)
    started = time.monotonic()
    committed = aborted = 0
    n = 0
    batch = 0
    while n < records:
        abort = batch % 101 == 100
        producer.begin_transaction()
        size = min(1000, records - n) if not abort else 1000
        for i in range(size):
            oid = n + i + 1
            pos = 4 + oid * 350
            source = {"version": "3.5.0.Final", "connector": "mariadb", "name": "shop", "ts_ms": 1764547200000 + oid,
                      "snapshot": "false", "db": "shop", "table": "orders", "server_id": 1, "gtid": f"0-1-{oid}",
                      "file": "mysql-bin.000003", "pos": pos, "row": 0, "thread": 9, "query": None}  # fmt: skip
            value = {"order_id": oid, "customer_id": oid % 1000, "customer_name": f"customer {oid % 1000}",
                     "customer_tier": "GOLD", "amount": f"{(oid % 50000) / 100:.2f}", "status": "NEW",
                     "loyalty_tier": "SILVER", "order_day": "2026-11-30"}  # fmt: skip
            producer.produce(topic, key=orjson.dumps({"order_id": oid}), value=orjson.dumps(value),
                             headers=[("dbz.source", orjson.dumps(source))], partition=0)  # fmt: skip
            if i % 10_000 == 0:
                producer.poll(0)
        producer.flush(60)  # aborting with records still in flight fails the transaction fatally
        if abort:
            producer.abort_transaction(60)
            aborted += size
        else:
            producer.commit_transaction(60)
            committed += size
            n += size
        batch += 1
    producer.flush(60)
    return {"committed": committed, "aborted": aborted, "seconds": round(time.monotonic() - started, 1)}


def timed(args: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the process and its threads, the count it printed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run(pin + [sys.executable, *args], check=True, capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, int(out.stdout.strip().splitlines()[-1])


def markdown(r: dict[str, Any]) -> str:
    b, t = r["baseline"], r["tap"]
    lines = [
        "# Tap benchmark", "",
        f"Run {r['started_at']}; {r['machine']['cpus']} CPUs shared with the stack and other work; "
        f"Python {r['machine']['python']}. {r['records']:,} committed records "
        f"(+{r['produce']['aborted']:,} aborted), one partition, each with a `dbz.source` header.", "",
        f"Load average {r['machine']['load_avg'][0]:.1f} at the start, "
        f"{r['machine']['load_avg_end'][0]:.1f} at the end.",
        "",
        "| reader (whole process, one core) | median wall s | records/s | CPU s | CPU us/record | runs (wall s) |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| plain confluent-kafka consume loop, counting (baseline) | {b['median_s']:.2f} | {b['rate']:,.0f} | "
        f"{b['median_cpu_s']:.2f} | {b['us_per_record']:.1f} | {', '.join(f'{s:.2f}' for s in b['runs'])} |",
        f"| tap: decode, positions, Arrow, Parquet segments, report | {t['median_s']:.2f} | {t['rate']:,.0f} | "
        f"{t['median_cpu_s']:.2f} | {t['us_per_record']:.1f} | {', '.join(f'{s:.2f}' for s in t['runs'])} |", "",
        f"Tap / baseline: **{r['ratio']:.2f}x** the wall time, **{r['cpu_ratio']:.2f}x** the CPU time. With the core "
        f"to itself the tap would read {1e6 / t['us_per_record']:,.0f} records/s.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="results", help="file stem for the .md and .json written beside this file")
    args = parser.parse_args()
    config = StackConfig.from_env(Path(os.environ.get("DUALRUN_HOME") or ROOT / ".dualrun"))
    bootstrap = config.bootstrap_servers
    topic = f"bench-tap-{uuid.uuid4().hex[:8]}"
    admin = TopicAdmin(bootstrap)
    admin.create(topic, partitions=1)
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "records": args.records,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
    }  # fmt: skip
    try:
        log(f"producing {args.records:,} records to {topic}")
        results["produce"] = produce(bootstrap, topic, args.records)
        runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "tap": []}
        for i in range(args.repeat):
            wall, cpu, n = timed(["-c", BASELINE, bootstrap, topic, str(args.records)])
            assert n == args.records, n
            runs["baseline"].append((wall, cpu))
            log(f"baseline run {i + 1}: {wall:.2f}s wall, {cpu:.2f}s CPU")
            with tempfile.TemporaryDirectory() as tmp:
                wall, cpu, n = timed(["-c", TAP, bootstrap, topic, str(Path(tmp) / "tap")])
            assert n == args.records, n
            runs["tap"].append((wall, cpu))
            log(f"tap run {i + 1}: {wall:.2f}s wall, {cpu:.2f}s CPU")
        for name, values in runs.items():
            median = statistics.median(w for w, _ in values)
            cpu = statistics.median(c for _, c in values)
            results[name] = {
                "runs": [round(w, 2) for w, _ in values], "cpu_runs": [round(c, 2) for _, c in values],
                "median_s": round(median, 2), "median_cpu_s": round(cpu, 2),
                "rate": round(args.records / median), "us_per_record": round(cpu / args.records * 1e6, 2),
            }  # fmt: skip
        results["ratio"] = round(results["tap"]["median_s"] / results["baseline"]["median_s"], 2)
        results["cpu_ratio"] = round(results["tap"]["median_cpu_s"] / results["baseline"]["median_cpu_s"], 2)
        results["machine"]["load_avg_end"] = os.getloadavg()
    finally:
        admin.delete(topic)
    (HERE / f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / f"{args.out}.md").write_text(markdown(results))
    log(f"wrote {HERE / (args.out + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
