"""Debezium's MariaDB connector against the real local stack."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from cdc.connect import ConnectClient
from migrate.services.connect import Connect
from migrate.stack import Stack
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database, Events, changes, check_insert_update_delete, connector_for, wait_status

pytestmark = pytest.mark.integration


def test_snapshot_then_insert_update_delete_and_tombstone(
    stack: StackConfig, db: Database, connect: ConnectClient,
    unique: Callable[[str], str], events: Callable[[list[str]], Events],
) -> None:  # fmt: skip
    table = db.orders_table(unique("orders"))
    db.run(f"INSERT INTO `{table}` (order_id, customer_id, amount, status) VALUES "
           "(1, 7, 129.99, 'NEW'), (2, 8, 0.01, 'NEW')")  # fmt: skip
    settings = connector_for(stack, unique("snap"), (f"shop.{table}",))
    connect.put(settings.name, settings.to_config())
    stream = events([settings.table_topic(f"shop.{table}")])

    snapshot = changes(stream.take(2))
    assert [e.op for e in snapshot] == ["r", "r"]
    assert all(e.snapshot and e.before is None for e in snapshot)
    assert {e.key["order_id"]: e.after["amount"] for e in snapshot if e.after} == {
        1: Decimal("129.99"),
        2: Decimal("0.01"),
    }

    db.run(f"INSERT INTO `{table}` (order_id, customer_id, amount, status) VALUES (3, 9, 9999999999.99, 'NEW')")
    db.run(f"UPDATE `{table}` SET amount = 612.50, status = 'PAID' WHERE order_id = 1")
    db.run(f"DELETE FROM `{table}` WHERE order_id = 2")
    ins, upd, dele = check_insert_update_delete(stream.take(4), snapshot[-1])
    assert all(e.position.gtid and e.transaction_id for e in (ins, upd, dele))
    assert not any(e.snapshot for e in (ins, upd, dele))


def test_no_change_is_lost_while_connect_is_down(
    stack: StackConfig, db: Database, connect: ConnectClient,
    unique: Callable[[str], str], events: Callable[[list[str]], Events],
) -> None:  # fmt: skip
    table = db.orders_table(unique("orders"))
    db.run(f"INSERT INTO `{table}` (order_id, customer_id, amount, status) VALUES (1, 1, 10.00, 'NEW')")
    settings = connector_for(stack, unique("restart"), (f"shop.{table}",))
    connect.put(settings.name, settings.to_config())
    stream = events([settings.table_topic(f"shop.{table}")])
    assert [e.op for e in changes(stream.take(1))] == ["r"]  # snapshot done: streaming from here

    worker = Connect(stack, Stack(stack)._artifacts())
    assert worker.stop()
    for i in range(2, 12):
        db.run(f"INSERT INTO `{table}` (order_id, customer_id, amount, status) VALUES ({i}, 1, {i}.25, 'NEW')")
    db.run(f"UPDATE `{table}` SET amount = amount + 1 WHERE order_id <= 3")
    db.run(f"DELETE FROM `{table}` WHERE order_id = 11")
    worker.start()

    after = stream.take(10 + 3 + 1 + 1, timeout=90)
    ops = [e.op for e in changes(after)]
    assert ops == ["c"] * 10 + ["u"] * 3 + ["d"]
    assert [e.key["order_id"] for e in changes(after)][:10] == list(range(2, 12))
    assert stream.quiet(2) == []  # and nothing delivered twice after the restart


def test_wrong_password_reports_failed_with_a_readable_reason(
    stack: StackConfig, db: Database, connect: ConnectClient, unique: Callable[[str], str],
) -> None:  # fmt: skip
    from click.testing import CliRunner

    from migrate.cli import cli

    user = unique("dbz")
    grants = "SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT"
    db.run(
        f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'right-pw'",
        f"GRANT {grants} ON *.* TO '{user}'@'127.0.0.1'",
    )
    table = db.orders_table(unique("orders"))
    settings = connector_for(stack, unique("badpw"), (f"shop.{table}",), user=user, password="right-pw")
    connect.put(settings.name, settings.to_config())
    wait_status(connect, settings.name, lambda s: s.running)
    # The password is rotated in the database but not in the connector.
    db.run(f"ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY 'rotated-pw'")
    connect.restart(settings.name, include_tasks=True)
    wait_status(connect, settings.name, lambda s: s.failed)

    runner = CliRunner()
    result = runner.invoke(cli, ["cdc", "status", "--name", settings.name, "--state-dir", str(stack.state_dir)])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output
    assert "Access denied" in result.output
    assert "right-pw" not in result.output and "rotated-pw" not in result.output

    as_json = runner.invoke(cli, ["cdc", "status", "--json", "--name", settings.name,
                                  "--state-dir", str(stack.state_dir)])  # fmt: skip
    assert '"failed": true' in as_json.output and "Access denied" in as_json.output


def test_registering_with_a_wrong_password_is_one_clear_line(
    stack: StackConfig, unique: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from click.testing import CliRunner

    from migrate.cli import cli

    monkeypatch.setenv("WRONG_PW", "definitely-wrong")
    result = CliRunner().invoke(cli, [
        "cdc", "register", "--name", unique("wrong"), "--password-env", "WRONG_PW",
        "--state-dir", str(stack.state_dir),
    ])  # fmt: skip
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Access denied" in lines[0]
    assert "definitely-wrong" not in result.output
