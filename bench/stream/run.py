"""Streaming-job benchmarks on the real local stack, results written to bench/stream/results.{md,json}.

    python bench/stream/run.py                 # 1M orders (about 10 minutes on 2 cores)
    python bench/stream/run.py --orders 200000 # quicker

1. Throughput with exactly-once ON and OFF, side by side in one run: Debezium first
   snapshots N orders into Kafka (so Debezium is not the bottleneck), then the job
   (pinned to one core with taskset) consumes them from the beginning, once per mode.
2. Commit-to-changelog latency at a fixed 1000 inserts/s: the writer records when each
   INSERT committed; the job's changelog records when the row was written.
3. The batch job and the as-of reconciliation over the same N orders.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pymysql
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cdc.topics import TopicAdmin  # noqa: E402
from migrate.asof import reconcile_spec  # noqa: E402
from migrate.batch import run_batch  # noqa: E402
from migrate.connector import ensure_connector  # noqa: E402
from migrate.examples import shop_orders  # noqa: E402
from migrate.spec import CdcSpec, KafkaSpec, PipelineSpec, SourceSpec, StreamSpec  # noqa: E402
from migrate.stack import Stack  # noqa: E402
from migrate.stackconfig import StackConfig  # noqa: E402
from migrate.stream.changelog import output_glob  # noqa: E402
from migrate.stream.status import read_status  # noqa: E402

OUT = Path(__file__).parent


def sql(config: StackConfig, *statements: str, database: str | None = None) -> list[Any]:
    conn = pymysql.connect(host="127.0.0.1", port=config.ports.mariadb, user=config.db_user,
                           password=config.db_password, database=database, autocommit=True)  # fmt: skip
    rows: list[Any] = []
    with conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            rows = list(cur.fetchall())
    return rows


def make_spec(config: StackConfig, database: str, name: str, state_dir: Path, eos: bool) -> PipelineSpec:
    spec = PipelineSpec(
        name=name, state_dir=str(state_dir),
        source=SourceSpec(url=f"mysql+pymysql://{config.db_user}@127.0.0.1:{config.ports.mariadb}/{database}",
                          password_env="DUALRUN_DB_PASSWORD", default_password=config.db_password),
        cdc=CdcSpec(connect_url=config.connect_url, connector=f"bench-{database}", topic_prefix=f"bench{database}",
                    user=config.debezium_user, password_env="DUALRUN_DEBEZIUM_PASSWORD",
                    default_password=config.debezium_password, server_id=400000 + uuid.uuid4().int % 100000,
                    tables=(f"{database}.customers", f"{database}.orders")),
        kafka=KafkaSpec(bootstrap_servers=config.bootstrap_servers),
        stream=StreamSpec(group=name, pipeline="migrate.examples.shop_orders:PIPELINE", transactional_id=name,
                          exactly_once=eos, state_topic=f"{name}-state", dead_letter_topic=f"{name}-dlq"),
        outputs=shop_orders.outputs(name), local=True,
    )  # fmt: skip
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "dualrun.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    return spec


def load_source(config: StackConfig, database: str, orders: int, customers: int = 1000) -> None:
    sql(config,
        f"CREATE DATABASE {database}",
        f"CREATE TABLE {database}.customers LIKE shop.customers",
        f"CREATE TABLE {database}.orders LIKE shop.orders",
        f"USE {database}",  # the seq_1_to_N sequence tables live in the current database
        f"INSERT INTO {database}.customers (id, name, tier) SELECT seq, CONCAT('customer ', seq), "
        f"ELT(1 + seq % 3, 'GOLD', 'SILVER', 'BRONZE') FROM seq_1_to_{customers}",
        f"INSERT INTO {database}.orders (order_id, customer_id, amount, status, created_at, updated_at) "
        f"SELECT seq, 1 + seq % {customers}, ROUND((seq * 7919 % 90000) / 100, 2), "
        f"ELT(1 + seq % 4, 'NEW', 'PAID', 'SHIPPED', 'CANCELLED'), "
        f"NOW(3) - INTERVAL (seq % 7) DAY, NOW(3) FROM seq_1_to_{orders}")  # fmt: skip


def topic_total(config: StackConfig, spec: PipelineSpec) -> int:
    admin = TopicAdmin(config.bootstrap_servers)
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": config.bootstrap_servers, "group.id": "bench-count"})
    total = 0
    for table in spec.cdc.tables:
        topic = spec.cdc.topic(table)
        if not admin.exists(topic):
            continue
        for p in admin.admin.list_topics(topic, timeout=10).topics[topic].partitions:
            total += consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
    consumer.close()
    return total


def drop_topics(config: StackConfig, prefixes: tuple[str, ...]) -> None:
    """Delete the benchmark's topics: each run writes a few GB that nothing reads again."""
    admin = TopicAdmin(config.bootstrap_servers)
    for topic in admin.admin.list_topics(timeout=10).topics:
        if topic.startswith(prefixes):
            admin.delete(topic)


