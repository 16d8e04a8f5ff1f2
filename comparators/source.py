"""The `Source` protocol: one side of a reconciliation, registered into DuckDB."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import duckdb


@runtime_checkable
class Source(Protocol):
    """One side of a reconciliation."""

    @property
    def label(self) -> str:
        """Where the data comes from, without secrets."""
        ...

    def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[str]) -> None:
        """Create a view or temp table `name` that can be scanned more than once."""
        ...
