"""The pipeline spec: one YAML file describes a whole dual run.

Secrets never live in the file: `password_env` names the environment variable
that holds each password. A wrong spec fails at load with the field's path.
Relative paths resolve against `state_dir`, which resolves against the current
directory (the reference spec ships inside the package, so `dualrun demo`
works from anywhere and keeps its state in ./.dualrun).
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from migrate.errors import SpecError

DEFAULT_SPEC_NAMES = ("dualrun.yaml", "dualrun.yml")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Model):
    """The legacy OLTP database both pipelines read."""

    kind: Literal["mariadb", "mysql", "postgres"] = "mariadb"
    url: str = "mysql+pymysql://dualrun@127.0.0.1:3306/shop"
    password_env: str = "DUALRUN_DB_PASSWORD"
    default_password: str | None = Field(default="dualrun", repr=False)  # local stack only

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
        value = os.environ.get(self.password_env) or self.default_password
        if value is None:
            raise SpecError(f"source.password_env: environment variable {self.password_env} is not set")
        return value


class CdcSpec(_Model):
    """The Debezium connector on Kafka Connect."""

    connect_url: str = "http://127.0.0.1:8083"
    connector: str = "dualrun-shop"
    topic_prefix: str = "dbserver1"
    user: str = "debezium"
    password_env: str = "DUALRUN_DEBEZIUM_PASSWORD"
    default_password: str | None = Field(default="debezium", repr=False)
    server_id: int = 184054
    tables: tuple[str, ...] = ("shop.customers", "shop.orders")

    def password(self) -> str:
        value = os.environ.get(self.password_env) or self.default_password
        if value is None:
            raise SpecError(f"cdc.password_env: environment variable {self.password_env} is not set")
        return value

    def topic(self, table: str) -> str:
        return f"{self.topic_prefix}.{table}"


class KafkaSpec(_Model):
    bootstrap_servers: str = "127.0.0.1:9092"


class BatchSpec(_Model):
    """The legacy nightly job: plain SQL in one consistent snapshot, outputs to a warehouse."""

    warehouse: str = "warehouse.duckdb"
    # Run every query twice in the same snapshot: the difference is the batch job's own noise.
    rerun_for_noise: bool = True


class StreamSpec(_Model):
    """The streaming job's Kafka identity and sinks."""

    group_id: str = "dualrun-stream"
    transactional_id: str = "dualrun-stream-1"
    exactly_once: bool = True
    enriched_topic: str = "orders-enriched"
    alerts_topic: str = "order-alerts"
    state_topic: str = "dualrun-stream-state"
    dead_letter_topic: str = "dualrun-stream-dlq"
    changelog_dir: str = "changelog"
    commit_interval_ms: int = Field(default=200, gt=0)
    max_batch: int = Field(default=5000, gt=0)
    defect: str | None = None  # a deliberately wrong transform, for `demo --inject-defect`


