"""Benchmark: the local stack and the CDC edge, measured in one run.

    python bench/cdc/run.py                       # everything (~10 minutes), writes results.md/.json
    python bench/cdc/run.py --only latency --seconds 10 --out dev   # a quick look, writes dev.md/.json

1. cold `stack up`: a second stack on other ports with a fresh state directory whose
   lib/ is a hardlink copy of the main stack's (so Maven is not run), `Stack.up()`
   timed per service, then `down()`; medians of --repeat runs.
2. Debezium snapshot rate: --rows orders loaded into a unique database with
   INSERT ... SELECT from MariaDB's sequence engine, a uniquely named connector
   registered, timed until every `r` event is in the topic (end offsets).
3. commit-to-Kafka latency: the workload generator inserts at a fixed rate on a unique
   table and timestamps each commit; a consumer in another process timestamps each
   arrival on the same clock (CLOCK_MONOTONIC is system-wide); latency = arrival - commit.
   Once with poll.interval.ms 50 (dualrun's default) and once with Debezium's 500.

Steps 2 and 3 run by default on a private stack (the same second-stack ports, started
once, stopped and deleted at the end): the shared main stack's Connect worker hosts every
connector other tests left behind, each decoding the whole binlog, so numbers taken there
measure them too, and a 1M-row snapshot there loads everyone's worker. `--stack main`
measures on the shared stack instead (unique names; everything created is removed).
The machine is shared, so each step first waits (bounded) for the load average to drop,
and the load is recorded with the results. Heavy steps run one at a time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import pymysql
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from cdc.connect import ConnectClient  # noqa: E402
from cdc.connector import ConnectorSettings  # noqa: E402
from cdc.envelope import ChangeEvent, decode  # noqa: E402
from cdc.topics import TopicAdmin, quiet_logger  # noqa: E402
from migrate.examples.shop_orders.workload import Workload, WorkloadMix  # noqa: E402
from migrate.stack import Stack  # noqa: E402
from migrate.stackconfig import StackConfig  # noqa: E402

SECOND_STACK = {"mariadb": 13306, "kafka": 19092, "controller": 19093, "connect": 18083, "postgres": 15432}
INSERTS_ONLY = WorkloadMix(insert=1, update=0, delete=0, cancel=0, customer_change=0)
STEPS = ("cold", "snapshot", "latency")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was actually observed."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def wait_calm(limit: float, patience: float) -> list[float]:
    """Wait (bounded) for the 1-minute load average to drop below `limit`: the machine is shared,
    and a heavy step started while others' jobs run measures them as much as this stack."""
    deadline = time.monotonic() + patience
    while os.getloadavg()[0] > limit and time.monotonic() < deadline:
        time.sleep(5)
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- 1. cold stack up


@dataclass(frozen=True)
class ColdStart:
    """One cold start of a second stack: seconds per step of `Stack.up()`, then `down()`."""

    steps: dict[str, float]
    up_total: float
    down: float

    def to_dict(self) -> dict[str, Any]:
        return {"steps": {k: round(v, 2) for k, v in self.steps.items()}, "up_total": round(self.up_total, 2),
                "down": round(self.down, 2)}  # fmt: skip


def link_copy(src: Path, dst: Path) -> None:
    """Hardlinks when on the same filesystem (instant, no extra disk), a real copy otherwise."""
    try:
        shutil.copytree(src, dst, copy_function=os.link)
    except OSError:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)


