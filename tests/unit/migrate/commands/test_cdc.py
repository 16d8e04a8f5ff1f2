"""`dualrun cdc status` / `cdc tail` exit codes: 1 is a finding, 2 could not evaluate."""

from __future__ import annotations

import pytest

from cdc.connect import ConnectorStatus, TaskStatus
from cdc.health import ConnectorHealth
from migrate.commands.cdc import status_exit_code
from migrate.errors import MissingTopics


def _health(state: str = "RUNNING", stuck: str | None = None, unchecked: str | None = None) -> ConnectorHealth:
    status = ConnectorStatus("c", state, "w", (TaskStatus(0, state, "w", None),), None)
    return ConnectorHealth(status, ("t",), (), True, stuck, unchecked)


@pytest.mark.parametrize(
    ("health", "code"),
    [
        (_health(), 0),
        (_health(state="FAILED"), 1),
        (_health(stuck="topics missing; nothing creates them"), 1),  # RUNNING but stuck: a finding
        (_health(unchecked="Kafka did not answer"), 2),  # could not be evaluated
        (_health(state="FAILED", unchecked="Kafka did not answer"), 1),  # failed is known regardless
    ],
)
def test_status_exit_codes(health: ConnectorHealth, code: int) -> None:
    assert status_exit_code(health) == code


def test_absent_topics_for_tail_are_exit_2() -> None:
    assert MissingTopics("none of the topics exists").exit_code == 2
