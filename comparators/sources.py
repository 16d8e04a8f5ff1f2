"""Load one side of a reconciliation into DuckDB.

A source registers a view or temporary table under a name the engine chooses;
the engine scans it more than once (counting, hashing, reading candidate rows), so
one-shot inputs (SQL cursors, Arrow readers) are materialised into DuckDB first,
chunk by chunk, which spills to its temp directory instead of growing memory
without bound.

Sources: `ParquetSource` (file or glob), `CsvSource`, `DuckDBSource` (a table in a
DuckDB file), `SqlSource` (SQLAlchemy URL plus table or query: MariaDB/MySQL via
pymysql, PostgreSQL via psycopg), `FrameSource` (pandas, polars, Arrow) and
`ChangelogSource` (any of these read as of a source position). `open_source`
turns the CLI's strings and Python objects into one of them.

The changelog contract (what a streaming job writes for `ChangelogSource`) is in
`comparators.changelog`.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import duckdb

from comparators.changelog import ChangelogSource
from comparators.errors import SourceError
from comparators.source import Source
from comparators.sql import ident, literal, one_row

# Fetch size for SQL sources: large enough to amortise round trips, small enough per chunk.
SQL_CHUNK_ROWS = 50_000


def _io_error(what: str, exc: Exception, hint: str) -> SourceError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SourceError(f"cannot read {what}: {first}; {hint}")


def _check_files(path: str, kind: str) -> None:
    if any(ch in path for ch in "*?[") or path.startswith(("s3://", "http://", "https://")):
        if not any(ch in path for ch in "*?[") or glob.glob(path, recursive=True):
            return
        raise SourceError(f"no {kind} files match {path}; check the glob pattern")
    if not os.path.exists(path):
        raise SourceError(f"{kind} file {path} does not exist; check the path")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{kind} file {path} is not readable; check its permissions")


@dataclass(frozen=True)
class ParquetSource:
    """Parquet file(s); `path` may be a glob such as `out/day=*/*.parquet`."""

    path: str

    @property
    def label(self) -> str:
        return self.path

    def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[str]) -> None:
        _check_files(self.path, "Parquet")
        try:
            reader = f"read_parquet({literal(self.path)})"
            con.execute(f"CREATE TEMP VIEW {ident(name)} AS SELECT * FROM {reader}")
            con.execute(f"SELECT * FROM {ident(name)} LIMIT 0").fetchall()
        except duckdb.Error as exc:
            raise _io_error(f"Parquet {self.path}", exc, "is it a Parquet file?") from exc


_PLAIN_DECIMAL = r"^\s*[-+]?[0-9]*\.?[0-9]+\s*$"


@dataclass(frozen=True)
class CsvSource:
    """A CSV file or glob. Columns DuckDB would sniff as DOUBLE but that hold only plain
    decimal literals are read as DECIMAL, so money stays exact."""

    path: str

    @property
    def label(self) -> str:
        return self.path

    def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[str]) -> None:
        _check_files(self.path, "CSV")
        src = literal(self.path)
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM read_csv({src})").fetchall()
            doubles = [str(r[0]) for r in described if r[1] == "DOUBLE"]
            if not doubles:
                con.execute(f"CREATE TEMP VIEW {ident(name)} AS SELECT * FROM read_csv({src})")
                return
            types = ", ".join(f"{literal(c)}: 'VARCHAR'" for c in doubles)
            reader = f"read_csv({src}, types={{{types}}})"
            probes = ", ".join(
                f"bool_and({ident(c)} IS NULL OR regexp_matches({ident(c)}, '{_PLAIN_DECIMAL}')),"
                f" max(length(split_part(trim({ident(c)}), '.', 2))),"
                f" max(length(ltrim(split_part(trim({ident(c)}), '.', 1), '+-0')))"
                for c in doubles
            )
            stats = one_row(con, f"SELECT {probes} FROM {reader}")
            replace = []
            for i, col in enumerate(doubles):
                plain, scale, digits = stats[3 * i : 3 * i + 3]
                scale, digits = int(scale or 0), int(digits or 0)
                target = f"DECIMAL({digits + scale}, {scale})"
                if not plain or digits + scale > 38 or digits + scale == 0:
                    target = "DOUBLE"
                replace.append(f"CAST({ident(col)} AS {target}) AS {ident(col)}")
            con.execute(f"CREATE TEMP VIEW {ident(name)} AS SELECT * REPLACE ({', '.join(replace)}) FROM {reader}")
        except duckdb.Error as exc:
            raise _io_error(f"CSV {self.path}", exc, "is it a CSV file with a header?") from exc


@dataclass(frozen=True)
class DuckDBSource:
    """A table (or view) in a DuckDB database file, attached read-only."""

    path: str
    table: str
    schema: str = "main"

    @property
    def label(self) -> str:
        return f"duckdb:{self.path}?table={self.table}"

    def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[str]) -> None:
        _check_files(self.path, "DuckDB")
        alias = f"{name}__db"
        try:
            con.execute(f"ATTACH {literal(self.path)} AS {ident(alias)} (READ_ONLY)")
        except duckdb.Error as exc:
            raise _io_error(f"DuckDB database {self.path}", exc, "is it a DuckDB file?") from exc
        tables = [
            str(r[0])
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ?",
                [alias, self.schema],
            ).fetchall()
        ]
        if self.table not in tables:
            raise SourceError(
                f"table {self.table!r} not found in {self.path} (schema {self.schema!r}); "
                f"tables there: {', '.join(sorted(tables)) or 'none'}"
            )
        con.execute(
            f"CREATE TEMP VIEW {ident(name)} AS SELECT * FROM {ident(alias)}.{ident(self.schema)}.{ident(self.table)}"
        )


@dataclass(frozen=True)
class SqlSource:
    """A table or query behind a SQLAlchemy URL, fetched once in chunks into DuckDB."""

    url: str = field(repr=False)  # holds the password: `label` is what to show
    table: str | None = None
    query: str | None = None
    schema: str | None = None

    @property
    def label(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            shown = make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # an unparsable URL must still never leak what might be a password
            shown = "<unparsable URL>"
        return f"{shown} ({'table ' + self.table if self.table else 'query'})"

    def hide_secret(self, text: str) -> str:
        """`text` (a driver's or SQLAlchemy's message) with the URL's password, and the URL itself,
        masked: a message built from the URL must never carry the password."""
        text = text.replace(self.url, self.label)
        # urlsplit, not make_url: it finds the password even where SQLAlchemy refuses the URL (a bad port).
        spelled = urlsplit(self.url).password
        for secret in sorted({spelled, unquote(spelled)} if spelled else (), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[str]) -> None:
        import sqlalchemy as sa

        if (self.table is None) == (self.query is None):
            raise SourceError(f"{self.label}: give exactly one of table= or query=")
        where = self.label
        try:
            engine = sa.create_engine(self.url)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
            raise SourceError(
                self.hide_secret(f"bad database URL {where}: {exc}; expected e.g. mysql+pymysql://user@host/db")
            ) from exc
        try:
            with engine.connect() as conn:
                if self.table is not None:
                    stmt: Any = sa.select(sa.Table(self.table, sa.MetaData(), schema=self.schema, autoload_with=conn))
                else:
                    stmt = sa.text(self.query or "")
                result = conn.execution_options(stream_results=True).execute(stmt)
                columns = list(result.keys())
                loader = _ChunkLoader(con, name, where)
                while rows := result.fetchmany(SQL_CHUNK_ROWS):
                    loader.add({c: [r[i] for r in rows] for i, c in enumerate(columns)})
                loader.finish(columns)
        except sa.exc.NoSuchTableError as exc:
            raise SourceError(f"table {self.table!r} not found at {where}; check the name") from exc
        except sa.exc.SQLAlchemyError as exc:
            msg = self.hide_secret(str(getattr(exc, "orig", None) or exc).splitlines()[0])
            raise SourceError(f"cannot read {where}: {msg}; check host, credentials and table") from exc
        finally:
            engine.dispose()


class _ChunkLoader:
    """Appends chunks of rows to a DuckDB temp table as they arrive, so memory holds one
    chunk (DuckDB spills the table to its temp directory). Arrow infers each chunk's
    types; when a later chunk needs wider ones (more decimal digits, a column that was
    all NULL so far, integers then floats), the table's columns are widened first."""

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str, where: str) -> None:
        self.con, self.name, self.where = con, name, where
        self.schema: Any = None

    def add(self, data: dict[str, list[Any]]) -> None:
        import pyarrow as pa  # only SQL and frame sources need Arrow; keep imports light

        try:
            chunk = pa.table(data)
            if self.schema is None:
                self.schema = chunk.schema
                _materialise(self.con, self.name, chunk)
                return
            if chunk.schema != self.schema:
                wider = pa.unify_schemas([self.schema, chunk.schema], promote_options="permissive")
                for field in wider:
                    if field.type != self.schema.field(field.name).type:
                        self._widen(field)
                self.schema = wider
                chunk = chunk.cast(wider)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise SourceError(
                f"cannot load {self.where}: {str(exc).splitlines()[0]}; a column holds values"
                " of different types, cast it in a query (?query=...)"
            ) from exc
        tmp = f"{self.name}__chunk"
        self.con.register(tmp, chunk)
        try:
            self.con.execute(f"INSERT INTO {ident(self.name)} SELECT * FROM {ident(tmp)}")
        finally:
            self.con.unregister(tmp)

    def _widen(self, field: Any) -> None:
        import pyarrow as pa

        probe = f"{self.name}__type"
        self.con.register(probe, pa.table({"x": pa.array([], field.type)}))
        try:
            duck_type = str(self.con.execute(f"DESCRIBE {ident(probe)}").fetchall()[0][1])
        finally:
            self.con.unregister(probe)
        self.con.execute(f"ALTER TABLE {ident(self.name)} ALTER COLUMN {ident(field.name)} SET DATA TYPE {duck_type}")

    def finish(self, columns: list[str]) -> None:
        """An empty result still becomes a (zero-row) table with the result's columns."""
        import pyarrow as pa

        if self.schema is None:
            _materialise(self.con, self.name, pa.table({c: pa.array([], pa.null()) for c in columns}))


