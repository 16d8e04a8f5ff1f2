"""Backpressure benchmark: a big backlog ("a day of changes") caught up in one go, and after a broker restart.

Runs the fault suite's backlog scenario (tests/faults/test_recovery.py, on a stack of its own) with a
backlog of `--backlog` source changes, made by the reference workload as fast as MariaDB takes them:

1. the streaming job stopped; the backlog made; Debezium delivers all of it to Kafka; the job started
   again: catch-up time (job started -> its committed output covers the source position), throughput
   (backlog / catch-up time, start-up included), the job's peak rate, restarts and BufferErrors;
2. the Kafka broker killed (`kill -9`) with the job running; the same backlog made while it is down
   (Debezium and the job both wait); the broker started again and nobody touches the job: broker back
   -> caught up, against issue 12's bound backlog / throughput (of 1.) + 60 s, and when Debezium had sent
   the whole backlog (the job cannot pass it; the scenario holds the job to the later of the two + 60 s).

Both end with 0 records lost, 0 written twice and parity clean (the scenario's asserts). The baseline
is the same catch-up before issue 12 (measured by hand, 4.5M records): three crash loops in a row on
`BufferError: Local: Queue full`, 17 restarts and a smaller max_batch, 24 minutes in all.

    python bench/faults/backlog.py                  # 100,000 source changes
    python bench/faults/backlog.py --backlog 250000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
TEST = (
    "tests/faults/test_recovery.py::test_a_backlog_is_caught_up_at_full_speed_after_a_stop_and_after_a_broker_restart"
)


def run_once(backlog: int) -> tuple[list[dict[str, object]], float]:
    results = Path(tempfile.mkstemp(prefix="dualrun-backlog-", suffix=".jsonl")[1])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DUALRUN_FAULTS_RESULTS": str(results),
           "DUALRUN_FAULTS_BACKLOG": str(backlog), "DUALRUN_FAULTS_BACKLOG_BROKER": "1"}  # fmt: skip
    started = time.monotonic()
    argv = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST]
    proc = subprocess.run(argv, cwd=ROOT, env=env)
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    results.unlink(missing_ok=True)
    rows = [r for r in rows if r.get("kind") == "backlog"]
    if not rows:
        raise SystemExit(f"the backlog scenario recorded nothing (exit {proc.returncode})")
    for row in rows:
        row["scenario_passed"] = proc.returncode == 0
    return rows, time.monotonic() - started


def render(data: dict[str, object]) -> str:
    """backlog.md from backlog.json's data."""
    rows: list[dict[str, object]] = data["runs"]  # type: ignore[assignment]
    bound = float(data["bound_s"])  # type: ignore[arg-type]
    out = [
        f"# Catching up a backlog of {data['backlog']:,} source changes ({data['machine']})",
        "",
        "| backlog made while | made in | caught up in | Debezium had sent it all | throughput (backlog / catch-up) "
        "| job peak rate | restarts | BufferErrors | scenario (0 lost, 0 twice, parity) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        passed = "passed" if r["scenario_passed"] else "FAILED"
        sent = "before the start" if r["fault"] == "job stopped" else f"{r['delivered_s']} s"
        out.append(
            f"| {r['fault']} | {r['build_s']} s | **{r['catch_up_s']} s** | {sent} "
            f"| {r['throughput']:,.0f}/s | {r['peak']:,.0f}/s | {r['restarts']} | {r['buffer_errors']} | {passed} |"
        )
    broker = next((r for r in rows if r["fault"] == "broker kill -9"), None)
    if broker is not None:
        verdict = "within" if float(broker["catch_up_s"]) <= bound else "OVER"  # type: ignore[arg-type]
        own = float(broker["catch_up_s"]) - float(broker["delivered_s"])  # type: ignore[arg-type]
        out += ["", f"Issue 12's bound for the broker restart: backlog / throughput + 60 s = {bound:.1f} s; "
                    f"broker back -> caught up took {broker['catch_up_s']} s ({verdict} the bound). Debezium had "
                    f"sent the whole backlog {broker['delivered_s']} s after the broker was back; the job caught "
                    f"up {own:.1f} s after that."]  # fmt: skip
    out += ["", "Baseline (issue 12, by hand, before): 3 crash loops on `BufferError: Local: Queue full`, "
                "17 restarts, 24 minutes from broker kill to caught up."]  # fmt: skip
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000, help="source changes to catch up on")
    parser.add_argument("--render", action="store_true", help="only rewrite backlog.md from backlog.json")
    args = parser.parse_args()
    if args.render:
        (HERE / "backlog.md").write_text(render(json.loads((HERE / "backlog.json").read_text())))
        return
    rows, wall = run_once(args.backlog)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    stopped = next(r for r in rows if r["fault"] == "job stopped")
    bound = float(args.backlog) / max(float(stopped["throughput"]), 1.0) + 60  # type: ignore[arg-type]
    data = {"machine": machine, "backlog": args.backlog, "bound_s": round(bound, 1), "wall_s": round(wall, 1),
            "runs": rows}  # fmt: skip
    (HERE / "backlog.json").write_text(json.dumps(data, indent=2) + "\n")
    text = render(data)
    (HERE / "backlog.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
