"""Benchmark: `cdc verify` of one table, read whole or by key-range fingerprints, against reading
and comparing both sides whole.

    python bench/cdcverify/run.py --rows 1000000 --out results_1m               # read whole
    python bench/cdcverify/run.py --rows 10000000 --narrow --fingerprint --out results_10m
    python bench/cdcverify/run.py --rows 10000000 --narrow --prepare-only     # load + connector, then
    python bench/cdcverify/run.py --rows 10000000 --narrow --fingerprint --reuse NAME --out results_10m

1. Creates a table of --rows rows in its own database (the wide ledger: id, DECIMAL(18,4),
   VARCHAR, TIMESTAMP(6), DATE, DATETIME(3); --narrow: id, DECIMAL(18,4), DATETIME(3)), registers
   a Debezium connector for it and waits until its snapshot is in Kafka (~13k events/s here).
   Not timed. --reuse NAME skips this for a table loaded earlier (--prepare-only prints NAME).
2. With --fingerprint, changes one row in --permille per mille of the key ranges (--rows-per-range
   rows each) with `sql_log_bin = 0`: changes the log never sees, found as lost updates.
3. Times, one after the other, each in its own child process (its peak RSS its own):
   - raw: the table fetched whole over pymysql (SELECT *) and its change topic consumed whole
     with confluent-kafka (records counted, not decoded): the least any reading of both sides does;
   - whole: `cdc verify` reading the table whole (snapshot, decode, exact text in Arrow chunks,
     DuckDB reconciliation): reading and comparing both sides whole;
   - fingerprint (--fingerprint): `cdc verify` by key-range fingerprints pushed down into
     MariaDB, rows read only for the ranges that differ.
4. Deletes the connector (the database and topic stay for --reuse).

The machine has 2 cores shared with the stack and other work; read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import pymysql  # noqa: E402
from confluent_kafka import Consumer, KafkaException, TopicPartition  # noqa: E402

from cdc.connect import ConnectClient  # noqa: E402
from cdc.topics import quiet_logger  # noqa: E402
from migrate.connector import connector_settings  # noqa: E402
from migrate.spec import (  # noqa: E402
    CdcSpec,
    KafkaSpec,
    OutputBatchSpec,
    OutputSpec,
    OutputStreamSpec,
    PipelineSpec,
    SourceSpec,
    StreamSpec,
)
from migrate.stackconfig import StackConfig  # noqa: E402
from migrate.verify.run import verify  # noqa: E402


def spec_for(stack: StackConfig, name: str, database: str) -> PipelineSpec:
    return PipelineSpec(
        name=name, state_dir=tempfile.mkdtemp(),
        source=SourceSpec(url=f"mysql+pymysql://{stack.db_user}@127.0.0.1:{stack.ports.mariadb}/{database}",
                          password_env="DUALRUN_DB_PASSWORD", default_password=stack.db_password),
        cdc=CdcSpec(connect_url=stack.connect_url, connector=name, topic_prefix=name, user=stack.debezium_user,
                    password_env="DUALRUN_DEBEZIUM_PASSWORD", default_password=stack.debezium_password,
                    tables=(f"{database}.ledger",)),
        kafka=KafkaSpec(bootstrap_servers=stack.bootstrap_servers), stream=StreamSpec(group=name),
        outputs={"ledger": OutputSpec(keys=("id",), batch=OutputBatchSpec(sql="SELECT * FROM ledger"),
                                      stream=OutputStreamSpec(topic=f"{name}-out"))},
    )  # fmt: skip


def connect(stack: StackConfig) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(host="127.0.0.1", port=stack.ports.mariadb, user=stack.db_user,
                           password=stack.db_password, autocommit=True)  # fmt: skip


def count_topic(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False}, logger=quiet_logger())  # fmt: skip
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        consumer.assign([TopicPartition(topic, 0, low)])
        n = 0
        while n < high - low:
            n += sum(1 for m in consumer.consume(10_000, 1.0) if m.error() is None)
        return n
    finally:
        consumer.close()


WIDE = (
    "(id INT PRIMARY KEY, amount DECIMAL(18,4) NOT NULL, note VARCHAR(40), booked_at TIMESTAMP(6) NULL, "
    "day DATE, at DATETIME(3))",
    "seq, seq * 1.0001, CONCAT('note ', seq), TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND, "
    "DATE'2024-01-01' + INTERVAL seq MOD 365 DAY, TIMESTAMP'2024-01-01 00:00:00.125' + INTERVAL seq MINUTE",
)
NARROW = ("(id INT PRIMARY KEY, amount DECIMAL(18,4) NOT NULL, at DATETIME(3))",
          "seq, seq * 1.0001, TIMESTAMP'2024-01-01 00:00:00.125' + INTERVAL seq SECOND")  # fmt: skip


def prepare(stack: StackConfig, name: str, rows: int, narrow: bool) -> None:
    """The table (loaded in 1M-row statements) and its connector."""
    database = f"v_{name}"
    columns, values = NARROW if narrow else WIDE
    with connect(stack) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
        cur.execute(f"CREATE TABLE `{database}`.ledger {columns}")
        for low in range(0, rows, 1_000_000):
            high = min(rows, low + 1_000_000)
            cur.execute(f"INSERT INTO `{database}`.ledger SELECT {values} FROM `{database}`.seq_{low + 1}_to_{high}")
    spec = spec_for(stack, name, database)
    settings = connector_settings(spec)
    ConnectClient(spec.cdc.connect_url, secrets=(settings.password,)).put(name, settings.to_config())


def wait_snapshot(stack: StackConfig, spec: PipelineSpec, rows: int, timeout: float) -> None:
    """Until the topic holds `rows` records and the connector's offset is past its snapshot."""
    topic = spec.cdc.topic(spec.cdc.tables[0])
    consumer = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": "bench-watch"},
                        logger=quiet_logger())  # fmt: skip
    client = ConnectClient(spec.cdc.connect_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[1]
            except KafkaException:  # the topic is not created yet
                high = 0
            offsets = client.offsets(spec.cdc.connector)
            snapshotting = any("snapshot" in (e.get("offset") or {}) for e in offsets)
            if high >= rows and offsets and not snapshotting:
                return
            time.sleep(5)
    finally:
        consumer.close()
    raise SystemExit(f"the snapshot of {topic} did not complete within {timeout:.0f}s")


def break_ranges(stack: StackConfig, database: str, rows: int, per_range: int, permille: float) -> int:
    """One row changed, invisibly to the log, in `permille` per mille of the ranges; rows changed."""
    ranges = max(1, rows // per_range)
    broken = max(1, round(ranges * permille / 1000))
    step = ranges // broken
    with connect(stack) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")  # the change never reaches the binlog, nor the log
        for i in range(broken):
            key = i * step * per_range + per_range // 2
            cur.execute(f"UPDATE `{database}`.ledger SET amount = amount + 1 WHERE id = %s", (key,))
    return broken


def raw(stack: StackConfig, spec: PipelineSpec, rows: int) -> dict[str, Any]:
    database = spec.source.database
    with connect(stack) as conn, conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(f"SELECT * FROM `{database}`.ledger")
        read = sum(1 for _ in cur)
    events = count_topic(stack.bootstrap_servers, spec.cdc.topic(spec.cdc.tables[0]))
    assert read == rows and events >= rows, (read, events)
    return {}


def checked(spec: PipelineSpec, rows: int, broken: int, method: str) -> dict[str, Any]:
    """One `cdc verify`, checked: every row matched but the `broken` ones, each a lost update."""
    result = verify(spec, wait_seconds=600, read_timeout=7200)
    (table,) = result.tables
    expected = [("lost_update", broken)] if broken else []
    assert [(f.cause, f.rows) for f in table.findings] == expected, result.to_dict()
    assert table.matched_rows == rows - broken and (table.ranges is not None) == (method == "fingerprint")
    return {"ranges": table.ranges.to_dict()} if table.ranges is not None else {}


def timed(phase: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`phase` in a child process (fork): its seconds and its own peak RSS."""
    queue: mp.Queue[dict[str, Any]] = mp.Queue()

    def child() -> None:
        t0 = time.monotonic()
        extra = phase()
        seconds = time.monotonic() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put({"seconds": round(seconds, 2), "peak_rss_mb": round(peak), **extra})

    process = mp.get_context("fork").Process(target=child)
    process.start()
    result = queue.get()
    process.join()
    if process.exitcode:
        raise SystemExit(f"phase failed (exit {process.exitcode})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--narrow", action="store_true", help="id, DECIMAL(18,4), DATETIME(3) only")
    parser.add_argument("--fingerprint", action="store_true", help="also time the key-range fingerprint path")
    parser.add_argument("--rows-per-range", type=int, default=10_000)
    parser.add_argument("--permille", type=float, default=1.0, help="ranges with one changed row, per mille")
    parser.add_argument("--reuse", help="the NAME of a table loaded by --prepare-only")
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--skip-whole", action="store_true", help="fingerprint and raw only (memory-bound)")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    stack = StackConfig.from_env(None)
    name = args.reuse or f"bench_cv_{uuid.uuid4().hex[:6]}"
    database = f"v_{name}"
    if not args.reuse:
        prepare(stack, name, args.rows, args.narrow)
    spec = spec_for(stack, name, database)
    if args.prepare_only:
        print(name)
        return
    started = time.monotonic()
    wait_snapshot(stack, spec, args.rows, timeout=7200)
    print(f"snapshot in Kafka after {time.monotonic() - started:.0f}s", flush=True)
    broken = break_ranges(stack, database, args.rows, args.rows_per_range, args.permille) if args.fingerprint else 0
    whole_spec = spec.with_changes(cdc={"verify": {"fingerprint_above_rows": 10**12}})
    fp_spec = spec.with_changes(cdc={"verify": {"fingerprint_tables": list(spec.cdc.tables),
                                                "rows_per_range": args.rows_per_range}})  # fmt: skip
    phases: dict[str, dict[str, Any]] = {}
    try:
        phases["raw"] = timed(lambda: raw(stack, spec, args.rows))
        print("raw", phases["raw"], flush=True)
        if args.fingerprint:
            phases["fingerprint"] = timed(lambda: checked(fp_spec, args.rows, broken, "fingerprint"))
            print("fingerprint", phases["fingerprint"], flush=True)
        if not args.skip_whole:
            phases["whole"] = timed(lambda: checked(whole_spec, args.rows, broken, "whole"))
            print("whole", phases["whole"], flush=True)
    finally:
        ConnectClient(spec.cdc.connect_url).delete(name)
    report(args, phases, broken)


LABELS = {
    "raw": "raw: SELECT * (pymysql) + consume the topic (no decoding, no comparison)",
    "whole": "`cdc verify`, table read whole (snapshot, decode, exact text in Arrow chunks, DuckDB)",
    "fingerprint": "`cdc verify`, key-range fingerprints in MariaDB, differing ranges read",
}


def report(args: argparse.Namespace, phases: dict[str, dict[str, Any]], broken: int) -> None:
    base = phases.get("whole") or phases["raw"]
    results = {
        "rows": args.rows,
        "narrow": args.narrow,
        "broken_ranges": broken,
        "rows_per_range": args.rows_per_range,
        "python": platform.python_version(),
        "phases": phases,
        "ratios_to_whole": {k: round(v["seconds"] / base["seconds"], 2) for k, v in phases.items()},
        "ratios_to_raw": {k: round(v["seconds"] / phases["raw"]["seconds"], 2) for k, v in phases.items()},
    }
    (HERE / f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# cdc verify, {args.rows:,} rows{' (narrow)' if args.narrow else ''} (one run)",
        "",
        f"`python bench/cdcverify/run.py {' '.join(sys.argv[1:])}`",
        "",
        "| | seconds | rows/s | peak RSS MB | vs raw | vs whole |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, phase in phases.items():
        whole = f"{phase['seconds'] / phases['whole']['seconds']:.2f}x" if "whole" in phases else "-"
        lines.append(
            f"| {LABELS[key]} | {phase['seconds']:.2f} | {args.rows / phase['seconds']:,.0f} | "
            f"{phase['peak_rss_mb']:,} | {phase['seconds'] / phases['raw']['seconds']:.2f}x | {whole} |"
        )
    if "fingerprint" in phases:
        r = phases["fingerprint"]["ranges"]
        lines += [
            "",
            f"Fingerprints: {r['ranges']:,} ranges of {r['rows_per_range']:,} rows, {r['differing']:,} "
            f"differing ({broken:,} changed with sql_log_bin=0), {r['rows_read']:,} rows read from MariaDB.",
        ]
    (HERE / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
