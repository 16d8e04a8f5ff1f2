"""The source database as the batch job reads it: its URL and description for messages, a spec's
query as the driver takes it, and result sets turned into Arrow chunks of exact types (shared by
the MariaDB and PostgreSQL readers, `migrate.batch` and `migrate.pgsource`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import URL, make_url

from migrate.errors import DualrunError, SpecError
from migrate.spec import PipelineSpec

CHUNK_ROWS = 50_000


def source_url(spec: PipelineSpec) -> URL:
    return make_url(spec.source.url).set(password=spec.source.password())


def describe_source(spec: PipelineSpec) -> str:
    """host:port/db of the source, for messages (never the password)."""
    url = make_url(spec.source.url)
    port = url.port or (5432 if spec.source.kind == "postgres" else 3306)
    return f"{url.username}@{url.host}:{port}/{url.database}"


def check_tables(conn: Any, spec: PipelineSpec) -> None:
    """Every `cdc.tables` entry (database.table, or schema.table on PostgreSQL) exists in the source,
    as information_schema shows it to the spec's user; SpecError naming the first that does not."""
    rows = conn.exec_driver_sql("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
    present = {f"{schema}.{name}" for schema, name in rows}
    for table in spec.cdc.tables:
        if table not in present:
            raise SpecError(
                f"cdc.tables: {table} does not exist in the source {describe_source(spec)} (or the user cannot "
                "see it); fix the name as database.table or create the table"
            )


def check_columns(names: list[str], output: str, overrides: dict[str, str]) -> None:
    """Result-set column names are unique and every `columns` override names one of them."""
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DualrunError(f"outputs.{output}.batch: the query returns column(s) {', '.join(twice)} twice; alias them")
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise DualrunError(
            f"outputs.{output}.batch.columns: {', '.join(unknown)} not in the query's result ({', '.join(names)})"
        )


def chunks(result: Any, schema: pa.Schema, output: str) -> Iterator[pa.RecordBatch]:
    names = schema.names
    while rows := result.fetchmany(CHUNK_ROWS):
        columns = list(zip(*rows, strict=True))
        arrays = []
        for name, column in zip(names, columns, strict=True):
            kind = schema.field(name).type
            try:
                arrays.append(pa.array(column, type=kind))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise DualrunError(
                    f"outputs.{output}.batch: column {name} does not fit {kind} ({exc}); "
                    f"set outputs.{output}.batch.columns.{name} to a type that holds it exactly"
                ) from None
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def driver_sql(sql: str) -> str:
    """A spec's query as the driver takes it: pymysql and psycopg format every statement with
    `%` placeholders, so a literal `%` (LIKE 'a%') is doubled."""
    return sql.replace("%", "%%")
