"""The coverage ledger: per reconciled run of an output compared through a window, which keys were
in flight, so the checklist can tell a key that stays in flight run after run (never verified).

Files: `<state_dir>/coverage/<output>/<history run id>.parquet`, the in-flight keys, with the
run's verified and in-flight counts in the Parquet metadata. Runs of outputs compared exactly
(positions) leave no file: every key of theirs was verified.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from migrate.spec import PipelineSpec
from migrate.window import Coverage

_VERIFIED, _IN_FLIGHT = b"dualrun.verified_keys", b"dualrun.in_flight_keys"


def _path(spec: PipelineSpec, output: str, run_id: str) -> Path:
    return spec.path("coverage") / output / f"{run_id}.parquet"


def record_coverage(spec: PipelineSpec, output: str, run_id: str, coverage: Coverage, in_flight: pa.Table) -> Path:
    """Store one run's coverage of `output` under the history's run id (atomic rename)."""
    path = _path(spec, output, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {_VERIFIED: str(coverage.verified).encode(), _IN_FLIGHT: str(coverage.in_flight).encode()}
    table = in_flight.replace_schema_metadata({**(in_flight.schema.metadata or {}), **meta})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def load_coverage(spec: PipelineSpec, output: str, run_id: str) -> tuple[Coverage, set[tuple[object, ...]]] | None:
    """One run's coverage and in-flight keys (as tuples in key order); None: the run left no file."""
    path = _path(spec, output, run_id)
    if not path.exists():
        return None
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    coverage = Coverage(int(meta.get(_VERIFIED, b"0")), int(meta.get(_IN_FLIGHT, b"0")))
    return coverage, {tuple(row.values()) for row in table.to_pylist()}


def never_verified(runs: Sequence[tuple[Coverage, set[tuple[object, ...]]] | None]) -> set[tuple[object, ...]]:
    """Keys in flight in every one of `runs` (None: a run compared exactly, so nothing stayed in flight).

    >>> sorted(never_verified([(Coverage(5, 2), {(1,), (2,)}), (Coverage(6, 1), {(2,)})]))
    [(2,)]
    >>> never_verified([(Coverage(5, 2), {(1,), (2,)}), None])
    set()
    """
    if not runs or any(run is None for run in runs):
        return set()
    keys = [run[1] for run in runs if run is not None]
    return set.intersection(*keys)