@contextmanager
def private_stack(lib: Path) -> Iterator[tuple[StackConfig, dict[str, float]]]:
    """A second stack on SECOND_STACK ports with a fresh state dir whose lib/ comes from `lib`;
    yields its config and `up()` timings; stopped and deleted afterwards."""
    state = Path(tempfile.mkdtemp(prefix="dualrun-bench-stack-"))
    try:
        link_copy(lib, state / "lib")
        config = StackConfig.from_env(state, **SECOND_STACK)
        stack = Stack(config)
        try:
            yield config, stack.up()
        finally:
            stack.down()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def cold_start(lib: Path) -> ColdStart:
    state = Path(tempfile.mkdtemp(prefix="dualrun-bench-stack-"))
    try:
        link_copy(lib, state / "lib")
        stack = Stack(StackConfig.from_env(state, **SECOND_STACK))
        started = time.monotonic()
        try:
            steps = stack.up()
            up_total = time.monotonic() - started
        finally:
            stopping = time.monotonic()
            stack.down()
            down = time.monotonic() - stopping
        return ColdStart(steps, up_total, down)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def bench_cold(lib: Path, repeat: int) -> dict[str, Any]:
    runs = []
    for i in range(repeat):
        log(f"cold stack up {i + 1}/{repeat} on ports {SECOND_STACK}")
        runs.append(cold_start(lib))
        log(f"  up {runs[-1].up_total:.1f}s {runs[-1].to_dict()['steps']}, down {runs[-1].down:.1f}s")
    names = list(runs[0].steps)
    return {
        "runs": [r.to_dict() for r in runs],
        "median": {
            "steps": {n: round(statistics.median(r.steps[n] for r in runs), 2) for n in names},
            "up_total": round(statistics.median(r.up_total for r in runs), 2),
            "down": round(statistics.median(r.down for r in runs), 2),
        },
    }


# ---------------------------------------------------------------- shared helpers


def mysql(config: StackConfig, database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=config.ports.mariadb, user=config.db_user,
                           password=config.db_password, database=database, autocommit=True)  # fmt: skip


