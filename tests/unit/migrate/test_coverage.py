"""The coverage ledger and the checklist's coverage check: a key always in flight is never verified."""

from __future__ import annotations

import pyarrow as pa
import pytest

from migrate.checklist.context import Context
from migrate.checklist.reconciliation import coverage
from migrate.coverage import load_coverage, never_verified, record_coverage, record_exact
from migrate.errors import CheckUnavailable
from migrate.spec import PipelineSpec
from migrate.window import Coverage
from tests.unit.migrate.test_checklist import spec  # noqa: F401 (the fixture)
from tests.unit.report.builders import build_history


def keys(*ids: int) -> pa.Table:
    return pa.table({"order_id": pa.array(ids, pa.int64())})


def test_a_runs_coverage_is_stored_and_read_back(spec: PipelineSpec) -> None:  # noqa: F811
    record_coverage(spec, "orders_enriched", "run-1", Coverage(98, 2), keys(4, 9))
    assert load_coverage(spec, "orders_enriched", "run-1") == (Coverage(98, 2), {(4,), (9,)})
    record_exact(spec, "orders_enriched", "run-2")
    assert load_coverage(spec, "orders_enriched", "run-2") is None  # compared exactly: nothing in flight


def test_a_missing_ledger_is_never_read_as_compared_exactly(spec: PipelineSpec) -> None:  # noqa: F811
    """A windowed run whose ledger file is gone must not pass the coverage gate as 100% verified."""
    with pytest.raises(CheckUnavailable, match="coverage ledger of history run run-3 is missing"):
        load_coverage(spec, "orders_enriched", "run-3")
    runs = build_history(spec.history_path, "CCC")
    for run in runs:
        record_exact(spec, "daily_revenue", run[1])
    for run, flying in zip(runs[:2], [keys(4), keys(4)], strict=True):  # the newest run's ledger is lost
        record_coverage(spec, "orders_enriched", run[0], Coverage(99, 1), flying)
    with pytest.raises(CheckUnavailable, match=f"orders_enriched: the coverage ledger of history run {runs[2][0]}"):
        coverage(Context(spec))


def test_coverage_passes_without_windows_and_gates_on_keys_never_verified(spec: PipelineSpec) -> None:  # noqa: F811
    assert coverage(Context(spec)).status == "fail"  # no history at all
    runs = build_history(spec.history_path, "CCC")
    for run in runs:  # as `reconcile --spec` records a run compared exactly at its position
        record_exact(spec, "orders_enriched", run[0])
        record_exact(spec, "daily_revenue", run[1])
    assert coverage(Context(spec)).status == "pass"  # exact at positions: nothing in flight
    # orders_enriched through a window: key 4 in flight in every run of the streak, key 9 only twice.
    for run, flying in zip(runs, [keys(4, 9), keys(4), keys(4, 9)], strict=True):
        record_coverage(spec, "orders_enriched", run[0], Coverage(100 - flying.num_rows, flying.num_rows), flying)
    result = coverage(Context(spec))
    assert result.status == "pass", result.evidence  # 1 of 100 never verified: 99% >= 0.99
    shown = "orders_enriched 100 keys, 1 never verified over 3 run(s) (99.0%), 2 in flight in the latest"
    assert shown in result.evidence
    strict = spec.with_changes(checklist={"min_coverage": 1.0})
    assert coverage(Context(strict)).status == "fail"
    assert sorted(never_verified([(Coverage(1, 1), {(1,)}), None])) == []
