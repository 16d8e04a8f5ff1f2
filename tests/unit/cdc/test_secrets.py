"""The one secret rule (cdc.client.holds_secret), table-driven from data/secret_settings.json: what
`redact` masks and what the checklist's `clear_secrets` names must be the same settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cdc.client import MASK, holds_secret
from cdc.connector import redact
from migrate.checklist.security import clear_secrets

CASES = json.loads((Path(__file__).parent / "data" / "secret_settings.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['name']}={str(c['value'])[:24]}" for c in CASES])
def test_one_rule_for_redact_and_clear_secrets(case: dict[str, Any]) -> None:
    name, value = case["name"], case["value"]
    assert holds_secret(name, value) is case["clear"]
    assert clear_secrets({name: value}) == ([name] if case["clear"] else [])
    assert redact({name: value}) == {name: case["shown"]}


def test_redacted_config_shows_no_secret_value() -> None:
    config = {f"p{i}.{c['name']}": c["value"] for i, c in enumerate(CASES)}  # any prefix: same rule
    shown = json.dumps(redact(config))
    for value in ("hunter2", "AKIAsecret", "BEGIN PRIVATE KEY", "principal=admin", "p@ss", "pa/ss", "u:pw"):
        assert value not in shown
    assert MASK in shown


def test_connect_client_scrubs_a_url_password_it_was_never_given() -> None:
    from cdc.connect import ConnectClient

    client = ConnectClient("http://127.0.0.1:1", secrets=("known",))
    trace = "PSQLException: known; cannot open jdbc:postgresql://app:p@ss/w0rd@db:5432/app?password=x2"
    assert client._scrub(trace) == (
        "PSQLException: ********; cannot open jdbc:postgresql://app:********@db:5432/app?password=********"
    )
