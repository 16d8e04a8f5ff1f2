"""Spec v2: the example spec, validation messages that name the file and the field, no reference defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from migrate.spec import PipelineSpec, SpecError, SpecProblems, example_spec_path, load_spec

LEDGER: dict[str, Any] = {
    "name": "ledger",
    "source": {"kind": "mariadb", "url": "mysql+pymysql://etl@db:3306/ledger", "password_env": "LEDGER_DB_PASSWORD"},
    "cdc": {
        "connect_url": "http://connect:8083", "connector": "ledger-cdc", "topic_prefix": "ledger",
        "tables": ["ledger.transfers"], "user": "debezium", "password_env": "LEDGER_DEBEZIUM_PASSWORD",
    },
    "kafka": {"bootstrap_servers": "kafka:9092"},
    "stream": {"group": "balance-job"},
    "outputs": {
        "account_balance": {
            "keys": ["account_id"],
            "batch": {"sql": "SELECT account_id, SUM(amount) AS balance FROM transfers GROUP BY account_id"},
            "stream": {"topic": "account-balance"},
            "tolerances": {"balance": "exact"},
        }
    },
}  # fmt: skip


# The shared contract's spec (issue 9), as written there; names in it must work as written.
CONTRACT = """
name: ledger
state_dir: .dualrun
source: {kind: mariadb, url: "mysql+pymysql://etl@db:3306/ledger", password_env: LEDGER_DB_PASSWORD}
cdc:
  connect_url: http://connect:8083
  connector: ledger-cdc
  topic_prefix: ledger
  tables: [ledger.transfers]
  user: debezium
  password_env: LEDGER_DEBEZIUM_PASSWORD
  position_header: dbz.source
  server_id: 184054
kafka: {bootstrap_servers: "kafka:9092"}
batch: {warehouse: warehouse.duckdb, rerun_for_noise: true}
stream:
  group: balance-job
outputs:
  account_balance:
    keys: [account_id]
    batch:
      sql: SELECT account_id, SUM(amount) AS balance FROM transfers GROUP BY account_id
      columns: {balance: "DECIMAL(18,2)"}
    stream:
      topic: account-balance
      position_header: dbz.source
    tolerances: {balance: exact}
    ignore: []
    partition: null
