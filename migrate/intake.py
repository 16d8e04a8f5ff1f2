"""An external batch job's outputs, imported from where the job wrote them (design-byo §4.2):
`outputs.X.batch.import`, a SQLAlchemy URL with a table or query, a Parquet or a CSV file, typed
like the spec's `columns` (exact: a value that does not fit fails). `migrate.marks` calls it at
`batch mark --end`."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from comparators.errors import SourceError
from comparators.sources import CsvSource, ParquetSource, SqlSource
from comparators.sql import describe
from migrate.errors import DualrunError, SpecError
from migrate.spec import PipelineSpec
from migrate.spec.columns import arrow_type
from migrate.spec.model import BatchImportSpec


def _same_types(spec: PipelineSpec, tables: Mapping[str, pa.Table]) -> None:
    """SpecError when an import's column types differ from those earlier runs stored in the
    warehouse (appending would cast them silently: an empty first CSV stores every column as text)."""
    path = spec.warehouse_path
    if not path.exists():
        return
    with duckdb.connect(str(path), read_only=True) as con:
        stored = {str(r[0]) for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for name, table in tables.items():
            if name not in stored:
                continue
            before = dict(describe(con, name))
            con.register("incoming", table)
            now = dict(describe(con, "incoming"))
            con.unregister("incoming")
            changed = [(c, before[c], t) for c, t in now.items() if c in before and before[c] != t]
            if changed:
                col, was, is_ = changed[0]
                raise SpecError(
                    f"outputs.{name}.batch.import: column {col} is {is_} now but {was} in earlier runs in {path}; "
                    f"declare its type in outputs.{name}.batch.columns, or point batch.warehouse at a new file"
                )


def _import_source(spec: PipelineSpec, output: str, where: BatchImportSpec) -> Any:
    if where.parquet is not None:
        return ParquetSource(where.parquet)
    if where.csv is not None:
        return CsvSource(where.csv)
    assert where.url is not None  # BatchImportSpec._one_place
    url = sa.engine.make_url(where.url)
    if where.password_env is not None:
        password = os.environ.get(where.password_env)
        if password is None:
            raise SpecError(
                f"outputs.{output}.batch.import.password_env: environment variable {where.password_env} is not set; "
                "export it with the password"
            )
        url = url.set(password=password)
    return SqlSource(url.render_as_string(hide_password=False), where.table, where.query)


def import_output(spec: PipelineSpec, output: str) -> pa.Table:
    """One output as the external job wrote it, columns typed by `outputs.X.batch.columns` (exact:
    a value that does not fit its declared type fails, SpecError); a CSV's plain decimal literals
    are read as DECIMAL, never through a float (`comparators.sources.CsvSource`)."""
    out = spec.outputs[output]
    where = out.batch.import_
    field = f"outputs.{output}.batch.import"
    if where is None:
        raise SpecError(f"outputs.{output}.batch: say where the external job writes this output with import")
    source = _import_source(spec, output, where)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        try:
            source.register(con, "imported", list(out.keys))
            names = [name for name, _ in describe(con, "imported")]
            missing = [k for k in [*out.keys, *out.batch.columns] if k not in names]
            if missing:
                raise SpecError(f"{field}: {source.label} has no column {missing[0]!r} (it has {', '.join(names)})")
            table = con.sql("SELECT * FROM imported").to_arrow_table()
        except (SourceError, duckdb.Error) as exc:
            reason = str(exc).splitlines()[0]
            said = reason if reason.startswith("cannot read") else f"cannot read {source.label}: {reason}"
            raise SpecError(f"{field}: {said}") from None
    for name, text in out.batch.columns.items():
        i = table.schema.get_field_index(name)
        try:
            table = table.set_column(i, name, table.column(name).cast(arrow_type(text), safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SpecError(f"{field}: column {name} does not fit {text}: {str(exc).splitlines()[0]}") from None
    return table


def import_outputs(spec: PipelineSpec) -> dict[str, pa.Table]:
    """Every output of the spec as the external job wrote it (`import_output`), refused (SpecError)
    when a column's type differs from earlier runs in the warehouse (`_same_types`)."""
    tables = {name: import_output(spec, name) for name in spec.outputs}
    _same_types(spec, tables)
    return tables


def refuse_stale(spec: PipelineSpec, begun: datetime) -> None:
    """DualrunError (exit 2) when an output's Parquet or CSV file was last written before the bracket
    began (`begun`): a previous run's output, which the job of this bracket did not write. A table
    behind a URL carries no such evidence and is imported as it is."""
    for name, out in spec.outputs.items():
        where = out.batch.import_
        path = None if where is None else where.parquet or where.csv
        if path is None:
            continue
        for found in sorted(glob.glob(path)) if glob.has_magic(path) else [path]:
            try:
                written = datetime.fromtimestamp(os.stat(found).st_mtime, UTC)
            except OSError:
                continue  # missing: the import says so, in its own words
            if written < begun:
                raise DualrunError(
                    f"batch mark --end: outputs.{name}.batch.import: {found} was last written at "
                    f"{written.isoformat(timespec='seconds')}, before the bracket began at "
                    f"{begun.isoformat(timespec='seconds')}: a previous run's output; run the job, then "
                    "`dualrun batch mark --end` again"
                )
