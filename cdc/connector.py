"""Debezium connector configs, in the shape Kafka Connect's REST API takes."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from cdc.client import masked
from cdc.errors import CdcError

CONNECTOR_CLASSES = {
    "mariadb": "io.debezium.connector.mariadb.MariaDbConnector",
    "mysql": "io.debezium.connector.mysql.MySqlConnector",
    "postgres": "io.debezium.connector.postgresql.PostgresConnector",
}
PUBLICATION_AUTOCREATE_MODES = ("disabled", "filtered", "all_tables", "no_tables")
PG_NAME_MAX = 63  # PostgreSQL identifiers (slot names) are at most NAMEDATALEN - 1 bytes
MASK = "********"
POSITION_HEADER = "dbz.source"


def server_id_for(name: str) -> int:
    """A replica server id for the connector `name`, stable across registrations.

    MariaDB and MySQL allow one replication client per server id: a second connector with the same
    `database.server.id` disconnects the first, each time it reconnects. Deriving the id from the
    (unique) connector name keeps two connectors on one source apart without anyone choosing ids.

    >>> server_id_for("dualrun-shop") == server_id_for("dualrun-shop") != server_id_for("ledger-cdc")
    True
    """
    return 184_000 + zlib.crc32(name.encode()) % 1_000_000


HEADER_FROM = "org.apache.kafka.connect.transforms.HeaderFrom$Value"
REGEX_ROUTER = "org.apache.kafka.connect.transforms.RegexRouter"
IS_TOMBSTONE = "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone"
TOPIC_MATCHES = "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"
# Tombstones take this topic suffix only between the SMTs of the position chain (never in Kafka).
TOMBSTONE_DETOUR = ".dualrun-tombstone"


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to log or print: every secret value masked (`cdc.client.masked`: by the name, or
    the password of a URL), except a config provider reference (`${file:PATH:KEY}`), which names
    where the secret is and holds none.

    >>> redact({"database.password": "pw", "sasl.jaas.config": "${file:/s:j}", "name": "c"})
    {'database.password': '********', 'sasl.jaas.config': '${file:/s:j}', 'name': 'c'}
    """
    return {k: masked(k, v) for k, v in config.items()}


def file_reference(path: Any, key: str) -> str:
    """A FileConfigProvider reference to `key` of the Java properties file `path`, resolved by a
    worker with `config.providers=file`.

    >>> file_reference("/s/secrets.properties", "connection.password")
    '${file:/s/secrets.properties:connection.password}'
    """
    return f"${{file:{path}:{key}}}"