def _materialise(con: duckdb.DuckDBPyConnection, name: str, data: Any) -> None:
    tmp = f"{name}__in"
    con.register(tmp, data)
    try:
        con.execute(f"CREATE TEMP TABLE {ident(name)} AS SELECT * FROM {ident(tmp)}")
    finally:
        con.unregister(tmp)


@dataclass(frozen=True)
class FrameSource:
    """A pandas or polars DataFrame, an Arrow table or an Arrow record-batch reader."""

    frame: Any = field(compare=False)
    name: str = "dataframe"

    @property
    def label(self) -> str:
        return f"<{self.name}>"

    def register(self, con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[str]) -> None:
        import pyarrow as pa

        data = self.frame
        module = type(data).__module__
        if module.startswith("polars"):
            data = data.to_arrow()
        elif module.startswith("pandas"):
            # Via Arrow so Decimal objects become DECIMAL rather than DOUBLE.
            data = pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, pa.RecordBatchReader):
            _materialise(con, name, data)
            return
        if not isinstance(data, pa.Table):
            raise SourceError(
                f"cannot use a {type(self.frame).__name__} as a side; "
                "give a pandas/polars DataFrame, an Arrow table or a path/URL"
            )
        con.register(name, data)


def open_source(spec: Any, *, position: str | None = None) -> Source:
    """Turn a CLI string or a Python object into a `Source`.

    Strings: `PATH.parquet`/`PATH.csv` (globs allowed), `duckdb:PATH?table=T`, or a
    SQLAlchemy URL with `?table=T` (or `?query=...`) which is removed before connecting.
    With `position`, the side is a changelog read as of that position.

    >>> open_source("out/*.parquet")
    ParquetSource(path='out/*.parquet')
    >>> open_source("duckdb:w.db?table=orders")
    DuckDBSource(path='w.db', table='orders', schema='main')
    """
    src = spec if isinstance(spec, Source) else _from_object(spec)
    return ChangelogSource(src, position) if position is not None else src


