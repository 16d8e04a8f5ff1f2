"""The registered checks, in the order a person reads them, and the runner that turns them into a verdict."""

from __future__ import annotations

import time

from migrate.checklist.changelog import cdc_complete
from migrate.checklist.connector import connector_running
from migrate.checklist.context import Context
from migrate.checklist.model import Checklist, CheckResult
from migrate.checklist.positions import outputs_carry_positions, positions_monotone
from migrate.checklist.protocol import Check
from migrate.checklist.quality import data_quality
from migrate.checklist.reconciliation import coverage, noise_baseline, parity
from migrate.checklist.rollback import rollback_ready
from migrate.checklist.security import connector_secrets, kafka_security
from migrate.checklist.sink import sink_isolation
from migrate.checklist.streaming import consumer_lag, dead_letters_empty, events_fresh, exactly_once, job_alive
from migrate.checklist.topics import replication, state_topics_compacted, topic_retention
from migrate.errors import CheckUnavailable, SpecError
from migrate.spec import PipelineSpec

# -- the checks, in the order a person reads them -------------------------------------------------
CHECKS: tuple[Check, ...] = (
    connector_running,
    job_alive,
    events_fresh,
    consumer_lag,
    dead_letters_empty,
    topic_retention,
    state_topics_compacted,
    replication,
    kafka_security,
    connector_secrets,
    exactly_once,
    sink_isolation,
    outputs_carry_positions,
    positions_monotone,
    cdc_complete,
    parity,
    coverage,
    noise_baseline,
    data_quality,
    rollback_ready,
)
CHECK_NAMES = tuple(c.__name__ for c in CHECKS)


def evaluate(spec: PipelineSpec, checks: tuple[Check, ...] = CHECKS, *, timeout: float = 10.0) -> Checklist:
    """Run `checks` in order against the live systems and the history of `spec`."""
    started = time.monotonic()
    ctx = Context(spec, timeout=timeout)
    results: list[CheckResult] = []
    unevaluated: list[str] = []
    for check in checks:
        ctx.current = None
        try:
            results.append(check(ctx))
        except CheckUnavailable as exc:
            base = ctx.current or CheckResult(check.__name__, "skipped", "", "")
            results.append(base.skip(f"could not evaluate: {exc}"))
            unevaluated.append(base.name)
    return Checklist(spec.name, tuple(results), tuple(unevaluated), time.monotonic() - started)


def select(names: tuple[str, ...]) -> tuple[Check, ...]:
    """The registered checks with these names, in registry order; unknown names are a usage error."""
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown:
        raise SpecError(f"unknown check(s) {', '.join(unknown)}; the checks are {', '.join(CHECK_NAMES)}")
    return tuple(c for c in CHECKS if c.__name__ in names) if names else CHECKS
