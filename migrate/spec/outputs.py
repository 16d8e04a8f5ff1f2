"""The outputs of a spec: each one's batch query (or imported result), stream topic or table,
sink, tolerances, expectations and lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from comparators.errors import ComparatorError
from comparators.rules import parse_rule
from migrate.errors import SpecError
from migrate.spec.base import _Model, has_password, shown_url, sqlalchemy_url_problem
from migrate.spec.columns import arrow_type
from migrate.spec.lineage import TableLineage, check_lineage


class BatchImportSpec(_Model):
    """Where an external batch job (`dualrun run batch --external`) wrote one output: a database
    table or query behind a SQLAlchemy URL (password from `password_env`), a Parquet or a CSV file."""

    url: str | None = None
    table: str | None = None
    query: str | None = None
    password_env: str | None = None
    parquet: str | None = None
    csv: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> BatchImportSpec:
        given = [name for name in ("url", "parquet", "csv") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of url (with table or query), parquet and csv")
        if self.url is not None:
            # The password first: the malformed-URL message must never echo it.
            if has_password(self.url):
                raise ValueError("put the password in the environment variable named by password_env, not in the URL")
            problem = sqlalchemy_url_problem(self.url, "postgresql+psycopg://user@host/db")
            if problem:
                raise ValueError(problem)
            if (self.table is None) == (self.query is None):
                raise ValueError("with url, give exactly one of table and query")
        elif self.table is not None or self.query is not None or self.password_env is not None:
            raise ValueError("table, query and password_env go with url only")
        return self


class OutputBatchSpec(_Model):
    """The batch side of one output: a query in the source's dialect, inline or in a file; or,
    for an external batch job, where that job wrote it (`import`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    sql: str | None = None
    sql_file: str | None = None  # the loader makes it absolute (relative to the spec file)
    columns: dict[str, str] = Field(default_factory=dict)  # column -> SQL type, overriding the result set's
    import_: BatchImportSpec | None = Field(default=None, alias="import")

    @model_validator(mode="after")
    def _one_query(self) -> OutputBatchSpec:
        if self.import_ is None and (self.sql is None) == (self.sql_file is None):
            raise ValueError(
                "give exactly one of sql (inline) and sql_file (a path relative to the spec file), "
                "or import (where an external batch job writes the output)"
            )
        if self.sql is not None and self.sql_file is not None:
            raise ValueError("give one of sql and sql_file, not both")
        if self.sql is not None and not self.sql.strip():
            raise ValueError("sql is empty")
        if self.sql_file is not None and not Path(self.sql_file).is_file():
            raise ValueError(f"sql_file {self.sql_file} does not exist (relative paths resolve against the spec file)")
        return self

    @field_validator("columns")
    @classmethod
    def _known_types(cls, columns: dict[str, str]) -> dict[str, str]:
        for name, text in columns.items():
            try:
                arrow_type(text)
            except ValueError as exc:
                raise ValueError(f"column {name}: {exc}") from None
        return columns

    def sql_text(self) -> str:
        """The query, read from `sql_file` when the spec names one, without a trailing `;` (it runs
        as one statement and is nested as a subquery when evidence is gathered)."""
        text = self.sql
        if text is None and self.sql_file is None:
            raise SpecError(
                "this output is imported from an external batch job (batch.import) and has no sql: "
                "run it with `dualrun run batch --external -- COMMAND`, or add sql"
            )
        if text is None:
            assert self.sql_file is not None  # _one_query
            try:
                text = Path(self.sql_file).read_text()
            except OSError as exc:
                raise SpecError(f"sql_file {self.sql_file}: {exc.strerror}; restore the file or fix the path") from None
        return text.strip().rstrip(";").rstrip() + "\n"


class OutputStreamSpec(_Model):
    """Where the stream side of one output is read: a Kafka topic or a sink table."""

    topic: str | None = None  # JSON key (object or scalar) and JSON value; a tombstone deletes
    table: str | None = None  # a SQLAlchemy URL with ?table=T, where the user's job writes a database
    position_header: str | None = None  # None: cdc.position_header

    @model_validator(mode="after")
    def _one_place(self) -> OutputStreamSpec:
        if self.topic is not None and self.table is not None:
            raise ValueError("give one of topic and table, not both")
        return self

    @field_validator("table")
    @classmethod
    def _table_url(cls, table: str | None) -> str | None:
        if table is not None:
            # The password first: the malformed-URL message below must never echo it.
            if has_password(table):
                raise ValueError("put the password in the environment, not in the table URL")
            parts = urlsplit(table)
            if not parts.scheme or "table=" not in parts.query:
                raise ValueError(
                    f"{shown_url(table)}: expected a SQLAlchemy URL naming the table, like "
                    "postgresql+psycopg://u@h/db?table=t"
                )
        return table


class OutputSinkSpec(_Model):
    """Where users read one output: a Kafka Connect JDBC sink (Debezium's) writing the output topic
    into a PostgreSQL table, reconciled as a third side (`migrate.sink`)."""

    table: str  # the sink's table (upsert by the record key; a tombstone deletes)
    connector: str | None = None  # None: `<spec name>-<table>-sink`
    # SQLAlchemy URL of the sink's database without the password; None: the local stack's PostgreSQL.
    url: str | None = None
    password_env: str = "DUALRUN_DB_PASSWORD"
    # A Java properties file on the Connect worker's host holding `connection.password`: the
    # connector config then says `${file:PATH:connection.password}` (the worker needs
    # `config.providers=file`), so Connect's config topic and REST API never hold the password.
    # dualrun reads the table with `password_env`, else with this file when it can read it.
    # None: the local stack's own secrets file, or the password itself in the config.
    password_file: str | None = None
    read_committed: bool = True  # register with consumer.override.isolation.level=read_committed

    @field_validator("url")
    @classmethod
    def _no_password(cls, url: str | None) -> str | None:
        if url is not None:
            # The password first: no later message may echo it.
            if has_password(url):
                raise ValueError("put the password in the environment (password_env), not in the URL")
            problem = sqlalchemy_url_problem(url, "postgresql+psycopg://user@host:5432/db")
            if problem:
                raise ValueError(problem)
            scheme = urlsplit(url).scheme
            if not scheme.startswith("postgresql"):
                raise ValueError(
                    f"scheme {scheme!r}: the sink's database must be PostgreSQL (postgresql+psycopg://u@h:p/db)"
                )
        return url


class ExpectSpec(_Model):
    """Data-quality expectations the checklist runs on both sides of one output (keys are always
    checked not null and unique)."""

    not_empty: bool = True  # at least one row (turn off for outputs that may legitimately be empty)
    non_negative: tuple[str, ...] = ()  # columns whose values are never below zero


class OutputSpec(_Model):
    """One output of the pipeline, produced by both sides and compared at the batch position."""

    keys: tuple[str, ...]
    batch: OutputBatchSpec
    stream: OutputStreamSpec = Field(default_factory=OutputStreamSpec)
    sink: OutputSinkSpec | None = None
    tolerances: dict[str, str] = Field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    partition: str | None = None
    expect: ExpectSpec = Field(default_factory=ExpectSpec)
    # Source table -> {output column: SQL expression over the change's row image} or `all`
    # (migrate.spec.lineage): lets outputs without positions be compared outside the window.
    lineage: dict[str, TableLineage] = Field(default_factory=dict)

    @field_validator("keys")
    @classmethod
    def _keys_not_empty(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        if not keys:
            raise ValueError("at least one key column is required")
        return keys

    @field_validator("lineage", mode="before")
    @classmethod
    def _lineage(cls, lineage: Any) -> Any:
        return check_lineage(lineage)

    @field_validator("tolerances")
    @classmethod
    def _known_rules(cls, tolerances: dict[str, str]) -> dict[str, str]:
        for column, text in tolerances.items():
            try:
                parse_rule(text)
            except ComparatorError as exc:
                raise ValueError(f"column {column}: {exc}") from None
        return tolerances