class OutputSpec(_Model):
    """One output compared between the two sides."""

    keys: tuple[str, ...]
    tolerances: dict[str, str] = Field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    partition: str | None = None

    @field_validator("keys")
    @classmethod
    def _keys_not_empty(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        if not keys:
            raise ValueError("at least one key column is required")
        return keys


def _default_outputs() -> dict[str, OutputSpec]:
    return {
        "orders_enriched": OutputSpec(keys=("order_id",), partition="order_day"),
        "order_alerts": OutputSpec(keys=("order_id",)),
        "daily_revenue": OutputSpec(keys=("customer_id", "order_day"), partition="order_day"),
    }


class CompareSpec(_Model):
    outputs: dict[str, OutputSpec] = Field(default_factory=_default_outputs)
    wait_seconds: float = Field(default=60.0, ge=0)
    history: str = "history.duckdb"


class ChecklistSpec(_Model):
    max_consumer_lag: int = Field(default=1000, ge=0)
    max_event_age_seconds: float = Field(default=60.0, gt=0)
    min_parity_streak: int = Field(default=3, ge=1)
    max_noise_rows: int = Field(default=0, ge=0)
    batch_window_hours: float = Field(default=24.0, gt=0)


class PipelineSpec(_Model):
    """A whole dual run."""

    name: str = "shop-orders"
    state_dir: str = ".dualrun"
    source: SourceSpec = Field(default_factory=SourceSpec)
    cdc: CdcSpec = Field(default_factory=CdcSpec)
    kafka: KafkaSpec = Field(default_factory=KafkaSpec)
    batch: BatchSpec = Field(default_factory=BatchSpec)
    stream: StreamSpec = Field(default_factory=StreamSpec)
    compare: CompareSpec = Field(default_factory=CompareSpec)
    checklist: ChecklistSpec = Field(default_factory=ChecklistSpec)

    # Where the spec came from, for messages and for resolving relative paths.
    origin: str = Field(default="<defaults>", exclude=True)

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
        consumes as group `<group_id>-replay` into `<changelog_dir>-replay`.
        """
        stream = self.stream
        return self.with_changes(
            stream={
                **stream_updates,
                "group_id": f"{stream.group_id}-{tag}",
                "transactional_id": f"{stream.transactional_id}-{tag}",
                "enriched_topic": f"{stream.enriched_topic}-{tag}",
                "alerts_topic": f"{stream.alerts_topic}-{tag}",
                "state_topic": f"{stream.state_topic}-{tag}",
                "dead_letter_topic": f"{stream.dead_letter_topic}-{tag}",
                "changelog_dir": f"{stream.changelog_dir}-{tag}",
            },
        ).model_copy(update={"name": f"{self.name}+{tag}"})

    def replay(self) -> PipelineSpec:
        """The stream's noise baseline: an independent second run of the same job over the same
        change events. Any difference between the two is the stream's own noise."""
        return self.variant("replay")

    def with_changes(self, **section_updates: dict[str, Any]) -> PipelineSpec:
        """A copy with some fields of some sections replaced, validated again."""
        data = self.model_dump()
        for section, updates in section_updates.items():
            data[section] = {**data[section], **updates}
        return PipelineSpec.model_validate({**data, "origin": self.origin})


def _on_local_stack(raw: dict[str, Any]) -> dict[str, Any]:
    """The reference spec describes the local stack, so it follows the stack's port overrides
    (DUALRUN_*_PORT): `dualrun demo` works when 3306 or 9092 is taken by something else."""
    from sqlalchemy.engine import make_url

    from migrate.stackconfig import StackConfig

    ports = StackConfig.from_env().ports
    source = {**raw.get("source", {})}
    if source.get("url"):
        source["url"] = make_url(source["url"]).set(port=ports.mariadb).render_as_string(hide_password=False)
    cdc = {**raw.get("cdc", {}), "connect_url": f"http://127.0.0.1:{ports.connect}"}
    kafka = {**raw.get("kafka", {}), "bootstrap_servers": f"127.0.0.1:{ports.kafka}"}
    return {**raw, "source": source, "cdc": cdc, "kafka": kafka}


def reference_spec_path() -> Path:
    return Path(str(files("migrate") / "data" / "reference.yaml"))


def _explain(exc: ValidationError, origin: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field; check its spelling against the reference spec"
    return f"{origin}: {where}: {message}{more}"


def load_spec(path: str | Path | None = None) -> PipelineSpec:
    """Load and validate a spec; None finds ./dualrun.yaml, else the reference spec."""
    if path is None:
        found = next((Path(n) for n in DEFAULT_SPEC_NAMES if Path(n).exists()), None)
        path = found or reference_spec_path()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file {path} does not exist; pass --spec with a path to a dualrun YAML spec") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of sections (source, cdc, kafka, ...) at the top level")
    if path == reference_spec_path():
        raw = _on_local_stack(raw)
    try:
        return PipelineSpec.model_validate({**raw, "origin": str(path)})
    except ValidationError as exc:
        raise SpecError(_explain(exc, str(path))) from None
