from __future__ import annotations

import re

import pytest

from cdc.connect import ConnectorStatus, TaskStatus, summarise_trace
from cdc.connector import MASK, ConnectorSettings, redact, server_id_for
from cdc.errors import CdcError


def settings(**overrides: object) -> ConnectorSettings:
    base: dict[str, object] = {
        "name": "shop", "kind": "mariadb", "hostname": "127.0.0.1", "port": 3306, "user": "debezium",
        "password": "s3cret", "databases": ("shop",), "bootstrap_servers": "127.0.0.1:9092",
    }  # fmt: skip
    base.update(overrides)
    return ConnectorSettings(**base)  # type: ignore[arg-type]


def test_mariadb_config_has_the_article_shape_and_dualrun_defaults() -> None:
    config = settings().to_config()
    assert config["connector.class"] == "io.debezium.connector.mariadb.MariaDbConnector"
    assert config["topic.prefix"] == "dbserver1"
    assert config["database.include.list"] == "shop"
    # From the connector's name: a second connector on the same source gets another id.
    assert config["database.server.id"] == str(server_id_for("shop"))
    assert settings(name="ledger-cdc").to_config()["database.server.id"] != config["database.server.id"]
    assert settings(server_id=42).to_config()["database.server.id"] == "42"
    assert config["schema.history.internal.kafka.topic"] == "dbserver1.schema-history"
    assert config["schema.history.internal.kafka.bootstrap.servers"] == "127.0.0.1:9092"
    assert config["snapshot.mode"] == "initial"
    assert config["heartbeat.interval.ms"] == "1000"
    assert config["provide.transaction.metadata"] == "true"
    assert config["decimal.handling.mode"] == "precise"
    assert config["poll.interval.ms"] == "50"
    assert all(isinstance(v, str) for v in config.values())
    assert settings().table_topic("shop.orders") == "dbserver1.shop.orders"


def test_mysql_and_postgres_variants() -> None:
    assert settings(kind="mysql").to_config()["connector.class"].endswith("MySqlConnector")
    pg = settings(kind="postgres", port=5432, databases=("public",), pg_database="shop").to_config()
    assert pg["plugin.name"] == "pgoutput" and pg["database.dbname"] == "shop"
    assert pg["slot.name"] == "dualrun_shop" and "database.server.id" not in pg