@dataclass(frozen=True)
class ConnectorSettings:
    """What a Debezium source connector needs; `to_config()` renders Connect's flat string map.

    >>> s = ConnectorSettings(name="shop", kind="mariadb", hostname="127.0.0.1", port=3306,
    ...     user="debezium", password="pw", databases=("shop",), bootstrap_servers="127.0.0.1:9092")
    >>> s.to_config()["connector.class"], s.to_config()["topic.prefix"]
    ('io.debezium.connector.mariadb.MariaDbConnector', 'dbserver1')
    """

    name: str
    kind: str
    hostname: str
    port: int
    user: str
    password: str = field(repr=False)
    databases: tuple[str, ...]
    bootstrap_servers: str
    tables: tuple[str, ...] = ()
    topic_prefix: str = "dbserver1"
    server_id: int | None = None  # None: server_id_for(name)
    snapshot_mode: str = "initial"
    heartbeat_interval_ms: int = 1000
    # 50 ms instead of 500: the default poll interval costs ~250 ms of latency per change.
    poll_interval_ms: int = 50
    transaction_metadata: bool = True
    decimal_handling_mode: str = "precise"
    replication_factor: int = 1
    partitions: int = 1
    # PostgreSQL: `databases` are schemas there; this is the database (dbname) to stream.
    pg_database: str | None = None
    # PostgreSQL: one replication slot per connector (two connectors on one slot fail); from `name` by default.
    slot_name: str | None = None
    publication: str | None = None  # PostgreSQL: from `name` by default
    # 'disabled': the tables' owner creates the publication beforehand, so Debezium's role needs
    # only REPLICATION and SELECT; any other mode makes Debezium create it, which only an owner may.
    publication_autocreate: str = "disabled"
    # The header Kafka's HeaderFrom SMT fills with Debezium's `source` block on every change
    # record, so a foreign streaming job can carry the position to its outputs; None: no SMT.
    position_header: str | None = POSITION_HEADER
    extra: dict[str, str] = field(default_factory=dict)
    # A config provider reference sent as `database.password` instead of the password (e.g.
    # `${file:PATH:database.password}`, Connect's FileConfigProvider): Connect then stores and
    # shows the reference, never the password. None: the password itself.
    password_ref: str | None = None
    # Java client properties of a secured cluster for the schema history's producer and consumer
    # (`cdc.client.KafkaSettings.java_properties`); credentials included, so never printed.
    kafka_properties: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in CONNECTOR_CLASSES:
            raise CdcError(f"connector kind {self.kind!r} is not one of {', '.join(CONNECTOR_CLASSES)}")
        if self.decimal_handling_mode not in ("precise", "string"):
            # 'double' would lose cents; dualrun keeps money exact end to end.
            raise CdcError("decimal.handling.mode must be 'precise' or 'string' to keep DECIMAL exact")
        if self.publication_autocreate not in PUBLICATION_AUTOCREATE_MODES:
            raise CdcError(
                f"publication.autocreate.mode {self.publication_autocreate!r} is not one of "
                f"{', '.join(PUBLICATION_AUTOCREATE_MODES)}"
            )
        if self.position_header is not None and not self.position_header.strip():
            raise CdcError("position_header must be a header name, or null to register without the SMT")
        if self.slot_name is not None and not re.fullmatch(r"[a-z0-9_]{1,63}", self.slot_name):
            raise CdcError(f"slot.name {self.slot_name!r} must be 1 to 63 of a-z, 0-9 and _ (PostgreSQL's rule)")

    @property
    def pg_slot(self) -> str:
        """The replication slot: `slot_name`, else the connector name made a valid slot name."""
        return self.slot_name or pg_name(f"dualrun_{self.name}")

    @property
    def pg_publication(self) -> str:
        return self.publication or pg_name(f"dualrun_{self.name}")

    @property
    def schema_history_topic(self) -> str:
        return f"{self.topic_prefix}.schema-history"

    @property
    def heartbeat_topic(self) -> str:
        return f"__debezium-heartbeat.{self.topic_prefix}"

    def table_topic(self, table: str) -> str:
        """`shop.orders` -> `dbserver1.shop.orders` (PostgreSQL: schema.table)."""
        return f"{self.topic_prefix}.{table}"

    def to_config(self) -> dict[str, str]:
        config: dict[str, Any] = {
            "connector.class": CONNECTOR_CLASSES[self.kind],
            "tasks.max": 1,
            "database.hostname": self.hostname,
            "database.port": self.port,
            "database.user": self.user,
            "database.password": self.password_ref or self.password,
            "topic.prefix": self.topic_prefix,
            "snapshot.mode": self.snapshot_mode,
            "heartbeat.interval.ms": self.heartbeat_interval_ms,
            "poll.interval.ms": self.poll_interval_ms,
            "provide.transaction.metadata": str(self.transaction_metadata).lower(),
            "decimal.handling.mode": self.decimal_handling_mode,
            "tombstones.on.delete": "true",
            "topic.creation.default.replication.factor": self.replication_factor,
            "topic.creation.default.partitions": self.partitions,
            # Change topics keep history for replays; compaction would drop versions.
            "topic.creation.default.cleanup.policy": "delete",
            "topic.creation.default.retention.ms": 7 * 24 * 3600 * 1000,
        }
        if self.kind == "postgres":
            config.update({
                "database.dbname": self.pg_database or self.databases[0],
                # PostgreSQL's built-in logical decoding output; Debezium's default (decoderbufs) needs an extension.
                "plugin.name": "pgoutput",
                "slot.name": self.pg_slot,
                "publication.name": self.pg_publication,
                "publication.autocreate.mode": self.publication_autocreate,
                "schema.include.list": ",".join(self.databases),
            })  # fmt: skip
        else:
            config.update({
                "database.server.id": self.server_id if self.server_id is not None else server_id_for(self.name),
                "database.include.list": ",".join(self.databases),
                "schema.history.internal.kafka.bootstrap.servers": self.bootstrap_servers,
                "schema.history.internal.kafka.topic": self.schema_history_topic,
                "include.schema.changes": "true",
            })  # fmt: skip
            for key, value in self.kafka_properties.items():
                config[f"schema.history.internal.producer.{key}"] = value
                config[f"schema.history.internal.consumer.{key}"] = value
        if self.tables:
            config["table.include.list"] = ",".join(self.tables)
        extra = dict(self.extra)
        if self.position_header is not None:
            config.update(position_transforms(self.position_header, self.table_topic_pattern(), extra))
        config.update(extra)
        return {key: str(value) for key, value in config.items()}

    def table_topic_pattern(self) -> str:
        r"""A Java regex matching exactly the change topics of the captured tables (full match).

        >>> ConnectorSettings(name="c", kind="mariadb", hostname="h", port=1, user="u", password="p",
        ...     databases=("shop",), bootstrap_servers="b", tables=("shop.orders",)).table_topic_pattern()
        'dbserver1\\.shop\\.orders'
        """
        prefix = re.escape(self.topic_prefix)
        if self.tables:
            return "|".join(f"{prefix}\\.{re.escape(t)}" for t in self.tables)
        databases = "|".join(re.escape(d) for d in self.databases)
        return f"{prefix}\\.({databases})\\.[^.]+"

    def to_dict(self) -> dict[str, Any]:
        """The request body for POST /connectors, secrets masked (for printing only)."""
        return {"name": self.name, "config": redact(self.to_config())}


