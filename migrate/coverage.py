"""The coverage ledger: per reconciled run of an output compared through a window, which keys were
in flight, so the checklist can tell a key that stays in flight run after run (never verified).

Files: `<state_dir>/coverage/<output>/<history run id>.parquet`, the in-flight keys, with the
run's verified and in-flight counts in the Parquet metadata. A run of an output compared exactly
(positions) leaves an empty file marked exact: every key of its was verified. A run that left no
file at all is NOT read as exact (its ledger may have been lost): the coverage check cannot be
evaluated then, rather than pass on evidence that is missing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from migrate.errors import CheckUnavailable
from migrate.spec import PipelineSpec
from migrate.window import Coverage

_VERIFIED, _IN_FLIGHT, _EXACT = b"dualrun.verified_keys", b"dualrun.in_flight_keys", b"dualrun.exact"


def _path(spec: PipelineSpec, output: str, run_id: str) -> Path:
    return spec.path("coverage") / output / f"{run_id}.parquet"


def _write(path: Path, table: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)  # atomic: a reader sees the whole ledger or none
    return path


def record_coverage(spec: PipelineSpec, output: str, run_id: str, coverage: Coverage, in_flight: pa.Table) -> Path:
    """Store one run's coverage of `output` under the history's run id (atomic rename)."""
    meta = {_VERIFIED: str(coverage.verified).encode(), _IN_FLIGHT: str(coverage.in_flight).encode()}
    table = in_flight.replace_schema_metadata({**(in_flight.schema.metadata or {}), **meta})
    return _write(_path(spec, output, run_id), table)


def record_exact(spec: PipelineSpec, output: str, run_id: str) -> Path:
    """Record that run `run_id` compared `output` exactly at a position: every key verified."""
    empty = pa.table({"__exact": pa.array([], pa.bool_())}).replace_schema_metadata({_EXACT: b"1"})
    return _write(_path(spec, output, run_id), empty)


def load_coverage(spec: PipelineSpec, output: str, run_id: str) -> tuple[Coverage, set[tuple[object, ...]]] | None:
    """One run's coverage and in-flight keys (as tuples in key order); None: the run compared
    exactly. CheckUnavailable when the run left no ledger: missing evidence is never "exact"."""
    path = _path(spec, output, run_id)
    if not path.exists():
        raise CheckUnavailable(
            f"{output}: the coverage ledger of history run {run_id} is missing ({path}); without it the run's "
            "keys in flight are unknown: reconcile again (`dualrun reconcile --spec`, or `dualrun batch check`)"
        )
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if meta.get(_EXACT) == b"1":
        return None
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
