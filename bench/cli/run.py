"""Start-up time of `dualrun --help` and of every command's `--help`, beside a named baseline, in one run.

Usage: python bench/cli/run.py [--baseline REV] [--runs N]

Each command line runs N times as a fresh process (`python -m migrate.cli ... --help`),
alternating this tree and the baseline tree (REV exported with `git archive` to a temp dir)
so machine drift hits both alike; the median wall time is reported, with the bare
interpreter (`python -c pass`) beside it as the floor. `python -X importtime` gives the
cumulative import time of migrate.cli and the heavy libraries each tree loads for `--help`.
Writes results.md and results.json next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent
HEAVY = ("pandas", "pyarrow", "duckdb", "sqlalchemy", "great_expectations", "matplotlib", "confluent_kafka",
         "jinja2", "numpy", "pydantic", "requests")  # fmt: skip
COMMANDS = ([], ["stack"], ["stack", "up"], ["cdc"], ["cdc", "status"], ["cdc", "tail"], ["demo"], ["run"],
            ["run", "stream"], ["reconcile"], ["report"], ["checklist"])  # fmt: skip
GOAL_S = 0.3


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def wall(argv: list[str], tree: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=_env(tree), cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


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
        floor = [wall([sys.executable, "-c", "pass"], ROOT) for _ in range(args.runs)]
        rows = []
        for command in COMMANDS:
            argv = [sys.executable, "-m", "migrate.cli", *command, "--help"]
            times: dict[str, list[float]] = {name: [] for name in trees}
            for _ in range(args.runs):
                for name, tree in trees.items():  # alternate: drift hits both
                    times[name].append(wall(argv, tree))
            rows.append({"command": " ".join(["dualrun", *command, "--help"]),
                         **{name: statistics.median(t) for name, t in times.items()}})  # fmt: skip
        profiles = {name: import_profile(tree) for name, tree in trees.items()}
    base = f"baseline {args.baseline}"
    result = {
        "head": head, "baseline": args.baseline, "runs": args.runs, "python": sys.version.split()[0],
        "interpreter_floor_s": statistics.median(floor), "goal_s": GOAL_S, "commands": rows,
        "imports": {name: {"migrate_cli_import_s": t, "heavy_loaded": h} for name, (t, h) in profiles.items()},
    }  # fmt: skip
    (HERE / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# `--help` start-up time",
        "",
        f"One run of `python bench/cli/run.py` on {time.strftime('%Y-%m-%d', time.gmtime())}: HEAD {head} beside "
        f"baseline {args.baseline}, median of {args.runs} fresh processes each, alternating. Python "
        f"{result['python']}; `python -c pass` alone takes {result['interpreter_floor_s']:.3f} s here (the floor).",
        "",
        f"| command | this tree (s) | {base} (s) | ratio | under {GOAL_S} s |",
        "|---|---:|---:|---:|:---:|",
    ]
    for row in rows:
        ours = row["this tree"]
        verdict = "yes" if ours < GOAL_S else "NO"
        lines.append(f"| `{row['command']}` | {ours:.3f} | {row[base]:.3f} | {ours / row[base]:.2f}x | {verdict} |")
    lines += ["", "`python -X importtime -m migrate.cli --help` (cumulative import of migrate.cli, click, rich):", ""]
    for name, (seconds, heavy) in profiles.items():
        lines.append(f"- {name}: {seconds:.3f} s; heavy libraries loaded: {', '.join(heavy) or 'none'}")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