@contextmanager
def scratch_database(config: StackConfig, prefix: str) -> Iterator[str]:
    """A uniquely named database with the reference tables, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with mysql(config) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"CREATE TABLE `{name}`.customers LIKE shop.customers")
        cur.execute(f"CREATE TABLE `{name}`.orders LIKE shop.orders")
    try:
        yield name
    finally:
        with mysql(config) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def settings_for(config: StackConfig, name: str, database: str, poll_interval_ms: int = 50) -> ConnectorSettings:
    return ConnectorSettings(
        name=name, kind="mariadb", hostname="127.0.0.1", port=config.ports.mariadb,
        user=config.debezium_user, password=config.debezium_password, databases=(database,),
        tables=(f"{database}.orders",), bootstrap_servers=config.bootstrap_servers, topic_prefix=name,
        server_id=300000 + uuid.uuid4().int % 100000, poll_interval_ms=poll_interval_ms,
    )  # fmt: skip


@contextmanager
def connector(config: StackConfig, settings: ConnectorSettings) -> Iterator[ConnectClient]:
    """Registered for the block; then deleted with every topic it created."""
    client = ConnectClient(config.connect_url, secrets=(config.debezium_password,))
    client.put(settings.name, settings.to_config())
    try:
        yield client
    finally:
        try:
            client.delete(settings.name)
            admin = TopicAdmin(config.bootstrap_servers)
            prefix = settings.topic_prefix
            for topic in admin.admin.list_topics(timeout=15).topics:
                if topic == prefix or topic.startswith(prefix + ".") or topic == settings.heartbeat_topic:
                    admin.delete(topic)
        except Exception as exc:  # noqa: BLE001 - never hide the step's own error behind the cleanup's
            log(f"could not remove connector {settings.name} and its topics: {exc}")


def watermark_consumer(config: StackConfig) -> Consumer:
    return Consumer({"bootstrap.servers": config.bootstrap_servers, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False}, logger=quiet_logger())  # fmt: skip


def end_offset(consumer: Consumer, topic: str) -> int:
    """Records in the topic so far (0 while it does not exist yet)."""
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5, cached=False)
    except KafkaException:
        return 0
    return max(int(high), 0)


# ---------------------------------------------------------------- 2. snapshot rate


def load_orders(config: StackConfig, database: str, rows: int, chunk: int = 100_000) -> float:
    """Bulk-load `rows` orders server-side from the sequence engine; returns seconds."""
    started = time.monotonic()
    with mysql(config, database) as conn, conn.cursor() as cur:
        for low in range(1, rows + 1, chunk):
            high = min(low + chunk - 1, rows)
            cur.execute(
                "INSERT INTO orders (order_id, customer_id, amount, status, created_at, updated_at) "
                "SELECT seq, 1 + seq % 50, (seq * 7919 % 250000) / 100, "
                "ELT(1 + seq % 4, 'NEW', 'PAID', 'SHIPPED', 'CANCELLED'), "
                "NOW(3) - INTERVAL seq % 345600 SECOND, NOW(3) "
                f"FROM seq_{low}_to_{high}"
            )
    return time.monotonic() - started


def bench_snapshot(config: StackConfig, rows: int) -> dict[str, Any]:
    with scratch_database(config, "bench_snap") as database:
        log(f"loading {rows:,} orders into {database}")
        load_seconds = load_orders(config, database, rows)
        log(f"  loaded in {load_seconds:.1f}s; registering the connector")
        settings = settings_for(config, f"bench-snap-{uuid.uuid4().hex[:8]}", database)
        topic = settings.table_topic(f"{database}.orders")
        watch = watermark_consumer(config)
        samples: list[tuple[float, int]] = []
        registered = time.monotonic()
        with connector(config, settings):
            deadline = registered + 1800
            while time.monotonic() < deadline:
                count = end_offset(watch, topic)
                samples.append((time.monotonic() - registered, count))
                if count >= rows:
                    break
                time.sleep(0.25)
            total = samples[-1][0]
            if samples[-1][1] < rows:
                raise RuntimeError(f"snapshot incomplete after {total:.0f}s: {samples[-1][1]} of {rows} records")
            last = last_event(config, topic, samples[-1][1] - 1)
        watch.close()
    first = next(t for t, n in samples if n > 0)
    t10 = next(t for t, n in samples if n >= rows * 0.1)
    t90 = next(t for t, n in samples if n >= rows * 0.9)
    result = {
        "rows": rows, "load_seconds": round(load_seconds, 1), "seconds_to_first_record": round(first, 2),
        "seconds_total": round(total, 2), "rows_per_s": round(rows / total),
        "steady_rows_per_s": round(rows * 0.8 / (t90 - t10)) if t90 > t10 else None,
        "last_record": last,
        "connector": {k: v for k, v in settings.to_config().items()
                      if k in ("snapshot.mode", "poll.interval.ms", "decimal.handling.mode")},
        "samples": [(round(t, 2), n) for t, n in samples[:: max(1, len(samples) // 40)]],
    }  # fmt: skip
    log(f"  snapshot: {rows:,} rows in {total:.1f}s = {result['rows_per_s']:,} rows/s")
    return result


def last_event(config: StackConfig, topic: str, offset: int) -> dict[str, Any]:
    """The final record decoded: it must be a snapshot read of the last row."""
    consumer = watermark_consumer(config)
    consumer.assign([TopicPartition(topic, 0, offset)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                event = decode(str(msg.topic()), msg.key(), msg.value())
                if not isinstance(event, ChangeEvent):
                    break
                return {"offset": offset, "op": event.op, "snapshot": event.snapshot, "key": event.key}
    finally:
        consumer.close()
    raise RuntimeError(f"could not read the last record of {topic}")


# ---------------------------------------------------------------- 3. commit-to-Kafka latency


@dataclass(frozen=True)
class Arrival:
    monotonic: float
    wall_ms: float
    ts_ms: int | None  # when Debezium processed the change (its `ts_ms`)
    op: str


def consume(bootstrap: str, topic: str, start: int, first_id: int, count: int, ready: EventType,
            out: Connection, timeout: float) -> None:  # fmt: skip
    """Child process: timestamp every arrival of ids first_id..first_id+count-1."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100}, logger=quiet_logger())  # fmt: skip
    # Start at the last record already there: receiving it proves the fetch loop is live
    # before the writer starts, so consumer start-up never counts as latency.
    consumer.assign([TopicPartition(topic, 0, start if start >= 0 else OFFSET_BEGINNING)])
    arrivals: dict[int, Arrival] = {}
    deadline = time.monotonic() + timeout
    while len(arrivals) < count and time.monotonic() < deadline:
        # poll(), not consume(n, timeout): consume blocks until n records or the timeout, which
        # would add up to the timeout to every record. Decoding (~80 us) keeps up at these rates.
        msg = consumer.poll(0.1)
        if msg is None or msg.error():
            continue
        now, wall = time.monotonic(), time.time() * 1000
        ready.set()
        event = decode(str(msg.topic()), msg.key(), msg.value())
        order_id = int(event.key["order_id"])
        if isinstance(event, ChangeEvent) and first_id <= order_id < first_id + count:
            arrivals[order_id] = Arrival(now, wall, event.ts_ms, event.op)
    consumer.close()
    out.send({k: asdict(v) for k, v in arrivals.items()})
    out.close()


