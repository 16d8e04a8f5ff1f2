"""Key-range fingerprints on the real servers: MariaDB and PostgreSQL compute, inside the database,
the same fingerprint that DuckDB computes over the comparison text dualrun reads from them
(`migrate.verify.values.canonical`), and the same as each other for the same values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pytest

from migrate.stackconfig import StackConfig
from migrate.verify.fingerprint import (
    Column,
    DuckDB,
    Fingerprint,
    KeyRange,
    MariaDB,
    PostgreSQL,
    fingerprint_sql,
    row_text,
)
from migrate.verify.values import canonical
from tests.integration.conftest import Database

COLUMNS = (
    Column("id", "integer"), Column("amount", "decimal", 4), Column("whole", "decimal", 0), Column("note", "text"),
    Column("at", "datetime"), Column("day", "date"), Column("t", "time"), Column("raw", "binary"),
    Column("n", "integer"),
)  # fmt: skip
ROWS: list[tuple[Any, ...]] = [
    (1, Decimal("129.9900"), Decimal("100"), "first", datetime(2024, 3, 31, 1, 30, 0, 123456), date(2024, 3, 31),
     time(1, 2, 3, 500000), b"\x00\xff", 9007199254740993),
    (2, Decimal("0.0000"), Decimal("0"), "", None, None, None, b"", -1),
    (3, Decimal("-42.5000"), None, None, datetime(2024, 10, 27, 3, 0), date(1970, 1, 1), time(0), None, None),
    (4, Decimal("100.0000"), Decimal("-7"), "héllo 🙂 e\u0301 ‘quoted’ \\ %s", datetime(2038, 1, 19, 3, 14, 7, 999999),
     date(9999, 12, 31), time(23, 59, 59, 999999), b"abc", 0),
    (5, Decimal("99999999999999.9999"), Decimal("9999999999"), "x" * 300, datetime(1000, 1, 1), date(1000, 1, 1),
     time(12), b"\x01" * 8, -9223372036854775808),
]  # fmt: skip
RANGES = (KeyRange(None, None), KeyRange(None, 3), KeyRange(2, 5), KeyRange(4, None), KeyRange(6, None))


def duckdb_fingerprints(rows: Sequence[Sequence[Any]], ranges: Sequence[KeyRange]) -> list[Fingerprint]:
    """What the rebuilt side computes: DuckDB over each value's comparison text."""
    names = [c.name for c in COLUMNS]
    data = {n: pa.array([canonical(r[i]) for r in rows], pa.string()) for i, n in enumerate(names)}
    con = duckdb.connect()
    try:
        con.register("side", pa.table({"key": pa.array([r[0] for r in rows], pa.int64()), **data}))
        prints = []
        for bounds in ranges:
            where = " AND ".join(
                t for t in (f"key >= {bounds.lo}" if bounds.lo is not None else "",
                            f"key < {bounds.hi}" if bounds.hi is not None else "") if t
            )  # fmt: skip
            sql = DuckDB().fingerprint(row_text(DuckDB(), [Column(n, "text") for n in names]))
            prints.append(
                Fingerprint.of(
                    con.execute(sql.format(table="side", where=f"WHERE {where}" if where else "")).fetchone()
                )
            )
        return prints
    finally:
        con.close()


def database_fingerprints(cur: Any, dialect: Any, table: str, ranges: Sequence[KeyRange]) -> list[Fingerprint]:
    prints = []
    for bounds in ranges:
        sql, params = fingerprint_sql(dialect, table, COLUMNS, "id", bounds)
        cur.execute(sql, params or None)
        prints.append(Fingerprint.of(cur.fetchone()))
    return prints


@pytest.fixture
def mariadb_table(db: Database, unique: Callable[[str], str]) -> tuple[Database, str, list[tuple[Any, ...]]]:
    name = unique("fp")
    db.run(f"CREATE TABLE `{name}` (id INT PRIMARY KEY, amount DECIMAL(18,4), whole DECIMAL(10,0), "
           "note VARCHAR(400) CHARACTER SET utf8mb4, at DATETIME(6), day DATE, t TIME(6), raw VARBINARY(8), "
           "n BIGINT)")  # fmt: skip
    # MariaDB's TIME also holds negative and long durations.
    rows = [*ROWS, (6, Decimal("1.0000"), None, "neg", None, None, "-837:00:00.5", None, None)]
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO `{name}` VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        cur.execute(f"SELECT * FROM `{name}` ORDER BY id")
        read = [tuple(r) for r in cur.fetchall()]
    return db, name, read


def test_mariadb_fingerprints_equal_duckdbs_over_the_text_dualrun_reads(
    mariadb_table: tuple[Database, str, list[tuple[Any, ...]]],
) -> None:
    db, name, read = mariadb_table
    assert read[5][6] is not None and canonical(read[5][6]) == "-837:00:00.500000"
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        ours = database_fingerprints(cur, MariaDB(), f"`{name}`", RANGES)
    theirs = duckdb_fingerprints(read, RANGES)
    assert ours == theirs
    assert [f.rows for f in ours] == [6, 2, 3, 3, 1]
    assert len({(f.high, f.low) for f in ours}) == 5  # every range its own fingerprint


def test_a_null_and_an_empty_string_and_a_changed_digit_give_other_fingerprints(
    mariadb_table: tuple[Database, str, list[tuple[Any, ...]]],
) -> None:
    db, name, read = mariadb_table
    whole = [KeyRange(None, None)]
    base = duckdb_fingerprints(read, whole)
    with db.connect() as conn, conn.cursor() as cur:
        for change in ("note = NULL WHERE id = 2", "note = '' WHERE id = 3", "amount = 129.9901 WHERE id = 1",
                       "at = at + INTERVAL 1 MICROSECOND WHERE id = 1"):  # fmt: skip
            cur.execute("SET time_zone = '+00:00'")
            cur.execute("START TRANSACTION")
            cur.execute(f"UPDATE `{name}` SET {change}")
            assert database_fingerprints(cur, MariaDB(), f"`{name}`", whole) != base, change
            cur.execute("ROLLBACK")
        assert database_fingerprints(cur, MariaDB(), f"`{name}`", whole) == base


def test_postgresql_fingerprints_equal_duckdbs_and_mariadbs_for_the_same_values(
    postgres_stack: StackConfig, unique: Callable[[str], str],
    mariadb_table: tuple[Database, str, list[tuple[Any, ...]]],
) -> None:  # fmt: skip
    stack = postgres_stack
    name = unique("fp")
    with psycopg.connect(host="127.0.0.1", port=stack.ports.postgres, user=stack.db_user,
                         password=stack.db_password, dbname=stack.database, autocommit=True) as conn:  # fmt: skip
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, amount NUMERIC(18,4), whole NUMERIC(10,0), "
                     "note TEXT, at TIMESTAMP(6), day DATE, t TIME(6), raw BYTEA, n BIGINT)")  # fmt: skip
        try:
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {name} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", ROWS)
                cur.execute(f"SELECT * FROM {name} ORDER BY id")
                read = [tuple(r) for r in cur.fetchall()]
                ours = database_fingerprints(cur, PostgreSQL(), name, RANGES)
        finally:
            conn.execute(f"DROP TABLE {name}")
    assert ours == duckdb_fingerprints(read, RANGES)
    # The same values in MariaDB (its table without the extra row 6) give the same fingerprints.
    db, table, _ = mariadb_table
    with db.connect() as my, my.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(f"DELETE FROM `{table}` WHERE id = 6")
        assert database_fingerprints(cur, MariaDB(), f"`{table}`", RANGES) == ours