def test_postgres_config_streams_pgoutput_through_an_existing_publication() -> None:
    pg = settings(kind="postgres", name="Orders-PG.v2", port=5432, tables=("shop.orders",)).to_config()
    assert pg["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert pg["database.dbname"] == "shop" and pg["schema.include.list"] == "shop"
    assert pg["table.include.list"] == "shop.orders"
    # Slot and publication names are valid PostgreSQL names derived from the connector name.
    assert pg["slot.name"] == pg["publication.name"] == "dualrun_orders_pg_v2"
    # The table owner creates the publication; Debezium's role only reads and replicates.
    assert pg["publication.autocreate.mode"] == "disabled"
    assert pg["decimal.handling.mode"] == "precise"
    assert pg["provide.transaction.metadata"] == "true"
    assert pg["heartbeat.interval.ms"] == "1000" and pg["poll.interval.ms"] == "50"
    # MariaDB/MySQL-only settings stay out: PostgreSQL has no schema history topic or server id.
    assert not any(key.startswith("schema.history") or key.startswith("database.server") for key in pg)
    assert "database.include.list" not in pg and "include.schema.changes" not in pg


def test_postgres_slot_and_publication_can_be_named() -> None:
    pg = settings(kind="postgres", slot_name="slot_1", publication="dualrun_shop").to_config()
    assert pg["slot.name"] == "slot_1" and pg["publication.name"] == "dualrun_shop"
    long = settings(kind="postgres", name="x" * 80).to_config()
    assert len(long["slot.name"]) == 63
    with pytest.raises(CdcError, match="slot.name"):
        settings(kind="postgres", slot_name="Bad-Slot")
    with pytest.raises(CdcError, match="publication.autocreate.mode"):
        settings(kind="postgres", publication_autocreate="sometimes")


def test_tables_and_extra_settings() -> None:
    config = settings(tables=("shop.orders",), extra={"snapshot.locking.mode": "none"}).to_config()
    assert config["table.include.list"] == "shop.orders"
    assert config["snapshot.locking.mode"] == "none"


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(CdcError, match="not one of"):
        settings(kind="oracle")
    with pytest.raises(CdcError, match="exact"):
        settings(decimal_handling_mode="double")


def test_secrets_never_leave_through_dumps() -> None:
    s = settings()
    assert "s3cret" not in repr(s)
    assert s.to_dict()["config"]["database.password"] == MASK
    assert "s3cret" not in str(s.to_dict())
    assert redact({"sasl.jaas.config": "x", "a": "b", "database.password": ""}) == {
        "sasl.jaas.config": MASK,
        "a": "b",
        "database.password": "",
    }


def test_trace_summary_keeps_first_line_and_root_cause() -> None:
    trace = (
        "org.apache.kafka.connect.errors.ConnectException: Error reading\n\tat x.y(Z.java:1)\n"
        "Caused by: java.sql.SQLException: boom\nCaused by: java.sql.SQLInvalidAuthorizationSpecException: "
        "Access denied for user 'debezium'@'localhost'\n\tat a.b(C.java:2)"
    )
    summary = summarise_trace(trace)
    assert summary is not None
    assert summary.startswith("org.apache.kafka.connect.errors.ConnectException: Error reading")
    assert summary.endswith("Access denied for user 'debezium'@'localhost'")
    assert summarise_trace(None) is None


def test_status_flags() -> None:
    ok = ConnectorStatus("c", "RUNNING", "w", (TaskStatus(0, "RUNNING", "w", None),), None)
    failed = ConnectorStatus("c", "RUNNING", "w", (TaskStatus(0, "FAILED", "w", "bad password"),), None)
    empty = ConnectorStatus("c", "RUNNING", "w", (), None)
    assert ok.running and not ok.failed
    assert failed.failed and not failed.running and failed.reason == "bad password"
    assert not empty.running


def test_position_header_smt_is_guarded_so_tombstones_heartbeats_and_markers_pass() -> None:
    config = settings(tables=("shop.orders", "shop.customers")).to_config()
    assert config["transforms"] == "dualrunTombIn,dualrunPos,dualrunTombOut"
    assert config["predicates"] == "dualrunIsTombstone,dualrunTableTopic"
    assert config["transforms.dualrunPos.type"] == "org.apache.kafka.connect.transforms.HeaderFrom$Value"
    assert (config["transforms.dualrunPos.fields"], config["transforms.dualrunPos.headers"]) == ("source", "dbz.source")
    assert config["transforms.dualrunPos.operation"] == "copy"
    # HeaderFrom only on the table topics (heartbeats and transaction metadata have no `source`) ...
    assert config["transforms.dualrunPos.predicate"] == "dualrunTableTopic"
    pattern = re.compile(config["predicates.dualrunTableTopic.pattern"])
    assert pattern.fullmatch("dbserver1.shop.orders") and pattern.fullmatch("dbserver1.shop.customers")
    for other in ("dbserver1.transaction", "__debezium-heartbeat.dbserver1", "dbserver1", "dbserver1.shop.ordersX",
                  "dbserver1.shop.orders.dualrun-tombstone"):  # fmt: skip
        assert not pattern.fullmatch(other), other
    # ... and tombstones (null value) detour around it by topic name and come back unchanged.
    assert config["predicates.dualrunIsTombstone.type"].endswith(".predicates.RecordIsTombstone")
    assert config["transforms.dualrunTombIn.predicate"] == "dualrunIsTombstone"
    assert config["transforms.dualrunTombOut.predicate"] == "dualrunIsTombstone"
    replacement = config["transforms.dualrunTombIn.replacement"].replace("$1", r"\1")
    routed = re.sub(f"^{config['transforms.dualrunTombIn.regex']}$", replacement, "dbserver1.shop.orders")
    assert not pattern.fullmatch(routed)
    back = re.fullmatch(config["transforms.dualrunTombOut.regex"], routed)
    assert back is not None and back[1] == "dbserver1.shop.orders"


def test_position_header_can_be_renamed_or_left_out_and_user_transforms_run_after() -> None:
    assert settings(position_header="pos").to_config()["transforms.dualrunPos.headers"] == "pos"
    bare = settings(position_header=None).to_config()
    assert not any(k.startswith(("transforms", "predicates")) for k in bare)
    mixed = settings(extra={"transforms": "unwrap", "transforms.unwrap.type": "x", "predicates": "p"}).to_config()
    assert mixed["transforms"] == "dualrunTombIn,dualrunPos,dualrunTombOut,unwrap"
    assert mixed["predicates"] == "dualrunIsTombstone,dualrunTableTopic,p"
    assert mixed["transforms.unwrap.type"] == "x"
    # Whole databases captured: every table topic of those databases, nothing else.
    pattern = re.compile(settings(databases=("shop", "ledger")).to_config()["predicates.dualrunTableTopic.pattern"])
    assert pattern.fullmatch("dbserver1.ledger.transfers") and not pattern.fullmatch("dbserver1.transaction")
    with pytest.raises(CdcError, match="position_header"):
        settings(position_header=" ")


def test_topics_are_created_by_the_connector_where_brokers_do_not_auto_create() -> None:
    config = settings(replication_factor=3, partitions=2).to_config()
    assert config["topic.creation.default.replication.factor"] == "3"
    assert config["topic.creation.default.partitions"] == "2"
    assert config["topic.creation.default.cleanup.policy"] == "delete"
