"""The cutover checklist: named checks against the live systems and the run history, and a verdict.

Each check is a small function `check(ctx) -> CheckResult` (the `Check` protocol),
registered in order in `CHECKS`. A check starts its result with `ctx.begin(name,
threshold)` and returns it passed, failed, warned or skipped, with the evidence a
person needs to believe it. A check that cannot reach the system it checks raises
`CheckUnavailable`; the checklist then records it as not evaluated, names what
could not be reached, and exits 2 instead of guessing.

Verdict: GO when no check failed and every check was evaluated; warnings do not
block. Exit codes: 0 GO, 1 NO-GO, 2 could not evaluate.

Layout: `model` (results), `context` (what checks read), `protocol` (`Check`), one
module per group of checks (`connector`, `streaming`, `topics`, `reconciliation`,
`quality`, `rollback`) and `registry` (the ordered `CHECKS`, `evaluate`, `select`).
"""

from migrate.checklist.connector import connector_running
from migrate.checklist.context import Context
from migrate.checklist.model import STATUSES, Checklist, CheckResult
from migrate.checklist.protocol import Check
from migrate.checklist.quality import SuiteOutcome, data_quality, expectations, validate
from migrate.checklist.reconciliation import noise_baseline, parity
from migrate.checklist.registry import CHECK_NAMES, CHECKS, evaluate, select
from migrate.checklist.rollback import rollback_ready
from migrate.checklist.streaming import consumer_lag, dead_letters_empty, events_fresh, exactly_once, job_alive
from migrate.checklist.topics import replication, state_topics_compacted, topic_retention

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "STATUSES",
    "Check",
    "CheckResult",
    "Checklist",
    "Context",
    "SuiteOutcome",
    "connector_running",
    "consumer_lag",
    "data_quality",
    "dead_letters_empty",
    "evaluate",
    "events_fresh",
    "exactly_once",
    "expectations",
    "job_alive",
    "noise_baseline",
    "parity",
    "replication",
    "rollback_ready",
    "select",
    "state_topics_compacted",
    "topic_retention",
    "validate",
]
