"""`dualrun --help` and every command's `--help` load no heavy library (a behaviour test, not a timed one).

Start-up times are measured in bench/cli; here the cause of slowness is held off: each heavy
library may load only when a command that needs it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

HEAVY = (
    "pandas", "pyarrow", "duckdb", "sqlalchemy", "great_expectations", "matplotlib", "confluent_kafka", "jinja2",
    "numpy", "pydantic", "requests", "psycopg", "pymysql", "comparators",
)  # fmt: skip

PROBE = """
import json, sys
import click
from migrate.cli import cli

def paths(command, prefix):
    yield prefix
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from paths(sub, [*prefix, name])

after_import = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
helped = []
for path in paths(cli, []):
    try:
        cli.main([*path, "--help"], prog_name="dualrun", standalone_mode=False)
    except SystemExit:
        pass
    helped.append(" ".join(path))
after_help = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"import": after_import, "help": after_help, "commands": helped}))
"""


def _probe() -> dict[str, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_import_and_every_help_load_no_heavy_library() -> None:
    result = _probe()
    assert result["import"] == [], f"`import migrate.cli` loads {result['import']}"
    assert result["help"] == [], f"`--help` of some command loads {result['help']}"
    # Every command and subcommand was asked, e.g. `cdc status` and `stack up`.
    assert {"", "demo", "cdc status", "cdc tail", "cdc verify", "stack up", "reconcile", "checklist", "report"} <= set(
        result["commands"]
    )


def test_the_spelled_out_choices_equal_their_sources() -> None:
    from comparators.engine import Settings
    from comparators.report import FORMATS, RUN_FORMATS
    from migrate.checklist import CHECK_NAMES
    from migrate.commands import options
    from migrate.examples.order_enricher.runner import DEFECTS as KSTREAMS_DEFECTS
    from migrate.examples.shop_orders.defects import DEFECTS

    assert options.REPORT_FORMATS == FORMATS
    assert options.RUN_FORMATS == RUN_FORMATS
    assert options.CHECK_NAMES == CHECK_NAMES
    assert set(options.STREAM_DEFECTS["dualrun"]) == set(DEFECTS)
    assert set(options.STREAM_DEFECTS["kafka-streams"]) == set(KSTREAMS_DEFECTS)
    assert Settings.memory_limit == options.MEMORY_LIMIT


def test_errors_of_every_package_are_still_one_line() -> None:
    from cdc.errors import ConnectError
    from comparators.errors import ComparatorError
    from migrate.cli import user_error
    from migrate.errors import SpecError

    assert user_error(SpecError("x")) and user_error(ConnectError("x")) and user_error(ComparatorError("x"))
    assert not user_error(ValueError("a bug of ours"))
