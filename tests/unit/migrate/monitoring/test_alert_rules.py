"""The shipped alert rules are valid (`promtool check rules`) and fire on what they promise
(`promtool test rules` with synthetic series); promtool comes with Debian's prometheus package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from migrate.services.monitoring import alert_rules, data_dir

HERE = Path(__file__).parent


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: scripts/setup installs Debian's prometheus package")
    return found


@pytest.mark.parametrize("for_override", [None, "0s"])
def test_rules_pass_promtool_check(promtool: str, tmp_path: Path, for_override: str | None) -> None:
    rules = tmp_path / "alerts.yml"
    rules.write_text(alert_rules(for_override))
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout


def test_each_alert_fires_on_its_condition_and_not_before(promtool: str, tmp_path: Path) -> None:
    cases = tmp_path / "alerts_test.yml"
    cases.write_text((HERE / "alerts_test.yml").read_text().replace("RULES", str(data_dir() / "alerts.yml")))
    tested = subprocess.run([promtool, "test", "rules", str(cases)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_override_sets_every_for(tmp_path: Path) -> None:
    import yaml

    rules = yaml.safe_load(alert_rules("0s"))
    durations = {rule["for"] for group in rules["groups"] for rule in group["rules"]}
    assert durations == {"0s"}