compare: {wait_seconds: 60, history: history.duckdb}
checklist: {max_consumer_lag: 1000, min_parity_streak: 3}
"""


def write(tmp_path: Path, data: dict[str, Any] | str) -> Path:
    path = tmp_path / "dualrun.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def load_fails(spec_file: Path, message: str) -> str:
    """Loading `spec_file` fails in one line naming the file and holding `message`; that line."""
    with pytest.raises(SpecError) as caught:
        load_spec(spec_file)
    text = str(caught.value)
    assert text.startswith(f"{spec_file}: ") and message in text, text
    assert "\n" not in text and caught.value.exit_code == 2
    return text


def changed(path: str, value: Any) -> dict[str, Any]:
    """LEDGER with the field at the dotted `path` set to `value` (a `...` value deletes it)."""
    data = yaml.safe_load(yaml.safe_dump(LEDGER))
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


def test_the_contracts_example_loads_as_written(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, LEDGER))
    assert spec.is_external and spec.stream.group == "balance-job" and spec.stream.pipeline is None
    out = spec.outputs["account_balance"]
    assert out.keys == ("account_id",) and out.batch.sql_text().startswith("SELECT account_id")
    assert out.stream.topic == "account-balance" and out.stream.table is None and out.stream.position_header is None
    assert spec.cdc.position_header == "dbz.source" and spec.position_header_for("account_balance") == "dbz.source"
    assert spec.stream.transactional_id == "balance-job" and spec.stream.state_topic == "balance-job-state"


def test_the_contracts_yaml_loads_as_written(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, CONTRACT))
    assert spec.is_external and spec.cdc.server_id == 184054 and spec.batch.rerun_for_noise
    assert spec.outputs["account_balance"].batch.columns == {"balance": "DECIMAL(18,2)"}
    assert spec.position_header_for("account_balance") == "dbz.source"


def test_position_header_per_output_and_opt_out(tmp_path: Path) -> None:
    data = changed("cdc.position_header", None)
    data["outputs"]["account_balance"]["stream"]["position_header"] = "dualrun.position"
    data["outputs"]["other"] = {**data["outputs"]["account_balance"], "stream": {"topic": "other"}}
    spec = load_spec(write(tmp_path, data))
    assert spec.cdc.position_header is None
    assert spec.position_header_for("account_balance") == "dualrun.position"
    assert spec.position_header_for("other") is None


def test_sql_file_resolves_against_the_spec_files_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "balance.sql").write_text("SELECT account_id, 1 AS balance FROM transfers;\n")
    data = changed(
        "outputs.account_balance.batch", {"sql_file": "sql/balance.sql", "columns": {"balance": "DECIMAL(18,2)"}}
    )
    monkeypatch.chdir("/")
    spec = load_spec(write(tmp_path, data))
    batch = spec.outputs["account_balance"].batch
    assert batch.sql_file == str(tmp_path / "sql" / "balance.sql")
    assert batch.sql_text() == "SELECT account_id, 1 AS balance FROM transfers\n"  # no trailing `;`
    assert batch.columns == {"balance": "DECIMAL(18,2)"}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("outputs", ..., "outputs: the spec declares no outputs; add each output with its keys and batch SQL"),
        ("outputs", {}, "outputs: declare at least one output with its keys and batch SQL"),
        ("name", ..., "name: required field is missing"),
        ("source", ..., "source: required field is missing"),
        ("stream.group", ..., "stream.group: required field is missing"),
        ("source.kind", "mysql", "source.kind: source kind 'mysql' is not supported yet: dualrun takes consistent "
         "snapshots of mariadb, postgres only"),
        ("source.kind", "oracle", "source.kind: source kind 'oracle' is not supported yet"),
        ("source.url", "mysql+pymysql://etl:secret@db/ledger", "source.url: put the password in the environment"),
        ("source.default_password", "x", "source.default_password: passwords never live in the spec"),
        ("cdc.tables", [], "cdc.tables: list at least one captured table"),
        ("outputs.account_balance.keys", [], "outputs.account_balance.keys: at least one key column is required"),
        ("outputs.account_balance.batch", {}, "outputs.account_balance.batch: give exactly one of sql (inline) and "
         "sql_file"),
        ("outputs.account_balance.batch", {"sql": "SELECT 1", "sql_file": "a.sql"}, "give exactly one of sql"),
        ("outputs.account_balance.batch", {"sql_file": "missing.sql"}, "outputs.account_balance.batch: sql_file "),
        ("outputs.account_balance.batch", {"sql": "SELECT 1", "columns": {"balance": "MONEY"}},
         "outputs.account_balance.batch.columns: column balance: unknown column type 'MONEY'"),
        ("outputs.account_balance.stream", {}, "outputs.account_balance.stream: name the topic (or table) the stream "
         "job writes, or set stream.pipeline"),
        ("outputs.account_balance.stream", {"topic": "a", "table": "postgresql://u@h/db?table=t"},
         "give one of topic and table, not both"),
        ("outputs.account_balance.colour", "red", "outputs.account_balance.colour: unknown field"),
        ("outputs.account_balance.tolerances", {"balance": "about:1"}, "outputs.account_balance.tolerances: column "
         "balance: unknown rule 'about:1'"),
        ("outputs.account_balance.stream", {"table": "postgresql://u@h/db"}, "outputs.account_balance.stream.table: "
         "'postgresql://u@h/db': expected a SQLAlchemy URL naming the table"),
        ("outputs.account_balance.stream", {"table": "postgresql://u:pw@h/db?table=t"}, "put the password in the "
         "environment, not in the table URL"),
        ("stream.pipeline", "mypkg.pipeline", "stream.pipeline: 'mypkg.pipeline': expected a Python reference like"),
        ("stream.commit_interval_ms", -5, "stream.commit_interval_ms: Input should be greater than 0"),
    ],
)  # fmt: skip
def test_a_wrong_spec_fails_at_load_in_one_line_naming_the_path(
    tmp_path: Path, path: str, value: Any, message: str
) -> None:
    spec_file = write(tmp_path, changed(path, value))
    text = load_fails(spec_file, message)
    if message.endswith("missing.sql"):
        assert str(tmp_path / "missing.sql") in text


def test_every_problem_is_carried_and_counted(tmp_path: Path) -> None:
    data = changed("source.kind", "oracle")
    data["cdc"]["tables"] = []
    del data["kafka"]
    with pytest.raises(SpecProblems) as caught:
        load_spec(write(tmp_path, data))
    assert len(caught.value.problems) == 3
    assert str(caught.value).endswith("(and 2 more problem(s); --debug lists them)")
    assert any(p.startswith("kafka: required field is missing") for p in caught.value.problems)


@pytest.mark.parametrize(
    ("section", "typo", "right"),
    [(("outputs", "account_balance"), "kyes", "keys"), (("stream",), "gruop", "group")],
)
def test_a_typo_in_a_required_key_is_named_first_with_did_you_mean(
    tmp_path: Path, section: tuple[str, ...], typo: str, right: str
) -> None:
    data = changed("source.kind", "oracle")  # another problem, reported after the typo
    where = data
    for name in section:
        where = where[name]
    where[typo] = where.pop(right)
    with pytest.raises(SpecProblems) as caught:
        load_spec(write(tmp_path, data))
    dotted = ".".join(section)
    first = f"{dotted}.{typo}: unknown field; did you mean `{right}`?"
    assert str(caught.value) == f"{tmp_path / 'dualrun.yaml'}: {first} (and 2 more problem(s); --debug lists them)"
    assert caught.value.problems[0] == first and f"{dotted}.{right}: required field is missing" in caught.value.problems


def test_an_unknown_key_with_nothing_close_missing_points_to_the_reference(tmp_path: Path) -> None:
    data = changed("stream.group", "g")
    data["stream"]["zzz"] = 1
    with pytest.raises(SpecProblems, match=r"stream\.zzz: unknown field; check its spelling against the spec"):
        load_spec(write(tmp_path, data))


def test_debug_lists_every_problem_of_an_invalid_spec(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from migrate.cli import cli

    data = changed("source.kind", "oracle")
    data["stream"]["gruop"] = data["stream"].pop("group")
    spec = write(tmp_path, data)
    plain = CliRunner().invoke(cli, ["checklist", "--spec", str(spec)])
    assert plain.exit_code == 2 and plain.output.strip().count("\n") == 0, plain.output
    debug = CliRunner().invoke(cli, ["--debug", "checklist", "--spec", str(spec)])
    assert debug.exit_code == 2, debug.output
    listed = [line[4:] for line in debug.output.splitlines() if line.startswith("  - ")]
    assert len(listed) == 3, debug.output
    assert listed[0] == "stream.gruop: unknown field; did you mean `group`?"
    assert listed[1].startswith("source.kind: ") and listed[2] == "stream.group: required field is missing"


def test_a_missing_password_variable_is_an_error_outside_the_local_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEDGER_DB_PASSWORD", raising=False)
    spec = load_spec(write(tmp_path, LEDGER))
    with pytest.raises(SpecError, match="source.password_env: environment variable LEDGER_DB_PASSWORD is not set"):
        spec.source.password()
    monkeypatch.setenv("LEDGER_DB_PASSWORD", "s3cret")
    assert spec.source.password() == "s3cret"
    assert "s3cret" not in repr(spec) and "s3cret" not in spec.model_dump_json()


def test_yaml_errors_and_missing_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not valid YAML at line"):
        load_spec(write(tmp_path, "source: [1,\n"))
    with pytest.raises(SpecError, match="does not exist; pass --spec"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="the spec is empty"):
        load_spec(write(tmp_path, ""))


def test_the_example_spec_loads_from_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no ./dualrun.yaml here: the packaged example is used
    for name in ("DUALRUN_MARIADB_PORT", "DUALRUN_KAFKA_PORT", "DUALRUN_CONNECT_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DUALRUN_DB_PASSWORD", raising=False)
    spec = load_spec()
    assert spec.name == "shop-orders" and spec.origin == str(example_spec_path()) and spec.local
    assert spec.source.url.endswith("@127.0.0.1:3306/shop")
    assert set(spec.outputs) == {"orders_enriched", "order_alerts", "daily_revenue"}
    assert spec.source.password() == "dualrun"  # local: true opts in to the stack's local password
    assert spec.stream.pipeline == "migrate.examples.shop_orders:PIPELINE" and not spec.is_external


def test_the_local_stack_spec_follows_the_stacks_port_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUALRUN_MARIADB_PORT", "23306")
    monkeypatch.setenv("DUALRUN_KAFKA_PORT", "29092")
    monkeypatch.setenv("DUALRUN_CONNECT_PORT", "28083")
    spec = load_spec(example_spec_path())
    assert spec.source.url == "mysql+pymysql://dualrun@127.0.0.1:23306/shop"
    assert spec.kafka.bootstrap_servers == "127.0.0.1:29092"
    assert spec.cdc.connect_url == "http://127.0.0.1:28083"


def test_a_users_spec_is_taken_as_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DUALRUN_MARIADB_PORT", "23306")
    spec = load_spec(write(tmp_path, LEDGER))
    assert spec.source.url == "mysql+pymysql://etl@db:3306/ledger" and not spec.local


def test_variants_never_share_an_identity_with_the_real_job() -> None:
    spec = load_spec(example_spec_path())
    replay = spec.replay()
    for field in ("group", "transactional_id", "state_topic", "dead_letter_topic", "changelog_dir"):
        assert getattr(replay.stream, field) != getattr(spec.stream, field), field
    for name, output in spec.outputs.items():
        if output.stream.topic is not None:
            assert replay.outputs[name].stream.topic == f"{output.stream.topic}-replay"
    assert replay.stream.group == "dualrun-stream-replay" and replay.name == "shop-orders+replay"
    assert replay.cdc == spec.cdc and replay.source == spec.source  # the same inputs
    assert replay.source.password() == spec.source.password()
    assert isinstance(replay, PipelineSpec)


def test_a_postgres_source_loads_and_its_connector_uses_pgoutput_a_publication_and_a_derived_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from migrate.connector import connector_settings

    monkeypatch.setenv(LEDGER["cdc"]["password_env"], "not-a-real-password")
    data = changed("source.kind", "postgres")
    data["source"]["url"] = "postgresql+psycopg://etl@db:5432/ledger"
    data["cdc"]["publication"] = "ledger_pub"
    spec = load_spec(write(tmp_path, data))
    config = connector_settings(spec).to_config()
    assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert config["plugin.name"] == "pgoutput" and config["publication.name"] == "ledger_pub"
    assert config["slot.name"] == "dualrun_" + spec.cdc.connector.replace("-", "_")
    assert config["database.dbname"] == "ledger" and config["transforms.dualrunPos.headers"] == "dbz.source"


# A password inside a URL that is also malformed (or of the wrong kind): whichever rule refuses it, the
# error never shows the password (it used to print the whole URL before the no-password rule ran).
@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("source.url", "mysql+pymysql://app:hunter2@db:33o6/shop", "source.url: put the password in the environment"),
        ("source.url", "mysql+pymysql://app:hun@ter2@db/shop", "source.url: put the password in the environment"),
        ("source.url", "mysql+pymysql://app:hunter2@/shop", "source.url: put the password in the environment"),
        ("outputs.account_balance.sink", {"table": "t", "url": "postgresql+psycopg://u:hunter2@h:po/db"},
         "outputs.account_balance.sink.url: put the password in the environment"),
        ("outputs.account_balance.sink", {"table": "t", "url": "mysql://u:hunter2@h/db"},
         "outputs.account_balance.sink.url: put the password in the environment"),
        ("outputs.account_balance.batch", {"import": {"url": "postgresql://u:hunter2@h:x/db", "table": "t"}},
         "put the password in the environment variable named by password_env"),
        ("outputs.account_balance.stream", {"table": "postgresql://u:hunter2@h/db"},
         "put the password in the environment, not in the table URL"),
        ("cdc.connect_url", "htp://ops:hunter2@connect:8083", "cdc.connect_url: 'htp://ops:********@connect:8083' "
         "is not an http(s) URL"),
        ("cdc.connect_url", "http://ops:hun/ter2@connect:80x3", "cdc.connect_url: 'http://ops:********@connect:80x3' "
         "is not an http(s) URL"),
    ],
)  # fmt: skip
def test_a_password_in_a_malformed_url_never_shows_in_the_error(
    tmp_path: Path, path: str, value: Any, message: str
) -> None:
    spec_file = write(tmp_path, changed(path, value))
    text = load_fails(spec_file, message)
    with pytest.raises(SpecProblems) as caught:
        load_spec(spec_file)
    for shown in (text, *caught.value.problems):
        assert "hunter2" not in shown and "ter2" not in shown, shown


def test_a_sink_url_of_another_database_names_only_its_scheme(tmp_path: Path) -> None:
    value = {"table": "t", "url": "mysql://u@secret-host.internal/db"}
    spec_file = write(tmp_path, changed("outputs.account_balance.sink", value))
    text = load_fails(spec_file, "sink.url: scheme 'mysql': the sink's database must be PostgreSQL")
    assert "secret-host" not in text
