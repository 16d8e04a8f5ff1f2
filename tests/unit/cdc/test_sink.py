"""The JDBC sink's config and the isolation rule (cdc.sink)."""

from __future__ import annotations

from cdc.sink import ISOLATION, JdbcSinkSettings, isolation_problem, sink_topics


def settings(**changes: object) -> JdbcSinkSettings:
    base = {"name": "s", "topics": ("orders-enriched",), "table": "orders_enriched",
            "jdbc_url": "jdbc:postgresql://127.0.0.1:5432/shop", "user": "dualrun", "password": "pw"}  # fmt: skip
    return JdbcSinkSettings(**{**base, **changes})  # type: ignore[arg-type]


def test_config_upserts_deletes_and_reads_committed_by_default() -> None:
    config = settings().to_config()
    assert config["insert.mode"] == "upsert" and config["delete.enabled"] == "true"
    assert config["primary.key.mode"] == "record_key" and config["collection.name.format"] == "orders_enriched"
    assert config[ISOLATION] == "read_committed"
    assert ISOLATION not in settings(read_committed=False).to_config()
    assert "pw" not in str(settings().to_dict())


def test_isolation_rule_fails_only_transactional_topics_without_read_committed() -> None:
    uncommitted = settings(read_committed=False).to_config()
    problem = isolation_problem("s", uncommitted, {"orders-enriched"})
    assert problem is not None and f"{ISOLATION}=read_committed" in problem and "Connect's default" in problem
    explicit = isolation_problem("s", {**uncommitted, ISOLATION: "read_uncommitted"}, {"orders-enriched"})
    assert explicit is not None and "read_uncommitted (override)" in explicit
    assert isolation_problem("s", uncommitted, {"other-topic"}) is None  # not written in transactions
    assert isolation_problem("s", settings().to_config(), {"orders-enriched"}) is None
    assert sink_topics({"topics": " a, b ,"}) == ("a", "b")


def test_a_composite_key_names_its_fields_as_the_tables_primary_key() -> None:
    config = settings(key_fields=("customer_id", "order_day")).to_config()
    assert config["primary.key.mode"] == "record_key"
    assert config["primary.key.fields"] == "customer_id,order_day"
    assert "primary.key.fields" not in settings().to_config()  # the whole key struct


def test_repr_and_dict_never_show_the_password() -> None:
    sink = settings(password="Sink-Pw-91", jdbc_url="jdbc:postgresql://db:5432/shop?password=Url-Pw-92")
    for text in (repr(sink), str(sink), str(sink.to_dict())):
        assert "Sink-Pw-91" not in text and "Url-Pw-92" not in text
    assert "name='s'" in repr(sink)  # still says which sink it is
