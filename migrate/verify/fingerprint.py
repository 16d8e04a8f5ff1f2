"""Per-key-range fingerprints: compare a big table with its rebuilt twin without moving its rows.

The idea of data-diff's bisection, made exact and taken at one position: the table's primary key
is cut into ranges (`WHERE pk >= lo AND pk < hi`, one index range scan each on the clustered
primary key); for each range the source computes a fingerprint inside the database, in the same
consistent snapshot that gives the position, and DuckDB computes the same fingerprint over the
table rebuilt from the change topic. Only ranges whose fingerprints differ are read row by row and
reconciled like a whole table (`migrate.verify.compare`), so the causes are the same.

A fingerprint is (rows, XOR of the first 64 bits of each row's MD5, XOR of the last 64 bits).
A row's text is its columns' comparison text (`migrate.verify.values.canonical`: decimals as exact
text without trailing zeros, timestamps in UTC as `YYYY-MM-DD HH:MM:SS.ffffff`, bytes in hex),
each written as `<characters>:<text>` or `-` for NULL, so NULL differs from '' and no two rows
share a text. MD5 runs on the UTF-8 bytes in every engine: MariaDB, PostgreSQL and DuckDB give the
same digest for the same text (tests/integration/migrate/verify/test_fingerprint.py shows it on the
real servers). Rows are unique per key, so no two equal rows cancel in the XOR.

Supported: a single-column integer primary key (its order is the same in every engine) and
columns of integer, DECIMAL, character, binary and date/time types. Other tables are read whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import duckdb

MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Column:
    """A source column: `family` is integer, decimal, text, binary, date, datetime, time or
    unsupported; `scale` the DECIMAL scale."""

    name: str
    family: str
    scale: int = 0


@dataclass(frozen=True)
class Fingerprint:
    """(rows, XOR of the MD5 halves as unsigned 64-bit integers) of one key range."""

    rows: int
    high: int
    low: int

    @classmethod
    def of(cls, row: Sequence[Any] | None) -> Fingerprint:
        """From a (count, xor_high, xor_low) result row; NULL XORs (no rows) are 0, signed ones masked."""
        count, high, low = row if row is not None else (0, 0, 0)
        return cls(int(count or 0), int(high or 0) & MASK64, int(low or 0) & MASK64)


@dataclass(frozen=True)
class KeyRange:
    """`lo <= key < hi`; None: unbounded on that side."""

    lo: int | None
    hi: int | None

    def __str__(self) -> str:
        return f"[{'-inf' if self.lo is None else self.lo}, {'+inf' if self.hi is None else self.hi})"


class Dialect(Protocol):
    """How one SQL engine writes a column's comparison text and a row's hash halves."""

    def quote(self, name: str) -> str: ...

    def text(self, column: Column) -> str: ...

    def char_length(self, expr: str) -> str: ...

    def concat(self, parts: Sequence[str]) -> str: ...

    def fingerprint(self, row_text: str) -> str: ...


class MariaDB:
    def quote(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def text(self, column: Column) -> str:
        c = self.quote(column.name)
        if column.family == "decimal" and column.scale > 0:
            # DECIMAL(p,s) as text always has s digits: drop trailing zeros, then a bare point.
            return f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST({c} AS CHAR)))"
        if column.family in ("integer", "decimal"):
            return f"CAST({c} AS CHAR)"
        if column.family == "binary":
            return f"LOWER(HEX({c}))"
        # No % in the SQL: it would need escaping only when parameters are passed.
        if column.family == "date":
            return f"CAST({c} AS CHAR)"
        if column.family == "datetime":  # TIMESTAMP in the session's time zone (UTC)
            return f"CAST(CAST({c} AS DATETIME(6)) AS CHAR)"
        if column.family == "time":
            return f"CAST(CAST({c} AS TIME(6)) AS CHAR)"
        return f"CONVERT({c} USING utf8mb4)"

    def char_length(self, expr: str) -> str:
        return f"CHAR_LENGTH({expr})"

    def concat(self, parts: Sequence[str]) -> str:
        return f"CONCAT({', '.join(parts)})"

    def fingerprint(self, row_text: str) -> str:
        half = "CAST(CONV(SUBSTR(h, {0}, 16), 16, 10) AS UNSIGNED)"
        return (
            f"SELECT COUNT(*), BIT_XOR({half.format(1)}), BIT_XOR({half.format(17)}) "
            f"FROM (SELECT MD5(CONVERT({row_text} USING utf8mb4)) AS h FROM {{table}} {{where}}) AS r"
        )


class PostgreSQL:
    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def text(self, column: Column) -> str:
        c = self.quote(column.name)
        if column.family == "decimal":
            return f"trim_scale({c})::text"
        if column.family == "binary":
            return f"encode({c}, 'hex')"
        if column.family == "date":
            return f"to_char({c}, 'YYYY-MM-DD')"
        if column.family == "datetime":  # timestamptz: read in a UTC session
            return f"to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"
        if column.family == "time":
            return f"to_char({c}, 'HH24:MI:SS.US')"
        return f"{c}::text"

    def char_length(self, expr: str) -> str:
        return f"char_length({expr})"

    def concat(self, parts: Sequence[str]) -> str:
        return f"concat({', '.join(parts)})"

    def fingerprint(self, row_text: str) -> str:
        half = "('x' || substr(h, {0}, 16))::bit(64)::bigint"
        return (
            f"SELECT count(*), bit_xor({half.format(1)}), bit_xor({half.format(17)}) "
            f"FROM (SELECT md5({row_text}) AS h FROM {{table}} {{where}}) AS r"
        )


class DuckDB:
    """Over columns that already hold the comparison text (VARCHAR), as the rebuilt side does."""

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def text(self, column: Column) -> str:
        return self.quote(column.name)

    def char_length(self, expr: str) -> str:
        return f"length({expr})"

    def concat(self, parts: Sequence[str]) -> str:
        return f"concat({', '.join(parts)})"

    def fingerprint(self, row_text: str) -> str:
        half = "('0x' || substr(h, {0}, 16))::UBIGINT"
        return (
            f"SELECT count(*), bit_xor({half.format(1)}), bit_xor({half.format(17)}) "
            f"FROM (SELECT md5({row_text}) AS h FROM {{table}} {{where}}) AS r"
        )


DIALECTS: dict[str, Dialect] = {"mariadb": MariaDB(), "postgresql": PostgreSQL(), "duckdb": DuckDB()}


def row_text(dialect: Dialect, columns: Sequence[Column]) -> str:
    """The SQL expression of a row's text: `<characters>:<text>` per column, `-` for NULL."""
    parts = []
    for column in columns:
        text = dialect.text(column)
        present = dialect.concat([dialect.char_length(text), "':'", text])
        parts.append(f"CASE WHEN {dialect.quote(column.name)} IS NULL THEN '-' ELSE {present} END")
    return dialect.concat(parts)


