"""Batch over the change log without a stack: the SQL transpiled (or refused in one line naming the
construct), the position chosen, the rebuilt rows run through DuckDB with exact types."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner

from cdc.position import Position
from cdc.rebuild import LogExtent, RebuiltTable
from migrate.cli import cli
from migrate.errors import DualrunError
from migrate.examples import shop_orders
from migrate.logbatch import check_reach, exact_output, run_sql, transpile
from migrate.logtypes import arrow_table
from migrate.verify.run import connector_position
from tests.unit.report.builders import local_spec


@pytest.mark.parametrize("output", ["orders_enriched", "order_alerts", "daily_revenue"])
def test_the_reference_sql_transpiles_to_duckdb(output: str) -> None:
    spec = local_spec(Path("/tmp"))
    sql = transpile(spec.outputs[output].batch.sql_text(), "mariadb", output)
    assert "DATE(" not in sql.replace("AS DATE)", "")  # MariaDB's DATE() became a cast


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("SELECT a FROM t FOR UPDATE", "FOR UPDATE"),
        ("SELECT a FROM t; SELECT b FROM t", "exactly one SELECT"),
        ("DELETE FROM t", "exactly one SELECT"),
        ("SELECT a FROM (", "cannot parse"),
    ],
)
def test_what_cannot_run_on_the_log_is_refused_in_one_line_naming_it(sql: str, named: str) -> None:
    with pytest.raises(DualrunError) as caught:
        transpile(sql, "mariadb", "out")
    message = str(caught.value)
    assert message.startswith("outputs.out.batch cannot run on the change log") and named in message
    assert "\n" not in message


def test_postgres_sql_is_read_as_postgres() -> None:
    assert (
        transpile("SELECT a::numeric(12,2) AS a FROM t", "postgres", "o")
        == "SELECT CAST(a AS DECIMAL(12, 2)) AS a FROM t"
    )


def test_the_connector_position_is_the_furthest_offset_outside_a_snapshot_without_its_gtid() -> None:
    offsets = [
        {"offset": {"file": "bin.000002", "pos": 900, "gtids": "0-1-5"}},
        {"offset": {"file": "bin.000003", "pos": 4, "gtids": "0-1-6", "event": 1, "row": 1}},
        {"offset": {"file": "bin.000004", "pos": 4, "snapshot": "true"}},
        {"partition": {"server": "x"}},
    ]
    assert connector_position(offsets) == Position.binlog_snapshot("bin.000003", 4)
    assert connector_position([]) is None


def test_rebuilt_rows_run_in_duckdb_with_exact_decimals_and_utc_timestamps() -> None:
    orders = arrow_table(
        "shop.orders",
        [
            {"order_id": 1, "amount": Decimal("0.10"), "status": "NEW", "ts": datetime(2024, 1, 1, 23, 30, tzinfo=UTC)},
            {"order_id": 2, "amount": Decimal("0.20"), "status": "NEW", "ts": datetime(2024, 1, 1, 23, 45, tzinfo=UTC)},
            {"order_id": 3, "amount": Decimal("99999999999.99"), "status": "PAID", "ts": None},
        ],
        ("order_id", "amount", "status", "ts"),
    )
    assert orders.schema.field("amount").type == pa.decimal128(18, 2)
    assert orders.schema.field("ts").type == pa.timestamp("us")  # naive UTC
    out = run_sql(
        {"shop.orders": orders},
        {"s": "SELECT status, SUM(amount) AS total, MIN(CAST(ts AS DATE)) AS day FROM orders GROUP BY status "
              "ORDER BY status"},
        "shop",
    )["s"]  # fmt: skip
    assert out.to_pylist() == [
        {"status": "NEW", "total": Decimal("0.30"), "day": datetime(2024, 1, 1).date()},
        {"status": "PAID", "total": Decimal("99999999999.99"), "day": None},
    ]
    assert pa.types.is_decimal(out.schema.field("total").type)
    narrowed = exact_output(out, "s", {"total": "DECIMAL(18,2)"})
    assert narrowed.schema.field("total").type == pa.decimal128(18, 2)


def test_duckdb_rejecting_the_transpiled_sql_names_the_output() -> None:
    table = arrow_table("shop.orders", [{"order_id": 1}], ("order_id",))
    with pytest.raises(DualrunError, match=r"^outputs.o.batch: DuckDB rejected .*no_such"):
        run_sql({"shop.orders": table}, {"o": "SELECT no_such FROM orders"}, "shop")


def test_run_batch_from_log_refuses_sql_it_cannot_transpile_with_exit_2(tmp_path: Path) -> None:
    spec = local_spec(tmp_path)
    outputs = {k: v.model_dump() for k, v in shop_orders.outputs("t").items()}
    outputs["order_alerts"]["batch"] = {"sql": "SELECT order_id, amount FROM orders FOR UPDATE"}
    (tmp_path / "dualrun.yaml").write_text(yaml.safe_dump({**spec.model_dump(mode="json"), "outputs": outputs}))
    result = CliRunner().invoke(cli, ["run", "batch", "--from-log", "--spec", str(tmp_path / "dualrun.yaml")])
    assert result.exit_code == 2, result.output
    assert result.output == (
        "error: outputs.order_alerts.batch cannot run on the change log: "
        "Locking reads using 'FOR UPDATE/SHARE' are not supported\n"
    )


def test_position_applies_only_with_from_log(tmp_path: Path) -> None:
    spec = local_spec(tmp_path)
    (tmp_path / "dualrun.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    result = CliRunner().invoke(cli, ["run", "batch", "--position", "batch", "--spec", str(tmp_path / "dualrun.yaml")])
    assert result.exit_code == 2 and "--position applies only with --from-log" in result.output


def _rebuilt(extent: LogExtent, later: frozenset[tuple[object, ...]] = frozenset()) -> RebuiltTable:
    return RebuiltTable(Position.binlog_snapshot("bin.000003", 10), extent, later=len(later))


def test_a_log_that_cannot_rebuild_the_table_is_refused_with_what_to_do() -> None:
    head_cut = LogExtent("p.shop.orders", True, earliest_offset=310, first_position=Position.binlog("bin.000002", 4))
    with pytest.raises(DualrunError, match=r"earliest offset 310, first event at bin.000002:4.*newer --position"):
        check_reach("shop.orders", _rebuilt(head_cut), compacted=False)
    whole = LogExtent("p.shop.orders", True)
    with pytest.raises(DualrunError, match=r"is compacted and 2 key\(s\) changed after bin.000003:10"):
        check_reach("shop.orders", _rebuilt(whole, frozenset({(1,), (2,)})), compacted=True)
    check_reach("shop.orders", _rebuilt(whole, frozenset({(1,)})), compacted=False)  # later keys: fine uncompacted
    check_reach("shop.orders", _rebuilt(whole), compacted=True)


@pytest.mark.parametrize("mode", ["double", "string"])
def test_a_connector_that_does_not_send_exact_decimals_is_refused_before_anything_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """With doubles (or text) in the topics, the batch's DECIMAL arithmetic cannot be rebuilt
    exactly: --from-log says so and what to change, instead of summing money as floats."""
    from migrate import logbatch

    monkeypatch.setattr(logbatch, "connector_settings", lambda spec: {"decimal.handling.mode": mode})
    spec = local_spec(tmp_path)
    with pytest.raises(DualrunError, match=f"decimal.handling.mode={mode} .*needs decimal.handling.mode=precise"):
        logbatch.rebuild_tables(spec, Position.binlog("mysql-bin.000001", 4), read_timeout=1)


def test_from_log_refuses_a_postgres_source_in_one_line(tmp_path: Path) -> None:
    from migrate.logbatch import run_from_log

    spec = local_spec(tmp_path)
    pg = spec.model_copy(update={"source": spec.source.model_copy(update={"kind": "postgres"})})
    with pytest.raises(DualrunError, match=r"^run batch --from-log rebuilds tables by binlog position: MariaDB/MySQL"):
        run_from_log(pg, wait_seconds=0, record=False)


def test_a_column_without_a_value_takes_its_type_from_the_topics_schema_not_varchar() -> None:
    schemas = {
        "amount": {"field": "amount", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                   "parameters": {"scale": "4", "connect.decimal.precision": "18"}},
        "at": {"field": "at", "type": "int64", "name": "io.debezium.time.Timestamp"},
        "n": {"field": "n", "type": "int32"},
    }  # fmt: skip
    table = arrow_table("t", [{"amount": None, "at": None, "n": None, "x": None}], ("amount", "at", "n", "x"), schemas)
    assert [f.type for f in table.schema] == [pa.decimal128(18, 4), pa.timestamp("us"), pa.int64(), pa.string()]
    # SUM over it stays exact in DuckDB: a DECIMAL, not a double or a text error.
    out = run_sql({"shop.t": table}, {"o": "SELECT SUM(amount) AS s FROM t"}, "shop")["o"]
    assert pa.types.is_decimal(out.schema.field("s").type)
