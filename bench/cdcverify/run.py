"""Benchmark: `cdc verify` of one table read whole, against reading both sides whole and nothing else.

    python bench/cdcverify/run.py                  # 1M rows
    python bench/cdcverify/run.py --rows 200000 --out results_200000

1. Creates a table of --rows rows (id, DECIMAL(18,4) amount, VARCHAR note, TIMESTAMP(6),
   DATE, DATETIME(3)) in its own database, registers a Debezium connector for it and waits
   until its snapshot is in Kafka. Not timed.
2. Times, in this process, one after the other:
   - the baseline: the table fetched whole over pymysql (SELECT *) and its change topic consumed
     whole with confluent-kafka (records counted, not decoded): the least any verification
     that reads both sides must do;
   - `migrate.verify.run.verify`: the consistent snapshot, the offset check, decoding every
     change event, exact comparison text for both sides and the DuckDB reconciliation.
3. Deletes the connector (the database and topic stay for inspection).

The machine has 2 cores shared with the stack and other work; read the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import pymysql  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    stack = StackConfig.from_env(None)
    name = f"bench_cv_{uuid.uuid4().hex[:6]}"
    database = f"v_{name}"
    with connect(stack) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
        cur.execute(f"CREATE TABLE `{database}`.ledger (id INT PRIMARY KEY, amount DECIMAL(18,4) NOT NULL, "
                    "note VARCHAR(40), booked_at TIMESTAMP(6) NULL, day DATE, at DATETIME(3))")  # fmt: skip
        cur.execute(
            f"INSERT INTO `{database}`.ledger SELECT seq, seq * 1.0001, CONCAT('note ', seq), "
            "TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND, DATE'2024-01-01' + INTERVAL seq MOD 365 DAY, "
            f"TIMESTAMP'2024-01-01 00:00:00.125' + INTERVAL seq MINUTE FROM `{database}`.seq_1_to_{args.rows}"
        )
    spec = spec_for(stack, name, database)
    settings = connector_settings(spec)
    client = ConnectClient(spec.cdc.connect_url, secrets=(settings.password,))
    client.put(name, settings.to_config())
    topic = spec.cdc.topic(spec.cdc.tables[0])
    try:
        started = time.monotonic()
        warm = verify(spec, wait_seconds=1800, read_timeout=1800)  # waits for the snapshot; not timed
        assert warm.verdict == "clean", warm.to_dict()
        print(f"snapshot in Kafka and first verify after {time.monotonic() - started:.0f}s", flush=True)

        t0 = time.monotonic()
        with connect(stack) as conn, conn.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute(f"SELECT * FROM `{database}`.ledger")
            read = sum(1 for _ in cur)
        events = count_topic(stack.bootstrap_servers, topic)
        baseline = time.monotonic() - t0
        assert read == args.rows and events == args.rows, (read, events)

        t0 = time.monotonic()
        result = verify(spec, wait_seconds=120, read_timeout=1800)
        verified = time.monotonic() - t0
        assert result.verdict == "clean" and result.tables[0].matched_rows == args.rows, result.to_dict()
    finally:
        client.delete(name)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results = {
        "rows": args.rows, "baseline_s": round(baseline, 2), "verify_s": round(verified, 2),
        "ratio": round(verified / baseline, 2), "verify_rows_per_s": round(args.rows / verified),
        "peak_rss_mb": round(peak_mb), "python": platform.python_version(),
    }  # fmt: skip
    (HERE / f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / f"{args.out}.md").write_text(
        f"# cdc verify, {args.rows:,} rows read whole (one run)\n\n"
        "| | seconds | rows/s | ratio |\n| --- | ---: | ---: | ---: |\n"
        f"| baseline: SELECT * (pymysql) + consume the topic (no decoding, no comparison) | {baseline:.2f} | "
        f"{args.rows / baseline:,.0f} | 1.00x |\n"
        f"| `cdc verify` (snapshot, decode, exact text, DuckDB reconciliation) | {verified:.2f} | "
        f"{args.rows / verified:,.0f} | {verified / baseline:.2f}x |\n\n"
        f"Peak RSS of the process: {peak_mb:,.0f} MB.\n"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
