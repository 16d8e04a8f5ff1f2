"""`dualrun cdc verify` without a Connect to ask: not evaluated (exit 2), one line, recorded."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from click.testing import CliRunner

from migrate.cli import cli
from migrate.verify import history
from tests.unit.report.builders import local_spec


def test_an_unreachable_connect_is_not_evaluated_and_recorded_as_such(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    spec = local_spec(tmp_path, cdc={"connect_url": f"http://127.0.0.1:{port}"})
    spec_file = tmp_path / "dualrun.yaml"
    # JSON is YAML; not `local`, which would put the local stack's Connect URL back
    spec_file.write_text(json.dumps({**json.loads(spec.model_dump_json()), "local": False}))
    result = CliRunner().invoke(cli, ["cdc", "verify", "--spec", str(spec_file), "--format", "json"])
    assert result.exit_code == 2, result.output
    payload = json.loads(result.output)
    assert payload["verdict"] == "unevaluated" and "Kafka Connect is not reachable" in payload["unevaluated"]
    latest = history.latest(spec.history_path, spec.name)
    assert latest is not None and latest.verdict == "unevaluated"
