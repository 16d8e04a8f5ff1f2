"""The pipeline spec (v2): one YAML file describes a whole dual run of the user's pipeline.

The model has no reference defaults: a spec names its source, connector, Kafka, the stream job's
consumer group and every output with its keys and batch SQL. Neutral defaults only (state folder,
compare rules, checklist thresholds, runner settings derived from the group). Secrets never live in
the file: `password_env` names the environment variable that holds each password; only a spec with
`local: true` (the local stack's example) falls back to the stack's local passwords.

Relative paths resolve against `state_dir`, which resolves against the current directory;
`sql_file` resolves against the spec file's folder (see `migrate.spec.load`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdc.client import KafkaSettings, is_secret
from cdc.connector import POSITION_HEADER
from comparators.errors import ComparatorError
from comparators.rules import parse_rule
from migrate.errors import SpecError
from migrate.spec.columns import arrow_type
from migrate.spec.lineage import TableLineage, check_lineage

if TYPE_CHECKING:
    from cdc.connect import ConnectClient

SUPPORTED_SOURCES = ("mariadb", "postgres")
DEFAULT_POSITION_HEADER = POSITION_HEADER  # the header the connector sets (cdc.connector)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _password(section: str, env: str, default: str | None) -> str:
    value = os.environ.get(env) or default
    if value is None:
        raise SpecError(
            f"{section}.password_env: environment variable {env} is not set; export it with the password "
            f"(passwords never live in the spec)"
        )
    return value


class SourceSpec(_Model):
    """The legacy OLTP database both pipelines read."""

    kind: str = "mariadb"
    url: str
    password_env: str
    # Set only by `local: true` (the local stack's passwords) or by code; never read from YAML and
    # never dumped.
    default_password: str | None = Field(default=None, repr=False, exclude=True)

    @field_validator("kind")
    @classmethod
    def _supported(cls, kind: str) -> str:
        if kind not in SUPPORTED_SOURCES:
            raise ValueError(
                f"source kind {kind!r} is not supported yet: dualrun takes consistent snapshots of "
                f"{', '.join(SUPPORTED_SOURCES)} only"
            )
        return kind

    @field_validator("url")
    @classmethod
    def _url_has_no_password(cls, url: str) -> str:
        parts = urlsplit(url)
        if not parts.scheme or not parts.hostname:
            raise ValueError("expected a SQLAlchemy URL like mysql+pymysql://user@host:3306/db")
        if parts.password:
            raise ValueError("put the password in the environment variable named by password_env, not in the URL")
        return url

    @property
    def database(self) -> str:
        return urlsplit(self.url).path.lstrip("/")

    def password(self) -> str:
        return _password("source", self.password_env, self.default_password)


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
    kafka_properties: dict[str, str] = Field(default_factory=dict)
    # A properties file on the Connect worker's host holding `sasl.jaas.config` for the schema
    # history: the connector config then carries `${file:PATH:sasl.jaas.config}` (Connect's
    # FileConfigProvider, enabled on the worker) instead of the password, which Connect would
    # otherwise store in its config topic. Required when Debezium logs in with SASL.
    kafka_secrets_file: str | None = None
    default_secrets: dict[str, str] = Field(default_factory=dict, repr=False, exclude=True)
    # The header the position SMT writes (Debezium's `source` block as JSON); None: no SMT.
    position_header: str | None = DEFAULT_POSITION_HEADER
    server_id: int | None = None
    # PostgreSQL: the publication the tables' owner created (default `dualrun_<connector>`); the
    # replication slot is always derived from the connector name (one slot per connector).
    publication: str | None = None
    verify: CdcVerifySpec = Field(default_factory=CdcVerifySpec)

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
        return _password("cdc", self.password_env, self.default_password)

    @field_validator("kafka_properties", mode="before")
    @classmethod
    def _texts(cls, properties: Any) -> Any:
        return _texts(properties)

    @field_validator("kafka_properties")
    @classmethod
    def _no_literal_secrets(cls, properties: dict[str, str]) -> dict[str, str]:
        return _checked_properties(properties)

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


ENV_SUFFIX = "_env"


def _property_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ValueError(f"expected a string, number or boolean, got {type(value).__name__}")


def _checked_properties(properties: dict[str, str]) -> dict[str, str]:
    for key, value in properties.items():
        if key == "bootstrap.servers":
            raise ValueError("bootstrap.servers: set kafka.bootstrap_servers instead")
        if key.endswith(ENV_SUFFIX):
            if not value.strip():
                raise ValueError(f"{key}: name the environment variable that holds {key[: -len(ENV_SUFFIX)]}")
        elif is_secret(key):
            raise ValueError(
                f"{key}: secrets never live in the spec; name the environment variable that holds it "
                f"with `{key}{ENV_SUFFIX}: NAME`"
            )
    return properties


def _texts(properties: Any) -> Any:
    if not isinstance(properties, dict):
        return properties
    return {str(key): _property_text(value) for key, value in properties.items()}


def client_settings(
    bootstrap_servers: str, properties: dict[str, str], defaults: dict[str, str], where: str
) -> KafkaSettings:
    """Settings from spec properties: each `<p>_env: NAME` becomes property p read from variable NAME
    (else from `defaults`, the local stack's); SpecError naming `where` when it is not set."""
    plain: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for key, value in properties.items():
        if not key.endswith(ENV_SUFFIX):
            plain[key] = value
            continue
        name = key[: -len(ENV_SUFFIX)]
        found = os.environ.get(value) or defaults.get(name)
        if found is None:
            raise SpecError(
                f"{where}.{key}: environment variable {value} is not set; export it with the "
                f"{name} (secrets never live in the spec)"
            )
        (secrets if is_secret(name) else plain)[name] = found
    for name, found in defaults.items():
        if name not in plain and name not in secrets:
            secrets[name] = found
    return KafkaSettings(bootstrap_servers, plain, secrets)


class KafkaSpec(_Model):
    """The Kafka cluster every client dualrun creates connects to (stream job, output reader,
    checklist, tail, admin, progress fences).

    `properties` are librdkafka client properties (security.protocol, sasl.mechanism, sasl.username,
    ssl.ca.location, ...). A credential never lives in the file: `<property>_env: NAME` reads the
    property from environment variable NAME (`sasl.password_env: KAFKA_PASSWORD`), like
    `password_env` elsewhere in the spec; a literal secret (`sasl.password: ...`) is refused.
    """

    bootstrap_servers: str
    properties: dict[str, str] = Field(default_factory=dict)
    # Set only by `local: true` on a `stack up --secure` stack (its dualrun user); never dumped.
    default_secrets: dict[str, str] = Field(default_factory=dict, repr=False, exclude=True)

    @field_validator("properties", mode="before")
    @classmethod
    def _texts(cls, properties: Any) -> Any:
        return _texts(properties)

    @field_validator("properties")
    @classmethod
    def _no_literal_secrets(cls, properties: dict[str, str]) -> dict[str, str]:
        return _checked_properties(properties)

    def client(self) -> KafkaSettings:
        """The settings dualrun's own Kafka clients are built from (reader, checklist, fences, tail,
        admin), `*_env` properties read from the environment. SpecError naming the property when its
        variable is not set."""
        return client_settings(self.bootstrap_servers, self.properties, self.default_secrets, "kafka.properties")


class BatchSpec(_Model):
    """The legacy nightly job: the outputs' SQL in one consistent snapshot, outputs to a warehouse."""

    warehouse: str = "warehouse.duckdb"
    # Run every query twice in the same snapshot: the difference is the batch job's own noise.
    rerun_for_noise: bool = True
    # After each run, check the change log against the source (`dualrun cdc verify`).
    verify_cdc: bool = False


class StreamSpec(_Model):
    """The streaming job: its consumer group, and dualrun's runner settings when dualrun runs it.

    Without `pipeline` the user's own job writes the output topics and dualrun reads them; with
    `pipeline` ("pkg.module:ATTR"), dualrun runs that Python pipeline under its exactly-once runner.
    The runner's Kafka identity defaults from the group: transactional id `<group>`, state topic
    `<group>-state`, dead letters `<group>-dlq`.
    """

    group: str
    pipeline: str | None = None
    transactional_id: str = ""
    state_topic: str = ""
    dead_letter_topic: str = ""
    changelog_dir: str = "changelog"
    # The job's own Kafka principal, over kafka.properties (e.g. sasl.username and sasl.password_env):
    # dualrun's reader may be read-only while the job writes.
    kafka_properties: dict[str, str] = Field(default_factory=dict)
    default_secrets: dict[str, str] = Field(default_factory=dict, repr=False, exclude=True)
    exactly_once: bool = True
    commit_interval_ms: int = Field(default=200, gt=0)
    max_batch: int = Field(default=5000, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _identity_from_group(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("group"), str):
            group = data["group"]
            derived = {"transactional_id": group, "state_topic": f"{group}-state", "dead_letter_topic": f"{group}-dlq"}
            data = {**data, **{k: v for k, v in derived.items() if not data.get(k)}}
        return data

    @field_validator("kafka_properties", mode="before")
    @classmethod
    def _texts(cls, properties: Any) -> Any:
        return _texts(properties)

    @field_validator("kafka_properties")
    @classmethod
    def _no_literal_secrets(cls, properties: dict[str, str]) -> dict[str, str]:
        return _checked_properties(properties)

    @field_validator("group")
    @classmethod
    def _group_not_empty(cls, group: str) -> str:
        if not group.strip():
            raise ValueError("name the stream job's consumer group (Kafka Streams: its application.id)")
        return group

    @field_validator("pipeline")
    @classmethod
    def _pipeline_reference(cls, pipeline: str | None) -> str | None:
        if pipeline is not None and pipeline.count(":") != 1:
            raise ValueError(f"{pipeline!r}: expected a Python reference like package.module:ATTRIBUTE")
        return pipeline


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
            parts = urlsplit(self.url)
            if not parts.scheme or "://" not in self.url:
                raise ValueError(f"{self.url!r}: expected a SQLAlchemy URL like postgresql+psycopg://user@host/db")
            if parts.password:
                raise ValueError("put the password in the environment variable named by password_env, not in the URL")
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
            parts = urlsplit(table)
            if not parts.scheme or "table=" not in parts.query:
                raise ValueError(
                    f"{table!r}: expected a SQLAlchemy URL naming the table, like postgresql+psycopg://u@h/db?table=t"
                )
            if parts.password:
                raise ValueError("put the password in the environment, not in the table URL")
        return table


class OutputSinkSpec(_Model):
    """Where users read one output: a Kafka Connect JDBC sink (Debezium's) writing the output topic
    into a PostgreSQL table, reconciled as a third side (`migrate.sink`)."""

    table: str  # the sink's table (upsert by the record key; a tombstone deletes)
    connector: str | None = None  # None: `<spec name>-<table>-sink`
    # SQLAlchemy URL of the sink's database without the password; None: the local stack's PostgreSQL.
    url: str | None = None
    password_env: str = "DUALRUN_DB_PASSWORD"
    read_committed: bool = True  # register with consumer.override.isolation.level=read_committed

    @field_validator("url")
    @classmethod
    def _no_password(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if not parts.scheme.startswith("postgresql"):
                raise ValueError(f"{url!r}: the sink's database must be PostgreSQL (postgresql+psycopg://u@h:p/db)")
            if parts.password:
                raise ValueError("put the password in the environment (password_env), not in the URL")
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


class CompareSpec(_Model):
    wait_seconds: float = Field(default=60.0, ge=0)
    history: str = "history.duckdb"


class ChecklistSpec(_Model):
    max_consumer_lag: int = Field(default=1000, ge=0)
    max_event_age_seconds: float = Field(default=60.0, gt=0)
    min_parity_streak: int = Field(default=3, ge=1)
    # Outputs compared through a window (no positions, migrate.window): the share of keys verified
    # (compared exactly, outside the window) at least once over the parity streak.
    min_coverage: float = Field(default=0.99, ge=0, le=1)
    max_noise_rows: int = Field(default=0, ge=0)
    batch_window_hours: float = Field(default=24.0, gt=0)


class PipelineSpec(_Model):
    """A whole dual run."""

    name: str
    state_dir: str = ".dualrun"
    # The local stack's spec: ports from DUALRUN_*_PORT and the stack's local passwords (see load).
    local: bool = False
    source: SourceSpec
    cdc: CdcSpec
    kafka: KafkaSpec
    batch: BatchSpec = Field(default_factory=BatchSpec)
    stream: StreamSpec
    outputs: dict[str, OutputSpec]
    compare: CompareSpec = Field(default_factory=CompareSpec)
    checklist: ChecklistSpec = Field(default_factory=ChecklistSpec)

    # Where the spec came from, for messages and for resolving relative paths.
    origin: str = Field(default="<code>", exclude=True)

    @field_validator("name")
    @classmethod
    def _name_not_empty(cls, name: str) -> str:
        if not name.strip():
            raise ValueError("name the pipeline (it labels runs in the history)")
        return name

    @field_validator("outputs")
    @classmethod
    def _outputs_not_empty(cls, outputs: dict[str, OutputSpec]) -> dict[str, OutputSpec]:
        if not outputs:
            raise ValueError("declare at least one output with its keys and batch SQL")
        for name in outputs:
            if not name or name.startswith("__") or "/" in name or "~" in name:
                raise ValueError(f"output name {name!r}: use letters, digits and _ (no '/', '~', leading '__')")
        return outputs

    @model_validator(mode="after")
    def _external_outputs_are_readable(self) -> PipelineSpec:
        if self.stream.pipeline is None:
            unread = [
                name for name, out in self.outputs.items() if out.stream.topic is None and out.stream.table is None
            ]
            if unread:
                raise ValueError(
                    f"outputs.{unread[0]}.stream: name the topic (or table) the stream job writes, "
                    "or set stream.pipeline to a Python pipeline dualrun runs"
                )
        return self

    def stream_kafka(self) -> KafkaSettings:
        """The streaming job's client settings: kafka.properties with stream.kafka_properties over them."""
        return client_settings(
            self.kafka.bootstrap_servers, {**self.kafka.properties, **self.stream.kafka_properties},
            {**self.kafka.default_secrets, **self.stream.default_secrets}, "stream.kafka_properties",
        )  # fmt: skip

    def debezium_kafka(self) -> KafkaSettings:
        """Debezium's schema-history client settings: kafka.properties with cdc.kafka_properties over them."""
        return client_settings(
            self.kafka.bootstrap_servers, {**self.kafka.properties, **self.cdc.kafka_properties},
            {**self.kafka.default_secrets, **self.cdc.default_secrets}, "cdc.kafka_properties",
        )  # fmt: skip

    @model_validator(mode="after")
    def _lineage_tables_are_captured(self) -> PipelineSpec:
        for name, out in self.outputs.items():
            for table in out.lineage:
                if table not in self.cdc.tables:
                    raise ValueError(
                        f"outputs.{name}.lineage.{table}: not a captured table; add it to cdc.tables "
                        f"({', '.join(self.cdc.tables)}) or remove it from the lineage"
                    )
        return self

    @property
    def is_external(self) -> bool:
        """True when the user's own job writes the outputs (no `stream.pipeline` for dualrun to run)."""
        return self.stream.pipeline is None

    def position_header_for(self, output: str) -> str | None:
        """The header that carries the source position on `output`'s stream records (None: none)."""
        own = self.outputs[output].stream.position_header
        return own if own is not None else self.cdc.position_header

    def path(self, relative: str) -> Path:
        """A spec path resolved against the state directory."""
        state = Path(self.state_dir).expanduser()
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else (state / candidate).absolute()

    @property
    def warehouse_path(self) -> Path:
        return self.path(self.batch.warehouse)

    @property
    def changelog_path(self) -> Path:
        return self.path(self.stream.changelog_dir)

    @property
    def history_path(self) -> Path:
        return self.path(self.compare.history)

    def variant(self, tag: str, **stream_updates: Any) -> PipelineSpec:
        """A second streaming job over the same inputs with its own identity (group, transactional
        id, topics, changelog), so it never touches the real job's outputs: `variant("replay")`
        consumes as group `<group>-replay` into `<changelog_dir>-replay`.
        """
        stream = self.stream
        data = self._data()
        data["stream"] = {
            **data["stream"],
            **stream_updates,
            "group": f"{stream.group}-{tag}",
            "transactional_id": f"{stream.transactional_id}-{tag}",
            "state_topic": f"{stream.state_topic}-{tag}",
            "dead_letter_topic": f"{stream.dead_letter_topic}-{tag}",
            "changelog_dir": f"{stream.changelog_dir}-{tag}",
        }
        for output in data["outputs"].values():
            if output["stream"]["topic"] is not None:
                output["stream"]["topic"] = f"{output['stream']['topic']}-{tag}"
            if output.get("sink") is not None:  # its own table and connector, never the real sink's
                output["sink"]["table"] = f"{output['sink']['table']}_{tag.replace('-', '_')}"
                if output["sink"]["connector"] is not None:
                    output["sink"]["connector"] = f"{output['sink']['connector']}-{tag}"
        return PipelineSpec.model_validate({**data, "name": f"{self.name}+{tag}", "origin": self.origin})

    def _data(self) -> dict[str, Any]:
        """The fields as plain data, with the local passwords a dump leaves out."""
        data = self.model_dump()
        data["source"]["default_password"] = self.source.default_password
        data["cdc"]["default_password"] = self.cdc.default_password
        data["cdc"]["default_connect_password"] = self.cdc.default_connect_password
        data["kafka"]["default_secrets"] = dict(self.kafka.default_secrets)
        data["stream"]["default_secrets"] = dict(self.stream.default_secrets)
        data["cdc"]["default_secrets"] = dict(self.cdc.default_secrets)
        return data

    def replay(self) -> PipelineSpec:
        """The stream's noise baseline: an independent second run of the same job over the same
        change events. Any difference between the two is the stream's own noise."""
        return self.variant("replay")

    def with_changes(self, **section_updates: dict[str, Any]) -> PipelineSpec:
        """A copy with some fields of some sections replaced, validated again."""
        data = self._data()
        for section, updates in section_updates.items():
            data[section] = {**data[section], **updates}
        return PipelineSpec.model_validate({**data, "origin": self.origin})
