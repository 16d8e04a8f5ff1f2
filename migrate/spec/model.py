"""The pipeline spec (v2): one YAML file describes a whole dual run of the user's pipeline.

The model has no reference defaults: a spec names its source, connector, Kafka, the stream job's
consumer group and every output with its keys and batch SQL. Neutral defaults only (state folder,
compare rules, checklist thresholds, runner settings derived from the group). Secrets never live in
the file: `password_env` names the environment variable that holds each password; only a spec with
`local: true` (the local stack's example) falls back to the stack's local passwords.

Files the spec names for dualrun to read (`sql_file`, `batch.import` Parquet and CSV files) resolve
against the spec file's folder (see `migrate.spec.load`); `state_dir` resolves against the current
directory, and the files dualrun writes (warehouse, history, changelogs) against `state_dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from cdc.client import KafkaSettings
from migrate.spec.base import _Model
from migrate.spec.cdc import CdcSpec
from migrate.spec.kafka import KafkaProperties, KafkaSpec, client_settings
from migrate.spec.outputs import (
    BatchImportSpec,
    OutputSpec,
)
from migrate.spec.source import SourceSpec

# BatchImportSpec moved to migrate.spec.outputs; migrate/bracket.py and migrate/checklist/rollback.py
# still import it from here.
__all__ = ["BatchImportSpec", "BatchSpec", "ChecklistSpec", "CompareSpec", "PipelineSpec", "StreamSpec"]


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
    kafka_properties: KafkaProperties = Field(default_factory=dict)
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


class CompareSpec(_Model):
    wait_seconds: float = Field(default=60.0, ge=0)
    history: str = "history.duckdb"


class ChecklistSpec(_Model):
    max_consumer_lag: int = Field(default=1000, ge=0)
    max_event_age_seconds: float = Field(default=60.0, gt=0)
    min_parity_streak: int = Field(default=3, ge=1)  # clean batch runs in a row (re-checks count once)
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
            # '@' names a further side of an output in the history and metrics (`orders@sink`).
            if not name or name.startswith("__") or any(c in name for c in "/~@"):
                raise ValueError(f"output name {name!r}: use letters, digits and _ (no '/', '~', '@', leading '__')")
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