def _from_object(spec: Any) -> Source:
    if not isinstance(spec, str | os.PathLike):
        return FrameSource(spec, type(spec).__name__)
    text = os.fspath(spec)
    if text.startswith("duckdb:") and "://" not in text:
        path, _, query = text[len("duckdb:") :].partition("?")
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        if "table" not in params:
            raise SourceError(f"{text}: name the table, e.g. duckdb:{path}?table=orders")
        return DuckDBSource(path, params["table"], params.get("schema", "main"))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        return _sql_source(text)
    lowered = text.lower().removesuffix(".gz").removesuffix(".zst")
    if lowered.endswith((".parquet", ".pq")):
        return ParquetSource(text)
    if lowered.endswith(".csv"):
        return CsvSource(text)
    raise SourceError(
        f"cannot tell what {text!r} is; give a .parquet or .csv path, "
        "duckdb:PATH?table=T, or a SQLAlchemy URL with ?table=T"
    )


def _sql_source(text: str) -> SqlSource:
    from sqlalchemy.engine import make_url

    try:
        url = make_url(text)
    except Exception as exc:
        scheme = urlsplit(text).scheme
        reason = str(exc).replace(text, f"{scheme}://...")  # the whole URL may hold a password
        raise SourceError(f"bad database URL ({scheme}://...): {reason}") from exc
    params = {k: (v[-1] if isinstance(v, tuple) else v) for k, v in url.query.items()}
    table, query, schema = params.get("table"), params.get("query"), params.get("schema")
    if table is None and query is None:
        shown = url.render_as_string(hide_password=True)
        raise SourceError(f"{shown}: add ?table=NAME (or ?query=SQL) to say what to compare")
    clean = url.difference_update_query(["table", "query", "schema"])
    return SqlSource(clean.render_as_string(hide_password=False), table, query, schema)
