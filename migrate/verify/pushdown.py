"""Verify one big table by key-range fingerprints pushed down into the source (`fingerprint`).

Runs inside the verification's consistent snapshot (the connection given), against the table
rebuilt from its change topic as of that snapshot's position: fingerprints per key range on both
sides, then the rows of differing ranges only, reconciled like a whole table so every difference
gets the same cause as on the whole-table path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from cdc.rebuild import RebuiltTable
from migrate.verify.compare import SideBuilder, reconcile
from migrate.verify.fingerprint import (
    Column,
    Fingerprint,
    KeyRange,
    MariaDB,
    fingerprint_sql,
    range_where,
    rebuilt_fingerprints,
    rebuilt_ranges,
    supported,
)
from migrate.verify.model import RangeStats, TableVerification
from migrate.verify.values import canonical, key_of_texts, key_text, row_texts

_FAMILIES = {
    **dict.fromkeys(("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"), "integer"),
    "decimal": "decimal",
    **dict.fromkeys(("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"), "text"),
    **dict.fromkeys(("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"), "binary"),
    "date": "date",
    **dict.fromkeys(("datetime", "timestamp"), "datetime"),
    "time": "time",
}
_KINDS = {"decimal": "decimal", "date": "temporal", "datetime": "temporal", "time": "temporal"}


@dataclass(frozen=True)
class TableShape:
    """A source table from information_schema: columns in order, primary key, estimated rows
    (`TABLES.TABLE_ROWS`, InnoDB's estimate) and each column's kind for `compare` (as
    `run._kind` gives it from a result set)."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    kinds: dict[str, str]
    estimated_rows: int

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def unsupported(self) -> str | None:
        """Why this table cannot be fingerprinted, or None."""
        return supported(self.columns, [c for c in self.columns if c.name in self.key])


def primary_key(conn: sa.Connection, database: str, table: str) -> tuple[str, ...]:
    """The primary key's columns in order (MariaDB/MySQL information_schema); () when none."""
    rows = conn.exec_driver_sql(
        "SELECT column_name FROM information_schema.key_column_usage WHERE table_schema = %s "
        "AND table_name = %s AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
        (database, table),
    ).fetchall()
    return tuple(str(r[0]) for r in rows)


def table_shape(conn: sa.Connection, qualified: str) -> TableShape:
    """The shape of `database.table` (MariaDB/MySQL information_schema); no columns: absent."""
    database, table = qualified.split(".", 1)
    rows = conn.exec_driver_sql(
        "SELECT column_name, data_type, column_type, numeric_scale FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (database, table),
    ).fetchall()
    columns, kinds = [], {}
    for name, data_type, column_type, scale in rows:
        data_type, unsigned = str(data_type).lower(), "unsigned" in str(column_type).lower()
        family = _FAMILIES.get(data_type, "unsupported")
        if data_type == "bigint" and unsigned:
            family = "bigint_unsigned"  # beyond DuckDB's BIGINT keys: compared, never a range key
            kinds[str(name)] = "bigint_unsigned"
        else:
            kinds[str(name)] = _KINDS.get(family, "other")
        columns.append(Column(str(name), family, int(scale or 0)))
    estimate = conn.exec_driver_sql(
        "SELECT table_rows FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        (database, table),
    ).scalar()
    return TableShape(qualified, tuple(columns), primary_key(conn, database, table), kinds, int(estimate or 0))


def rebuilt_texts(
    rebuilt: RebuiltTable, names: Sequence[str], kinds: Mapping[str, str], settings: Mapping[str, str]
) -> Iterator[tuple[tuple[str | None, ...], bool]]:
    """Each row alive in `rebuilt` as its columns' comparison text in `names` order, and whether
    its version is a snapshot read."""
    texts = row_texts(names, kinds, settings)
    for batch in rebuilt.images():
        for image, snapshot in batch:
            yield texts(image), snapshot


def rebuilt_text(
    names: Sequence[str], kinds: Mapping[str, str], settings: Mapping[str, str]
) -> Callable[[tuple[dict[str, Any], bool]], tuple[str | None, ...]]:
    """(row image, snapshot flag) -> the row's comparison text in `names` order."""
    texts = row_texts(names, kinds, settings)
    return lambda pair: texts(pair[0])


def _quoted(qualified: str) -> str:
    dialect = MariaDB()
    return ".".join(dialect.quote(part) for part in qualified.split(".", 1))


def verify_ranges(
    conn: sa.Connection, shape: TableShape, topic: str, rebuilt: RebuiltTable, settings: Mapping[str, str],
    rows_per_range: int,
) -> TableVerification:  # fmt: skip
    """`shape`'s rows at the snapshot of `conn` against `rebuilt`, by fingerprints of ranges of
    `rows_per_range` rows of the rebuilt table. The table must be fingerprintable
    (`shape.unsupported()` None) and the log must reach back to its start (not truncated)."""
    names, key = shape.names, shape.key[0]
    dialect, table = MariaDB(), _quoted(shape.name)
    positions = [names.index(key)]
    texts = [f"c{i}" for i in range(len(names))]
    # The comparison text goes, a batch at a time, into the rebuilt table's own DuckDB (on disk,
    # memory-limited, spilling): never the whole table in Python or in Arrow.
    own = rebuilt.store is None
    con = duckdb.connect() if rebuilt.store is None else rebuilt.store.con
    try:
        columns = ", ".join(f"{t} VARCHAR" for t in texts)
        con.execute(f"CREATE OR REPLACE TEMP TABLE log_in (k VARCHAR, {columns})")
        text = rebuilt_text(names, shape.kinds, settings)
        for batch in rebuilt.images():
            side = SideBuilder(names)
            for logged in map(text, batch):
                side.add(key_of_texts(logged, positions), logged)
            con.register("chunk_in", side.table())
            con.execute("INSERT INTO log_in SELECT * FROM chunk_in")
            con.unregister("chunk_in")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE lg AS SELECT CAST(k AS BIGINT) AS key, (row_number() OVER "
            f"(ORDER BY CAST(k AS BIGINT)) - 1) // {int(rows_per_range)} AS b, * FROM log_in"
        )
        con.execute("DROP TABLE log_in")
        ranges = rebuilt_ranges(con, "lg", rows_per_range)
        theirs = rebuilt_fingerprints(con, "lg", texts, rows_per_range, len(ranges))
        differing: list[int] = []
        database_rows = equal_rows = 0
        for i, (bounds, fingerprint) in enumerate(zip(ranges, theirs, strict=True)):
            sql, params = fingerprint_sql(dialect, table, shape.columns, key, bounds)
            ours = Fingerprint.of(tuple(conn.exec_driver_sql(sql, params).one()))
            database_rows += ours.rows
            if ours == fingerprint:
                equal_rows += ours.rows
            else:
                differing.append(i)
        database = _read_ranges(conn, shape, table, [ranges[i] for i in differing])
        con.register("wanted", pa.table({"b": pa.array(differing, pa.int64())}))
        log_part = con.sql(f"SELECT k, {', '.join(texts)} FROM lg WHERE b IN (SELECT b FROM wanted)").to_arrow_table()
        log_rows = int(con.execute("SELECT count(*) FROM lg").fetchall()[0][0])  # drained: the connection goes on
        con.unregister("wanted")
        con.execute("DROP TABLE lg")
    finally:
        if own:
            con.close()
    result = reconcile(
        shape.name, topic, database, log_part, rebuilt.extent, kinds=shape.kinds, settings=settings,
        log_columns=rebuilt.columns or None, names=names,
    )  # fmt: skip
    stats = RangeStats(len(ranges), len(differing), database.num_rows, rows_per_range)
    return replace(
        result, database_rows=database_rows, log_rows=log_rows, matched_rows=result.matched_rows + equal_rows,
        ranges=stats,
    )  # fmt: skip


def _read_ranges(conn: sa.Connection, shape: TableShape, table: str, ranges: list[KeyRange]) -> pa.Table:
    """The rows of `ranges` as comparison text (an Arrow table of `k`, `c0`..), read as the
    whole-table path reads them (same driver values, same `canonical`)."""
    dialect = MariaDB()
    names = shape.names
    index = names.index(shape.key[0])
    side = SideBuilder(names)
    listed = ", ".join(dialect.quote(n) for n in names)
    for bounds in ranges:
        where, params = range_where(dialect, shape.key[0], bounds)
        result = conn.exec_driver_sql(f"SELECT {listed} FROM {table} {where}", params)
        for row in result:
            side.add(key_text((row[index],)), [canonical(v) for v in row])
    return side.table()