@dataclass(frozen=True)
class LatencyRun:
    poll_interval_ms: int
    target_rate: float
    achieved_rate: float
    events: int
    received: int
    latency_ms: dict[str, float]
    debezium_ms_p50: float | None  # commit -> Debezium's ts_ms (wall clocks, ms resolution)
    delivery_ms_p50: float | None  # Debezium's ts_ms -> consumer
    load_avg_1m: float  # at the end of the run: how busy the shared machine was
    ops: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(config: StackConfig, workload: Workload, database: str, topic: str, poll: int, rate: float,
            seconds: float) -> LatencyRun:  # fmt: skip
    events = int(rate * seconds)
    with mysql(config, database) as conn, conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(order_id), 0) FROM orders")
        row = cur.fetchone()
    first_id = int(row[0]) + 1 if row else 1  # the planner continues after the highest id
    watch = watermark_consumer(config)
    start = end_offset(watch, topic) - 1
    watch.close()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=consume, args=(config.bootstrap_servers, topic, start, first_id, events, ready, send,
                                              seconds + 90))  # fmt: skip
    child.start()
    send.close()
    if not ready.wait(60):
        child.kill()
        raise RuntimeError("the latency consumer never received the warm-up record")
    commits: list[tuple[float, float]] = []

    def committed(_: int) -> None:
        # Called right after each autocommitted INSERT returns: the commit is durable and visible.
        commits.append((time.monotonic(), time.time() * 1000))

    stats = workload.run(events=events, rate=rate, progress=committed)
    raw: dict[int, dict[str, Any]] = receive.recv()
    child.join(10)
    latencies, debezium, delivery = [], [], []
    ops: dict[str, int] = {}
    for i, (mono, wall) in enumerate(commits):
        got = raw.get(first_id + i)
        if got is None:
            continue
        ops[got["op"]] = ops.get(got["op"], 0) + 1
        latencies.append((got["monotonic"] - mono) * 1000)
        if got["ts_ms"] is not None:
            debezium.append(got["ts_ms"] - wall)
            delivery.append(got["wall_ms"] - got["ts_ms"])
    summary = {
        "p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "p99": percentile(latencies, 99),
        "max": max(latencies), "mean": statistics.fmean(latencies),
    } if latencies else {}  # fmt: skip
    return LatencyRun(
        poll_interval_ms=poll, target_rate=rate, achieved_rate=round(stats.rate, 1), events=stats.events,
        received=len(latencies), latency_ms={k: round(v, 1) for k, v in summary.items()},
        debezium_ms_p50=round(statistics.median(debezium), 1) if debezium else None,
        delivery_ms_p50=round(statistics.median(delivery), 1) if delivery else None,
        load_avg_1m=round(os.getloadavg()[0], 2), ops=ops,
    )  # fmt: skip


def wait_for_records(config: StackConfig, topic: str, total: int, timeout: float = 120) -> None:
    """Until the table topic holds `total` records (one per insert; transaction markers go elsewhere)."""
    watch = watermark_consumer(config)
    deadline = time.monotonic() + timeout
    while end_offset(watch, topic) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    watch.close()


