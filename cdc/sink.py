"""The Debezium JDBC sink connector's config (Kafka Connect REST shape), and the isolation rule a sink
fed by an exactly-once job must follow.

A Connect sink's consumer reads with `isolation.level=read_uncommitted` unless the connector
overrides it (`consumer.override.isolation.level`, allowed by the worker's
`connector.client.config.override.policy`, `All` by default since Kafka 3.0, KIP-722): such a sink
also writes the records of transactions the job aborted, which nobody downstream of a
read_committed consumer ever sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc.connector import redact

JDBC_SINK_CLASS = "io.debezium.connector.jdbc.JdbcSinkConnector"
ISOLATION = "consumer.override.isolation.level"


@dataclass(frozen=True)
class JdbcSinkSettings:
    """One Debezium JDBC sink: `topics` upserted (by record key) into `table` at `jdbc_url`; a
    tombstone deletes the row. `read_committed` False leaves Connect's default (read_uncommitted)."""

    name: str
    topics: tuple[str, ...]
    table: str
    # jdbc:postgresql://host:port/db; out of repr, as the password: a URL may carry one (?password=).
    jdbc_url: str = field(repr=False)
    user: str
    password: str = field(repr=False)
    read_committed: bool = True
    tasks: int = 1
    # The table's primary key: the record key struct's fields (`primary.key.fields`, in key order);
    # () leaves it to the key struct, every field of it.
    key_fields: tuple[str, ...] = ()
    # A config provider reference sent as `connection.password` instead of the password
    # (`${file:PATH:connection.password}`, Connect's FileConfigProvider on the worker): Connect
    # stores and shows the reference, never the password. None: the password itself.
    password_ref: str | None = None

    def to_config(self) -> dict[str, str]:
        config = {
            "connector.class": JDBC_SINK_CLASS,
            "tasks.max": str(self.tasks),
            "topics": ",".join(self.topics),
            "connection.url": self.jdbc_url,
            "connection.username": self.user,
            "connection.password": self.password_ref or self.password,
            "insert.mode": "upsert",
            "delete.enabled": "true",
            "primary.key.mode": "record_key",
            "schema.evolution": "basic",
            "collection.name.format": self.table,
        }
        if self.key_fields:
            config["primary.key.fields"] = ",".join(self.key_fields)
        if self.read_committed:
            config[ISOLATION] = "read_committed"
        return config

    def to_dict(self) -> dict[str, Any]:
        return redact(self.to_config())


def sink_topics(config: dict[str, Any]) -> tuple[str, ...]:
    """The topics a sink connector's config names (`topics`, comma-separated); () for `topics.regex`."""
    return tuple(t.strip() for t in str(config.get("topics", "")).split(",") if t.strip())


def isolation_problem(name: str, config: dict[str, Any], transactional: set[str]) -> str | None:
    """One line with the fix when sink `name` reads a topic in `transactional` (written in Kafka
    transactions) without read_committed; None when it is safe.

    >>> isolation_problem("s", {"topics": "orders-enriched"}, {"orders-enriched"})  # doctest: +ELLIPSIS
    "sink s reads exactly-once topic(s) orders-enriched with isolation.level read_uncommitted (Connect's default)...
    >>> isolation_problem("s", {"topics": "t", ISOLATION: "read_committed"}, {"t"}) is None
    True
    """
    read = sorted(set(sink_topics(config)) & transactional)
    if not read:
        return None
    level = str(config.get(ISOLATION, "")).strip()
    if level == "read_committed":
        return None
    shown = f"{level} (override)" if level else "read_uncommitted (Connect's default)"
    return (
        f"sink {name} reads exactly-once topic(s) {', '.join(read)} with isolation.level {shown}: it also writes "
        f"records of aborted transactions; fix: set {ISOLATION}=read_committed in its config "
        f"(PUT /connectors/{name}/config; the worker's connector.client.config.override.policy must allow it)"
    )
