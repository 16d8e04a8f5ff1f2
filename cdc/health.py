"""Is a RUNNING connector really capturing? Its topics, checked against the broker's metadata.

A Debezium connector can be RUNNING, task and all, and capture nothing: when the broker
does not auto-create topics (`auto.create.topics.enable=false`, as on many production
clusters) and the connector's config has no `topic.creation.default.*` (Connect's topic
creation, KIP-158), every send waits on UNKNOWN_TOPIC_OR_PARTITION and is retried forever.
Connect's status never shows it; only the missing topics do.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaException

from cdc.connect import ConnectClient, ConnectorStatus
from cdc.errors import PositionError
from cdc.position import parse_gtid_set

# Reads the source's @@gtid_binlog_pos given the connector's (redacted) config; None when it cannot.
SourceGtids = Callable[[dict[str, Any]], str | None]

# KIP-158: Connect creates a source connector's topics only when both of these are set.
TOPIC_CREATION_KEYS = ("topic.creation.default.replication.factor", "topic.creation.default.partitions")
# Debezium connectors with a schema-change topic named after the topic prefix.
SCHEMA_CHANGE_CLASSES = ("MySqlConnector", "MariaDbConnector")
_PLAIN_TABLE = re.compile(r"^[\w$-]+\.[\w$-]+$")  # `db.table`; other include-list entries are regexes


class Broker(Protocol):
    """What the diagnosis reads from Kafka (cdc.topics.TopicAdmin provides it)."""

    def topic_names(self) -> set[str]:
        """Every topic in the cluster's metadata."""

    def auto_create_topics(self) -> bool | None:
        """The broker's auto.create.topics.enable; None when it cannot be read."""

    def last_record_ms(self, topics: list[str]) -> int | None:
        """The newest record timestamp over `topics`, ms since the epoch; None when all are empty."""


def expected_topics(config: dict[str, Any]) -> tuple[str, ...]:
    """The topics a Debezium connector's config makes it write, as far as the config alone tells.

    Its captured tables' change topics (plain `db.table` entries of table.include.list), the
    schema-change topic (MySQL/MariaDB with include.schema.changes) and the heartbeat topic
    (heartbeat.interval.ms > 0). Regex entries and whole-database captures add no names.

    >>> expected_topics({"connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
    ...     "topic.prefix": "dbserver1", "table.include.list": "shop.orders,shop\\\\..*",
    ...     "heartbeat.interval.ms": "1000"})
    ('dbserver1.shop.orders', 'dbserver1', '__debezium-heartbeat.dbserver1')
    """
    prefix = str(config.get("topic.prefix", ""))
    if not prefix:
        return ()
    tables = [t.strip() for t in str(config.get("table.include.list", "")).split(",") if t.strip()]
    topics = [f"{prefix}.{t}" for t in tables if _PLAIN_TABLE.match(t)]
    klass = str(config.get("connector.class", "")).rsplit(".", 1)[-1]
    if klass in SCHEMA_CHANGE_CLASSES and str(config.get("include.schema.changes", "true")).lower() == "true":
        topics.append(prefix)
    if int(str(config.get("heartbeat.interval.ms", "0")) or 0) > 0:
        topics.append(f"{config.get('topic.heartbeat.prefix', '__debezium-heartbeat')}.{prefix}")
    return tuple(topics)


@dataclass(frozen=True)
class ConnectorHealth:
    """A connector's Connect status plus what its topics say.

    `topics`: expected (from its config) and active (Connect's /connectors/<name>/topics) names;
    `missing`: those absent from the broker's metadata; `can_create`: whether anything will ever
    create them (the connector's topic.creation.default.* or the broker's auto-create; None:
    unknown). `stuck` holds the cause and the fix when the connector is RUNNING but cannot deliver:
    topics nothing will create, or (given the source's GTIDs) an offset behind a writing source
    and no record for `limit_s` seconds.
    """

    status: ConnectorStatus
    topics: tuple[str, ...]
    missing: tuple[str, ...]
    can_create: bool | None
    stuck: str | None
    unchecked: str | None = None  # why the topics could not be checked (the broker did not answer)

    @property
    def ok(self) -> bool:
        return self.status.running and self.stuck is None and self.unchecked is None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.status.to_dict(),
            "ok": self.ok,
            "topics": list(self.topics),
            "missing_topics": list(self.missing),
            "can_create_topics": self.can_create,
            "stuck": self.stuck,
            "topics_unchecked": self.unchecked,
        }


