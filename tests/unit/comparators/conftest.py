"""Helpers for the comparators tests: small hand-built sides and a quiet reconcile."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from comparators import Settings, reconcile
from comparators.result import Reconciliation

SETTINGS = Settings(memory_limit="512MB", threads=2)


def rec(left: Any, right: Any, keys: list[str] | None = None, **kwargs: Any) -> Reconciliation:
    """reconcile() with test resources and `id` as the default key."""
    return reconcile(left, right, keys or ["id"], settings=SETTINGS, **kwargs)


def table(**columns: Any) -> pa.Table:
    """An Arrow table from column lists; Decimal, datetime and None are typed by Arrow."""
    return pa.table(columns)


@pytest.fixture
def tmp_parquet(tmp_path: Any) -> Any:
    """Write an Arrow table to a Parquet file and return its path."""
    import pyarrow.parquet as pq

    def write(name: str, data: pa.Table) -> str:
        path = tmp_path / name
        pq.write_table(data, path)
        return str(path)

    return write
