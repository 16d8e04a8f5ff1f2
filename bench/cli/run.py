"""Start-up time of `dualrun --help` and of every command's `--help`, beside a named baseline, in one run.

Usage: python bench/cli/run.py [--baseline REV] [--runs N]

Each command line runs N times as a fresh process (`python -m migrate.cli ... --help`),
alternating this tree and the baseline tree (REV exported with `git archive` to a temp dir)
so machine drift hits both alike; the median wall time and the median CPU time (user +
system, what a start costs with a core to itself: steadier on a shared machine) are reported,
with the bare interpreter (`python -c pass`) beside them as the floor. `python -X importtime` gives the
cumulative import time of migrate.cli and the heavy libraries each tree loads for `--help`.
Writes results.md and results.json next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent
HEAVY = ("pandas", "pyarrow", "duckdb", "sqlalchemy", "great_expectations", "matplotlib", "confluent_kafka",
         "jinja2", "numpy", "pydantic", "requests")  # fmt: skip
COMMANDS = ([], ["stack"], ["stack", "up"], ["cdc"], ["cdc", "status"], ["cdc", "tail"], ["demo"], ["run"],
            ["run", "stream"], ["reconcile"], ["report"], ["checklist"])  # fmt: skip
GOAL_S = 0.3


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def measure(argv: list[str], tree: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh process; CPU (user + system) is what it costs with a core to itself."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=_env(tree), cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_profile(tree: Path) -> tuple[float, list[str]]:
    """Cumulative import time of migrate.cli in seconds (from -X importtime) and the heavy top modules loaded."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "migrate.cli", "--help"], env=_env(tree),
                          cwd=tree, capture_output=True, text=True, check=True)  # fmt: skip
    total, heavy = 0, set()
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        cumulative, indent, name = int(match[1]), len(match[2]), match[3]
        # Top-level imports of migrate.cli's tree (the interpreter's own, like site, are the floor).
        if indent == 1 and name.startswith(("migrate", "click", "rich", "cdc", "comparators")):
            total += cumulative
        if name.split(".")[0] in HEAVY:
            heavy.add(name.split(".")[0])
    return total / 1e6, sorted(heavy)


def export(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="cdcb6c8", help="git revision to compare with (default: before #11)")
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="dualrun-bench-cli-") as tmp:
        trees = {"this tree": ROOT, f"baseline {args.baseline}": export(args.baseline, Path(tmp))}
        floor = [measure([sys.executable, "-c", "pass"], ROOT) for _ in range(args.runs)]
        rows = []
        for command in COMMANDS:
            argv = [sys.executable, "-m", "migrate.cli", *command, "--help"]
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
            for _ in range(args.runs):
                for name, tree in trees.items():  # alternate: drift hits both
                    times[name].append(measure(argv, tree))
            row: dict[str, Any] = {"command": " ".join(["dualrun", *command, "--help"])}
            for name, samples in times.items():
                row[name] = statistics.median(w for w, _ in samples)
                row[f"{name} cpu"] = statistics.median(c for _, c in samples)
            rows.append(row)
        profiles = {name: import_profile(tree) for name, tree in trees.items()}
    base = f"baseline {args.baseline}"
    result = {
        "head": head, "baseline": args.baseline, "runs": args.runs, "python": sys.version.split()[0],
        "interpreter_floor_s": statistics.median(w for w, _ in floor),
        "interpreter_floor_cpu_s": statistics.median(c for _, c in floor), "goal_s": GOAL_S, "commands": rows,
        "load_average": os.getloadavg(),
        "imports": {name: {"migrate_cli_import_s": t, "heavy_loaded": h} for name, (t, h) in profiles.items()},
    }  # fmt: skip
    (HERE / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# `--help` start-up time",
        "",
        f"One run of `python bench/cli/run.py` on {time.strftime('%Y-%m-%d', time.gmtime())}: HEAD {head} beside "
        f"baseline {args.baseline}, median of {args.runs} fresh processes each, alternating. Python "
        f"{result['python']}; `python -c pass` alone takes {result['interpreter_floor_s']:.3f} s wall, "
        f"{result['interpreter_floor_cpu_s']:.3f} s CPU here (the floor). Load average during the run: "
        f"{', '.join(f'{x:.1f}' for x in result['load_average'])} on {os.cpu_count()} cores (other jobs share the "
        "machine): wall times swing with it; CPU time (user + system of the process) is what a start costs with "
        "a core to itself, and is what the goal is read against.",
        "",
        f"| command | wall, this tree (s) | wall, {base} (s) | CPU, this tree (s) | CPU, {base} (s) | CPU ratio "
        f"| CPU under {GOAL_S} s |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for row in rows:
        ours, theirs = row["this tree cpu"], row[f"{base} cpu"]
        verdict = "yes" if ours < GOAL_S else "NO"
        lines.append(f"| `{row['command']}` | {row['this tree']:.3f} | {row[base]:.3f} | {ours:.3f} | {theirs:.3f} "
                     f"| {ours / theirs:.2f}x | {verdict} |")  # fmt: skip
    lines += ["", "`python -X importtime -m migrate.cli --help` (cumulative import of migrate.cli, click, rich):", ""]
    for name, (seconds, heavy) in profiles.items():
        lines.append(f"- {name}: {seconds:.3f} s; heavy libraries loaded: {', '.join(heavy) or 'none'}")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