def position_transforms(header: str, table_topics: str, extra: dict[str, str]) -> dict[str, str]:
    """The SMT chain that copies Debezium's `source` block into the JSON header `header`.

    Kafka's `HeaderFrom$Value` (fields=source, operation=copy) fails the connector on a record
    without a `source` field: tombstones (null value), heartbeats and transaction metadata. A
    transform takes one predicate and Connect has no AND, so tombstones take a detour: a
    `RegexRouter` guarded by `RecordIsTombstone` renames their topic, `HeaderFrom` runs only on
    topics fully matching `table_topics` (`TopicNameMatches`), and a second `RegexRouter` puts
    tombstones back on their topic. Change events keep their envelope; tombstones, heartbeats,
    transaction metadata and schema changes pass untouched. User transforms in `extra`
    (`transforms`, `predicates`) run after these; `extra` is updated in place to merge the lists.
    """
    detour = re.escape(TOMBSTONE_DETOUR)
    config = {
        "transforms.dualrunTombIn.type": REGEX_ROUTER,
        "transforms.dualrunTombIn.regex": "(.*)",
        "transforms.dualrunTombIn.replacement": f"$1{TOMBSTONE_DETOUR}",
        "transforms.dualrunTombIn.predicate": "dualrunIsTombstone",
        "transforms.dualrunPos.type": HEADER_FROM,
        "transforms.dualrunPos.fields": "source",
        "transforms.dualrunPos.headers": header,
        "transforms.dualrunPos.operation": "copy",
        "transforms.dualrunPos.predicate": "dualrunTableTopic",
        "transforms.dualrunTombOut.type": REGEX_ROUTER,
        "transforms.dualrunTombOut.regex": f"(.*){detour}",
        "transforms.dualrunTombOut.replacement": "$1",
        "transforms.dualrunTombOut.predicate": "dualrunIsTombstone",
        "predicates.dualrunIsTombstone.type": IS_TOMBSTONE,
        "predicates.dualrunTableTopic.type": TOPIC_MATCHES,
        "predicates.dualrunTableTopic.pattern": f"({table_topics})",
    }
    ours = {
        "transforms": "dualrunTombIn,dualrunPos,dualrunTombOut",
        "predicates": "dualrunIsTombstone,dualrunTableTopic",
    }
    for key, names in ours.items():
        theirs = extra.pop(key, "").strip()
        config[key] = f"{names},{theirs}" if theirs else names
    return config


def pg_name(text: str) -> str:
    """A valid PostgreSQL slot or publication name from any connector name.

    >>> pg_name("Orders-PG.v2")
    'orders_pg_v2'
    """
    return re.sub(r"[^a-z0-9_]", "_", text.lower())[:PG_NAME_MAX]
