"""The spec's `cdc` section: the Debezium connector on Kafka Connect, and how `cdc verify` reads tables."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from cdc.connector import POSITION_HEADER
from migrate.errors import SpecError
from migrate.spec.base import _Model, env_password, http_url_problem
from migrate.spec.kafka import KafkaProperties

if TYPE_CHECKING:
    from cdc.connect import ConnectClient

DEFAULT_POSITION_HEADER = POSITION_HEADER  # the header the connector sets (cdc.connector)


class CdcVerifySpec(_Model):
    """How `dualrun cdc verify` reads each captured table: whole, or by key-range fingerprints
    computed inside the source (`migrate.verify.pushdown`) for tables above `fingerprint_above_rows`
    (InnoDB's row estimate) or listed in `fingerprint_tables` (database.table)."""

    fingerprint_above_rows: int = Field(default=1_000_000, ge=0)
    fingerprint_tables: tuple[str, ...] = ()
    rows_per_range: int = Field(default=10_000, gt=0)

    def fingerprinted(self, table: str, estimated_rows: int) -> bool:
        return table in self.fingerprint_tables or estimated_rows > self.fingerprint_above_rows


class CdcSpec(_Model):
    """The Debezium connector on Kafka Connect."""

    connect_url: str
    connector: str
    topic_prefix: str
    tables: tuple[str, ...]
    user: str
    password_env: str
    default_password: str | None = Field(default=None, repr=False, exclude=True)
    # Connect's REST API behind HTTPS and basic auth: the user, the variable holding its password,
    # and the CA bundle that signed the worker's certificate (None: the system's CAs).
    connect_user: str | None = None
    connect_password_env: str | None = None
    connect_ca: str | None = None
    default_connect_password: str | None = Field(default=None, repr=False, exclude=True)
    # Debezium's own Kafka principal for its schema history topic, over kafka.properties.
    kafka_properties: KafkaProperties = Field(default_factory=dict)
    # A properties file on the Connect worker's host holding `sasl.jaas.config` for the schema
    # history: the connector config then carries `${file:PATH:sasl.jaas.config}` (Connect's
    # FileConfigProvider, enabled on the worker) instead of the password, which Connect would
    # otherwise store in its config topic. Required when Debezium logs in with SASL.
    kafka_secrets_file: str | None = None
    # A properties file on the Connect worker's host holding `database.password`: the connector
    # config then carries `${file:PATH:database.password}`, so Connect's config topic and
    # GET /connectors/<name>/config never hold the database password. None: the password itself.
    password_file: str | None = None
    default_secrets: dict[str, str] = Field(default_factory=dict, repr=False, exclude=True)
    # The header the position SMT writes (Debezium's `source` block as JSON); None: no SMT.
    position_header: str | None = DEFAULT_POSITION_HEADER
    server_id: int | None = None
    # PostgreSQL: the publication the tables' owner created (default `dualrun_<connector>`); the
    # replication slot is always derived from the connector name (one slot per connector).
    publication: str | None = None
    verify: CdcVerifySpec = Field(default_factory=CdcVerifySpec)

    @field_validator("connect_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        # http_url_problem shows the URL with any password masked (Connect's basic auth is connect_user
        # and connect_password_env, never userinfo).
        problem = http_url_problem(url)
        if problem:
            raise ValueError(problem)
        return url

    @field_validator("tables")
    @classmethod
    def _tables_not_empty(cls, tables: tuple[str, ...]) -> tuple[str, ...]:
        if not tables:
            raise ValueError("list at least one captured table as database.table")
        for table in tables:
            if table.count(".") != 1:
                raise ValueError(f"{table!r}: name each table as database.table")
        return tables

    def password(self) -> str:
        return env_password("cdc", self.password_env, self.default_password)

    @model_validator(mode="after")
    def _connect_auth_pairs(self) -> CdcSpec:
        if (self.connect_user is None) != (self.connect_password_env is None and self.default_connect_password is None):
            raise ValueError("give both connect_user and connect_password_env for Connect's basic auth, or neither")
        return self

    def connect_client(
        self, *, timeout: float = 10.0, retries: int = 5, secrets: tuple[str, ...] = ()
    ) -> ConnectClient:
        """A `cdc.connect.ConnectClient` for `connect_url` with basic auth and the CA when given."""
        from cdc.connect import ConnectClient

        auth = None
        if self.connect_user is not None:
            env = self.connect_password_env or ""
            found = os.environ.get(env) if env else None
            if not (found or self.default_connect_password):
                raise SpecError(
                    f"cdc.connect_password_env: environment variable {env} is not set; export it with the "
                    "password of cdc.connect_user (passwords never live in the spec)"
                )
            auth = (self.connect_user, found or self.default_connect_password or "")
        verify: str | bool = self.connect_ca if self.connect_ca is not None else True
        return ConnectClient(self.connect_url, timeout=timeout, retries=retries, secrets=secrets, auth=auth,
                             verify=verify)  # fmt: skip

    def known_password(self) -> str | None:
        """The password if it is set, for masking it in messages; None when not set (no error)."""
        return os.environ.get(self.password_env) or self.default_password

    def topic(self, table: str) -> str:
        return f"{self.topic_prefix}.{table}"