def range_where(dialect: Dialect, key: str, bounds: KeyRange) -> tuple[str, dict[str, int]]:
    """`WHERE key >= :lo AND key < :hi` (the bounds present) and its parameters (pyformat)."""
    q = dialect.quote(key)
    terms, params = [], {}
    if bounds.lo is not None:
        terms.append(f"{q} >= %(lo)s")
        params["lo"] = bounds.lo
    if bounds.hi is not None:
        terms.append(f"{q} < %(hi)s")
        params["hi"] = bounds.hi
    return ("WHERE " + " AND ".join(terms)) if terms else "", params


def fingerprint_sql(
    dialect: Dialect, table: str, columns: Sequence[Column], key: str, bounds: KeyRange
) -> tuple[str, dict[str, int]]:
    """The query giving (rows, xor_high, xor_low) of `table`'s rows in `bounds` (one range scan)."""
    where, params = range_where(dialect, key, bounds)
    return dialect.fingerprint(row_text(dialect, columns)).format(table=table, where=where), params


def supported(columns: Sequence[Column], key: Sequence[Column]) -> str | None:
    """Why the table cannot be fingerprinted, or None when it can."""
    if len(key) != 1 or key[0].family != "integer":
        return "its primary key is not one integer column"
    odd = [c.name for c in columns if c.family == "unsupported"]
    if odd:
        return f"column(s) {', '.join(odd)} have no exact text in SQL (float, bit, ...)"
    return None


def rebuilt_ranges(con: duckdb.DuckDBPyConnection, table: str, rows_per_range: int) -> list[KeyRange]:
    """Key ranges of `rows_per_range` rows of `table` (a BIGINT column `key`), cut at its own keys;
    the first and last ranges are open, so rows of the other side outside them fall in one."""
    cuts = [
        int(r[0])
        for r in con.execute(
            f"SELECT key FROM (SELECT key, row_number() OVER (ORDER BY key) - 1 AS i FROM {table}) "
            f"WHERE i > 0 AND i % {int(rows_per_range)} = 0 ORDER BY key"
        ).fetchall()
    ]
    bounds: list[int | None] = [None, *cuts, None]
    return [KeyRange(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def rebuilt_fingerprints(
    con: duckdb.DuckDBPyConnection, table: str, names: Sequence[str], rows_per_range: int, ranges: int
) -> list[Fingerprint]:
    """The fingerprint of each of the `ranges` ranges `rebuilt_ranges` cut (same `rows_per_range`),
    over `table`'s text columns `names`, in DuckDB: range i holds rows i*n .. (i+1)*n-1 in key order."""
    text = row_text(DuckDB(), [Column(n, "text") for n in names])
    rows = con.execute(
        "SELECT b, count(*), bit_xor(('0x' || substr(h, 1, 16))::UBIGINT), "
        "bit_xor(('0x' || substr(h, 17, 16))::UBIGINT) FROM ("
        f"SELECT (row_number() OVER (ORDER BY key) - 1) // {int(rows_per_range)} AS b, md5({text}) AS h "
        f"FROM {table}) GROUP BY b"
    ).fetchall()
    found = {int(r[0]): Fingerprint.of(r[1:]) for r in rows}
    return [found.get(i, Fingerprint(0, 0, 0)) for i in range(ranges)]