def wait_snapshot(config: StackConfig, spec: PipelineSpec, expected: int) -> float:
    started = time.monotonic()
    ensure_connector(spec)
    while topic_total(config, spec) < expected:
        time.sleep(1)
    return time.monotonic() - started


def throughput(spec: PipelineSpec, total: int, cpu: int) -> dict[str, Any]:
    """Run the job on one core until it has committed `total` input events."""
    argv = ["taskset", "-c", str(cpu), sys.executable, "-m", "migrate.cli", "run", "stream",
            "--spec", str(Path(spec.state_dir) / "dualrun.yaml"), "--state-dir", spec.state_dir]  # fmt: skip
    log = open(Path(spec.state_dir) / "job.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    samples: list[tuple[float, int, float]] = []
    launched = time.monotonic()
    try:
        while True:
            status = read_status(spec)
            if status is not None and status.pid == proc.pid and status.transactions > 0:
                if not samples or samples[-1][1] < total:
                    samples.append((status.updated_at, status.events_in, cpu_seconds(proc.pid)))
                if status.events_in >= total and status.lag == 0:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"job exited: see {log.name}")
            if time.monotonic() - launched > 1800:
                raise RuntimeError("job did not finish in 30 minutes")
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    (t0, n0, c0), (t1, n1, c1) = samples[0], samples[-1]
    # From the first committed transaction to the last: start-up (state restore, group join) excluded.
    # CPU time (every thread of the job, Kafka client included) is steadier than the rate on a shared
    # machine: its inverse is what the job would sustain with its core to itself.
    return {"events": total, "seconds": round(t1 - t0, 2), "events_per_s": round((n1 - n0) / (t1 - t0)),
            "cpu_us_per_event": round(1e6 * (c1 - c0) / (n1 - n0), 1)}  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, every thread (taskset execs the job: same pid)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(config: StackConfig, spec: PipelineSpec, rate: int, seconds: int) -> dict[str, Any]:
    """Insert at a fixed rate with the job running; commit time vs changelog write time per order."""
    argv = [sys.executable, "-m", "migrate.cli", "run", "stream", "--spec",
            str(Path(spec.state_dir) / "dualrun.yaml"), "--state-dir", spec.state_dir]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while (s := read_status(spec)) is None or s.pid != proc.pid or (s.lag or 0) > 0:
            time.sleep(0.2)
        committed: dict[int, float] = {}
        conn = pymysql.connect(host="127.0.0.1", port=config.ports.mariadb, user=config.db_user,
                               password=config.db_password, database=spec.source.database, autocommit=True)  # fmt: skip
        base = 10_000_000
        start = time.monotonic()
        with conn, conn.cursor() as cur:
            for i in range(rate * seconds):
                target = start + i / rate
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                cur.execute("INSERT INTO orders (order_id, customer_id, amount, status) VALUES (%s, 1, 42.00, 'NEW')",
                            (base + i,))  # fmt: skip
                committed[base + i] = time.time()
        achieved = len(committed) / (time.monotonic() - start)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            s = read_status(spec)
            if s is not None and s.lag == 0 and s.updated_at > max(committed.values()) + 1:
                break
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(60)
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT order_id, epoch_us(min(__processed_at)) FROM read_parquet(?) WHERE order_id >= ? GROUP BY 1",
            [output_glob(spec.changelog_path, "orders_enriched"), base],
        ).fetchall()
    # __processed_at is naive UTC: the same clock as time.time().
    lat = sorted((us / 1e6 - committed[oid]) * 1000 for oid, us in rows if oid in committed)
    q = statistics.quantiles(lat, n=100)
    return {"rate_target": rate, "rate_achieved": round(achieved), "rows": len(lat), "p50_ms": round(q[49], 1),
            "p95_ms": round(q[94], 1), "p99_ms": round(q[98], 1), "max_ms": round(lat[-1], 1)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--latency-seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="throughput runs per mode, alternating")
    args = parser.parse_args()
    config = StackConfig.from_env(ROOT / ".dualrun")
    Stack(config).up()
    run = uuid.uuid4().hex[:6]
    database = f"bench_{run}"
    work = Path(tempfile.mkdtemp(prefix="dualrun-bench-"))
    results: dict[str, Any] = {"orders": args.orders, "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    try:
        print(f"loading {args.orders} orders into {database}", flush=True)
        t = time.monotonic()
        load_source(config, database, args.orders)
        results["load_seconds"] = round(time.monotonic() - t, 1)
        eos = make_spec(config, database, f"bench-{run}-eos", work / "eos", eos=True)
        total = args.orders + 1000
        print("waiting for Debezium's snapshot", flush=True)
        snap = wait_snapshot(config, eos, total)
        results["debezium_snapshot"] = {"events": total, "seconds": round(snap, 1), "events_per_s": round(total / snap)}
        # ON and OFF alternate, each from the start of the topics with its own group: the machine's
        # speed drifts within minutes, and alternating spreads the drift over both modes.
        runs: dict[str, list[dict[str, Any]]] = {"exactly_once_on": [], "exactly_once_off": []}
        for round_ in range(args.rounds):
            for label, flag in (("exactly_once_on", True), ("exactly_once_off", False)):
                name = f"bench-{run}-{'eos' if flag else 'plain'}-{round_}"
                spec = eos if flag and round_ == 0 else make_spec(config, database, name, work / name, eos=flag)
                print(f"throughput, {label}, round {round_ + 1}", flush=True)
                runs[label].append(throughput(spec, total, cpu=1))
                print(runs[label][-1], flush=True)
        modes = {label: _median_run(samples) for label, samples in runs.items()}
        results["throughput"] = modes
        results["eos_cost_ratio"] = round(
            modes["exactly_once_off"]["events_per_s"] / modes["exactly_once_on"]["events_per_s"], 2
        )

        print("batch job and as-of reconciliation", flush=True)
        t = time.monotonic()
        batch = run_batch(eos)
        results["batch_seconds"] = round(time.monotonic() - t, 1)
        # The stream must pass the batch position: one more change after the snapshot.
        sql(config, f"UPDATE {database}.customers SET name = 'moved on' WHERE id = 1")
        proc = subprocess.Popen([sys.executable, "-m", "migrate.cli", "run", "stream", "--spec",
                                 str(work / "eos" / "dualrun.yaml"), "--state-dir", str(work / "eos")], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        t = time.monotonic()
        rec = reconcile_spec(eos, batch.run_id, wait=300, record=False)
        results["reconcile_seconds_including_wait"] = round(time.monotonic() - t, 1)
        proc.terminate()
        proc.wait(60)
        t = time.monotonic()
        rec = reconcile_spec(eos, batch.run_id, wait=0, record=False)
        results["reconcile_seconds"] = round(time.monotonic() - t, 1)
        results["reconcile_verdict"] = rec.verdict
        results["reconcile_rows"] = {n: r.left.rows for n, r in rec.outputs.items()}

        print("latency at 1000/s", flush=True)
        lat_spec = make_spec(config, database, f"bench-{run}-lat", work / "lat", eos=True)
        results["latency_1000_per_s"] = latency(config, lat_spec, 1000, args.latency_seconds)
    finally:
        for connector in (f"bench-{database}",):
            subprocess.run([sys.executable, "-m", "migrate.cli", "cdc", "delete", "--name", connector],
                           cwd=ROOT, capture_output=True)  # fmt: skip
        sql(config, f"DROP DATABASE IF EXISTS {database}")
        drop_topics(config, (f"bench-{run}-", f"bench{database}."))  # the jobs' outputs, then Debezium's
        shutil.rmtree(work, ignore_errors=True)
    suffix = "" if args.orders == 1_000_000 else f"_{args.orders}"
    (OUT / f"results{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / f"results{suffix}.md").write_text(render(results))
    print(render(results))
    return 0


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, with every run's rate and CPU per event alongside."""
    middle = sorted(runs, key=lambda r: r["events_per_s"])[len(runs) // 2]
    return {**middle, "runs_events_per_s": [r["events_per_s"] for r in runs],
            "runs_cpu_us_per_event": [r["cpu_us_per_event"] for r in runs]}  # fmt: skip


def render(r: dict[str, Any]) -> str:
    on, off = r["throughput"]["exactly_once_on"], r["throughput"]["exactly_once_off"]
    lat = r["latency_1000_per_s"]
    return "\n".join([
        f"# Streaming job benchmark ({r['orders']} orders, {r['machine']})",
        "",
        "| measurement | value |",
        "| --- | --- |",
        f"| Debezium snapshot into Kafka | {r['debezium_snapshot']['events_per_s']} events/s |",
        f"| stream job, exactly-once ON, one core (median of {len(on['runs_events_per_s'])} runs) | "
        f"{on['events_per_s']} events/s ({on['seconds']} s); runs {_listed(on['runs_events_per_s'])} |",
        f"| stream job, exactly-once OFF, one core (median of {len(off['runs_events_per_s'])} runs) | "
        f"{off['events_per_s']} events/s ({off['seconds']} s); runs {_listed(off['runs_events_per_s'])} |",
        f"| CPU per event (all of the job's threads), ON / OFF | {on['cpu_us_per_event']} / "
        f"{off['cpu_us_per_event']} us: {1e6 / on['cpu_us_per_event']:,.0f} / {1e6 / off['cpu_us_per_event']:,.0f} "
        f"events/s per core-second |",
        f"| cost of exactly-once (OFF/ON) | {r['eos_cost_ratio']}x |",
        f"| stream job / Debezium snapshot rate (EOS on) | "
        f"{on['events_per_s'] / r['debezium_snapshot']['events_per_s']:.2f}x |",
        f"| commit-to-changelog latency at {lat['rate_achieved']}/s | p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, "
        f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms |",
        f"| batch job over {r['orders']} orders | {r['batch_seconds']} s |",
        f"| as-of reconciliation of all outputs | {r['reconcile_seconds']} s ({r['reconcile_verdict']}) |",
        "",
    ])  # fmt: skip


def _listed(values: list[int]) -> str:
    return ", ".join(f"{v}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