def diagnose(
    client: ConnectClient, name: str, broker: Broker, source_gtids: SourceGtids | None = None, *,
    now: float | None = None, limit_s: float = 60.0,
) -> ConnectorHealth:  # fmt: skip
    """The connector's status and, when RUNNING, whether its topics exist or can come to exist,
    and (with `source_gtids`, MariaDB) whether it delivers what the source writes.

    Raises what ConnectClient raises (ConnectorNotFound, ConnectUnreachable); a broker that
    does not answer leaves the topics unchecked (`unchecked` says why), never reported healthy.
    """
    status = client.status(name)
    config = client.config(name)
    topics = tuple(dict.fromkeys([*expected_topics(config), *client.topics(name)]))
    creation = all(config.get(key) not in (None, "") for key in TOPIC_CREATION_KEYS)
    try:
        existing = broker.topic_names()
        auto_create = None if creation else broker.auto_create_topics()
    except KafkaException as exc:
        reason = f"Kafka did not answer: {exc.args[0].str() if exc.args else exc}"
        return ConnectorHealth(status, topics, (), True if creation else None, None, reason)
    missing = tuple(t for t in topics if t not in existing)
    can_create = True if creation else auto_create
    stuck = None
    if status.running and missing and can_create is False:
        stuck = (
            f"RUNNING but its topic(s) {', '.join(missing)} do not exist and nothing will create them: the broker "
            "has auto.create.topics.enable=false and the connector has no topic.creation.default.* settings, so "
            "Debezium retries UNKNOWN_TOPIC_OR_PARTITION forever. Fix: add topic.creation.default.replication.factor "
            "and topic.creation.default.partitions to the connector's config (`dualrun cdc register` sets them), "
            "or create those topics, or enable auto.create.topics.enable on the broker"
        )
    elif status.running and source_gtids is not None:
        present = [t for t in topics if t not in missing]
        try:
            stuck = _stall(client, name, config, broker, present, source_gtids, now or time.time(), limit_s)
        except KafkaException as exc:
            reason = f"Kafka did not answer: {exc.args[0].str() if exc.args else exc}"
            return ConnectorHealth(status, topics, missing, can_create, None, reason)
    return ConnectorHealth(status, topics, missing, can_create, stuck)


def _stall(
    client: ConnectClient, name: str, config: dict[str, Any], broker: Broker, topics: list[str],
    source_gtids: SourceGtids, now: float, limit_s: float,
) -> str | None:  # fmt: skip
    """Why a RUNNING connector with its topics in place delivers nothing while the source writes; else None.

    MariaDB connectors with heartbeats only (see `stalled`); None too when it cannot tell (no GTIDs,
    a source it cannot read): the topic rule above and the other checks still apply.
    """
    if config.get("connector.class", "").rsplit(".", 1)[-1] not in SCHEMA_CHANGE_CLASSES:
        return None
    if int(str(config.get("heartbeat.interval.ms") or 0)) <= 0:
        return None
    offsets = [o.get("offset") or {} for o in client.offsets(name)]
    source = source_gtids(config) if offsets else None
    if source is None:
        return None
    try:
        behind = offset_behind(offsets[0], source)
    except PositionError:  # MySQL's uuid:1-5 GTIDs: not compared here
        return None
    if not behind:
        return None
    newest = broker.last_record_ms(topics)
    age = None if newest is None else now - newest / 1000
    if not stalled(age, behind, limit_s):
        return None
    last = "no record" if age is None else f"the last record {max(0.0, age):.0f}s ago"
    committed = offsets[0].get("transaction_id") or offsets[0].get("gtids")
    return (
        f"RUNNING but delivering nothing: {last} on its topics, while the source is at GTID {source} and the "
        f"connector's committed offset at {committed}. Fix: read Connect's log for the cause (e.g. deleted topics, "
        "UNKNOWN_TOPIC_OR_PARTITION), then `dualrun cdc restart`"
    )


def offset_behind(offset: dict[str, Any], source_gtids: str) -> bool | None:
    """Whether a MariaDB connector's committed offset is behind the source's @@gtid_binlog_pos; None
    when the offset carries no GTIDs (then positions cannot tell: an offset's file/pos is where the
    last transaction started, behind the binlog's end even when the connector is caught up).

    The offset's `gtids` are the transactions completed before its `transaction_id`, the last one
    it delivered. Raises PositionError for GTIDs that do not parse.

    >>> offset_behind({"gtids": "0-1-804", "transaction_id": "0-1-805"}, "0-1-805")
    False
    >>> offset_behind({"gtids": "0-1-804", "transaction_id": "0-1-805"}, "0-1-809")
    True
    >>> offset_behind({"file": "mysql-bin.000001", "pos": 4}, "0-1-809") is None
    True
    """
    if not offset.get("gtids") and not offset.get("transaction_id"):
        return None
    seen = parse_gtid_set(str(offset.get("gtids") or ""))
    for domain, seq in parse_gtid_set(str(offset.get("transaction_id") or "")).items():
        seen[domain] = max(seen.get(domain, 0), seq)
    return any(seq > seen.get(domain, 0) for domain, seq in parse_gtid_set(source_gtids).items())


def stalled(last_record_age_s: float | None, behind: bool, limit_s: float) -> bool:
    """A RUNNING connector that delivers nothing while the source writes: its committed offset is
    behind the source (`offset_behind`) and its topics got no record for `limit_s` seconds.

    Meaningful with Debezium heartbeats on (heartbeat.interval.ms > 0): they move a connector's
    offset past writes to tables it does not capture. A caught-up offset is never a stall.

    >>> stalled(300.0, True, 60), stalled(2.0, True, 60), stalled(300.0, False, 60)
    (True, False, False)
    """
    return behind and (last_record_age_s is None or last_record_age_s > limit_s)