def bench_latency(
    config: StackConfig, rates: list[float], polls: list[int], seconds: float, warmup: float
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for poll in polls:
        with scratch_database(config, "bench_lat") as database:
            url = f"mysql+pymysql://{config.db_user}@127.0.0.1:{config.ports.mariadb}/{database}"
            workload = Workload(url, config.db_password, database=database, seed=11, mix=INSERTS_ONLY)
            workload.seed()
            settings = settings_for(config, f"bench-lat-{uuid.uuid4().hex[:8]}", database, poll_interval_ms=poll)
            topic = settings.table_topic(f"{database}.orders")
            with connector(config, settings):
                # Warm-up: one insert, so the topic exists and Debezium is streaming, not snapshotting.
                inserted = workload.run(events=1).events
                wait_for_records(config, topic, inserted)
                for rate in rates:
                    # Then a few unmeasured seconds at the rate: a fresh worker's JIT and the producer's
                    # connections warm up here, not inside the percentiles.
                    inserted += workload.run(events=int(rate * warmup), rate=rate).events
                    wait_for_records(config, topic, inserted)
                    log(f"latency: poll.interval.ms={poll}, {rate:g} inserts/s for {seconds:g}s")
                    run = measure(config, workload, database, topic, poll, rate, seconds)
                    log(f"  {run.latency_ms} achieved {run.achieved_rate}/s received {run.received}/{run.events}")
                    runs.append(run.to_dict())
                    inserted += run.events
            workload.close()
    return runs


# ---------------------------------------------------------------- report


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = ["# CDC benchmark: local stack, Debezium snapshot, commit-to-Kafka latency", "",
             f"Run {results['started_at']}; {m['cpus']} CPUs shared with other running stacks and tests "
             f"(load average at start {m['load_avg_at_start']}); Python {m['python']}. Snapshot and latency ran on "
             f"the {results['settings'].get('stack', 'main')} stack.", ""]  # fmt: skip
    loads = results.get("load_avg", {})
    if loads:
        lines += [
            "1-minute load average (2 CPUs) at the start and end of each step: "
            + "; ".join(f"{k} {v['start'][0]} -> {v.get('end', ['?'])[0]}" for k, v in loads.items()),
            "",
        ]
    if "cold" in results:
        cold = results["cold"]
        med = cold["median"]
        lines += ["## Cold `stack up` (fresh state dir, artifacts cached)", "",
                  f"Medians of {len(cold['runs'])} runs on ports {SECOND_STACK}, seconds.", "",
                  "| run | " + " | ".join(med["steps"]) + " | up total | down |",
                  "|---|" + "---|" * (len(med["steps"]) + 2)]  # fmt: skip
        for label, run in [("median", med), *[(f"run {i + 1}", r) for i, r in enumerate(cold["runs"])]]:
            cells = [f"{v:.2f}" for v in run["steps"].values()]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {run['up_total']:.2f} | {run['down']:.2f} |")
        lines.append("")
    if "snapshot" in results:
        s = results["snapshot"]
        lines += ["## Debezium snapshot", "",
                  "| rows | load (INSERT ... SELECT) s | first record s | all records s | rows/s | "
                  "steady rows/s (10%-90%) | last record |",
                  "|---|---|---|---|---|---|---|",
                  f"| {s['rows']:,} | {s['load_seconds']} | {s['seconds_to_first_record']} | {s['seconds_total']} | "
                  f"{s['rows_per_s']:,} | {s['steady_rows_per_s']:,} | op={s['last_record']['op']}, "
                  f"snapshot={s['last_record']['snapshot']} |", ""]  # fmt: skip
    if "latency" in results:
        lines += ["## Commit-to-Kafka latency (ms)", "",
                  "Commit = the autocommitted INSERT returned in the writer; arrival = the consumer (another "
                  "process) got the record; same monotonic clock.", "",
                  "| poll.interval.ms | target/s | achieved/s | received | p50 | p95 | p99 | max | mean | "
                  "commit->Debezium p50 | Debezium->consumer p50 | load 1m |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in results["latency"]:
            lat = r["latency_ms"]
            cells = [r["poll_interval_ms"], f"{r['target_rate']:g}", f"{r['achieved_rate']:g}",
                     f"{r['received']}/{r['events']}", *(lat.get(k) for k in ("p50", "p95", "p99", "max", "mean")),
                     r["debezium_ms_p50"], r["delivery_ms_p50"], r["load_avg_1m"]]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".dualrun", help="the running main stack")
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    parser.add_argument("--repeat", type=int, default=3, help="cold starts (median reported)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the snapshot benchmark")
    parser.add_argument("--rates", default="200,1000", help="insert rates for the latency benchmark")
    parser.add_argument("--polls", default="50,500", help="poll.interval.ms values to compare")
    parser.add_argument("--seconds", type=float, default=25, help="seconds of writing per latency run")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured seconds at each rate first")
    parser.add_argument("--stack", choices=("private", "main"), default="private",
                        help="snapshot and latency on a private stack (default) or the shared main stack")  # fmt: skip
    parser.add_argument("--calm", type=float, default=2.0, help="wait for a 1-min load average below this")
    parser.add_argument("--calm-wait", type=float, default=180, help="seconds to wait for calm before each step")
    parser.add_argument("--out", default="results", help="file stem for the .md and .json written beside this file")
    args = parser.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(STEPS)
    if unknown:
        parser.error(f"unknown step(s) {sorted(unknown)}; choose from {STEPS}")

    main_config = StackConfig.from_env(args.state_dir)
    lib = main_config.state_dir / "lib"
    if not (lib / ".pom-sha256").exists():
        print(f"no fetched artifacts under {lib}; run `dualrun stack up` once first", file=sys.stderr)
        return 2
    if args.stack == "main" and not Stack(main_config).status().healthy:
        print(f"the main stack under {main_config.state_dir} is not healthy; start it with `dualrun stack up`",
              file=sys.stderr)  # fmt: skip
        return 2
    results: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
                               "settings": {k: v for k, v in vars(args).items() if k != "state_dir"}}  # fmt: skip
    started = time.monotonic()
    loads: dict[str, dict[str, list[float]]] = {}

    def save() -> None:
        # After every step, so a later failure never loses what was already measured.
        results["load_avg"] = loads
        results["seconds"] = round(time.monotonic() - started, 1)
        (HERE / f"{args.out}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        (HERE / f"{args.out}.md").write_text(markdown(results))

    def step(name: str) -> bool:
        if name not in only:
            return False
        log(f"{name}: waiting up to {args.calm_wait:g}s for the load average to drop below {args.calm:g}")
        loads[name] = {"start": wait_calm(args.calm, args.calm_wait)}
        return True

    if step("cold"):
        results["cold"] = bench_cold(lib, args.repeat)
        loads["cold"]["end"] = [round(x, 2) for x in os.getloadavg()]
        save()
    if "snapshot" in only or "latency" in only:
        with ExitStack() as stack:
            if args.stack == "private":
                log(f"starting the private bench stack on ports {SECOND_STACK}")
                config, _ = stack.enter_context(private_stack(lib))
            else:
                config = main_config
            if step("snapshot"):
                results["snapshot"] = bench_snapshot(config, args.rows)
                loads["snapshot"]["end"] = [round(x, 2) for x in os.getloadavg()]
                save()
            if step("latency"):
                rates = [float(r) for r in args.rates.split(",")]
                polls = [int(p) for p in args.polls.split(",")]
                results["latency"] = bench_latency(config, rates, polls, args.seconds, args.warmup)
                loads["latency"]["end"] = [round(x, 2) for x in os.getloadavg()]
                save()
    save()
    log(f"wrote {HERE / (args.out + '.md')} and .json in {results['seconds']}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
