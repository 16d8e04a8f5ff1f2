"""Reconciliation on DuckDB: load two sides, line them up by key, explain every difference.

from comparators import reconcile
result = reconcile("batch.parquet", "stream.parquet", keys=["order_id"],
                   rules={"amount": "abs:0.01", "*": "exact"})
result.verdict, result.to_dict()
"""

from comparators.changelog import CHANGELOG_META, ChangelogSource
from comparators.engine import Settings, reconcile
from comparators.errors import ComparatorError
from comparators.positions import parse_position
from comparators.result import Reconciliation
from comparators.rules import (
    AbsoluteTolerance,
    Exact,
    Normalise,
    NullAs,
    RelativeTolerance,
    TimestampSkew,
)
from comparators.source import Source
from comparators.sources import (
    CsvSource,
    DuckDBSource,
    FrameSource,
    ParquetSource,
    SqlSource,
    open_source,
)
from comparators.spec import InFlight

__all__ = [
    "CHANGELOG_META",
    "AbsoluteTolerance",
    "ChangelogSource",
    "ComparatorError",
    "CsvSource",
    "DuckDBSource",
    "Exact",
    "FrameSource",
    "InFlight",
    "Normalise",
    "NullAs",
    "ParquetSource",
    "Reconciliation",
    "RelativeTolerance",
    "Settings",
    "Source",
    "SqlSource",
    "TimestampSkew",
    "open_source",
    "parse_position",
    "reconcile",
]
