"""`dualrun run batch --from-log` on the reference pipeline: the batch SQL run in DuckDB over the
tables rebuilt from Kafka equals the real batch run read at the same position, for a past run
still in retention as for the latest, and a table the connector does not capture fails clearly."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from cdc.connect import ConnectClient
from migrate.asof import reconcile_spec
from migrate.batch import load_run, run_batch, run_output
from migrate.connector import connector_settings, ensure_connector
from migrate.errors import DualrunError
from migrate.logbatch import LOG_SUFFIX, empty_table, run_from_log
from migrate.spec import PipelineSpec
from migrate.stackconfig import StackConfig
from migrate.verify.run import connector_position, log_reached
from tests.integration.conftest import Database
from tests.integration.migrate.conftest import JobThread, make_pipeline, workload_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[3]


def rows(table: pa.Table, keys: tuple[str, ...]) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[k]) for k in keys))


def assert_same(spec: PipelineSpec, batch: dict[str, pa.Table], log: dict[str, pa.Table]) -> None:
    """Every output equal row for row (exact values), decimals decimal with the batch's scale."""
    assert set(log) == set(spec.outputs)
    for name, out in spec.outputs.items():
        assert batch[name].num_rows > 0, name
        assert rows(log[name], out.keys) == rows(batch[name], out.keys), name
        for field in batch[name].schema:
            if pa.types.is_decimal(field.type):
                log_type = log[name].schema.field(field.name).type
                assert pa.types.is_decimal(log_type) and log_type.scale == field.type.scale, (name, field, log_type)


def batch_tables(spec: PipelineSpec, run_id: str) -> dict[str, pa.Table]:
    return {name: run_output(spec.warehouse_path, run_id, name) for name in spec.outputs}


def change(db: Database, spec: PipelineSpec) -> None:
    orders = f"`{spec.source.database}`.orders"
    customers = f"`{spec.source.database}`.customers"
    db.run(
        f"UPDATE {orders} SET amount = amount + 300.01 WHERE order_id % 7 = 0",
        f"UPDATE {orders} SET status = 'CANCELLED' WHERE order_id % 11 = 0",
        f"DELETE FROM {orders} WHERE order_id % 13 = 0",
        f"UPDATE {customers} SET tier = 'GOLD', name = 'Renamed' WHERE id % 3 = 0",
        f"INSERT INTO {orders} (customer_id, amount, status, created_at) VALUES (1, 500.01, 'NEW', NOW(3))",
    )


def test_from_log_equals_the_batch_at_a_past_and_at_the_latest_position(pipeline: PipelineSpec, db: Database) -> None:
    workload_for(pipeline).close()
    first = run_batch(pipeline)
    change(db, pipeline)
    second = run_batch(pipeline)
    change(db, pipeline)  # after both runs: the rebuild as of either must leave these out

    past, past_tables = run_from_log(pipeline, first.run_id, wait_seconds=90)
    assert past.run.position == first.position and past.position_source == f"batch run {first.run_id}"
    assert_same(pipeline, batch_tables(pipeline, first.run_id), past_tables)

    later, later_tables = run_from_log(pipeline, second.run_id, wait_seconds=90)
    assert_same(pipeline, batch_tables(pipeline, second.run_id), later_tables)
    assert later_tables != past_tables  # the changes between the runs are in one and not the other

    # Recorded like a batch run, with its position; `latest` still means the latest batch run.
    recorded = load_run(pipeline.warehouse_path, later.run.run_id)
    assert recorded.run_id.endswith(LOG_SUFFIX) and recorded.position == second.position
    assert rows(run_output(pipeline.warehouse_path, recorded.run_id, "daily_revenue"), ("customer_id", "order_day")) \
        == rows(later_tables["daily_revenue"], ("customer_id", "order_day"))  # fmt: skip
    assert load_run(pipeline.warehouse_path).run_id == second.run_id


def test_from_log_at_the_connector_offset_equals_a_batch_run_with_no_change_since_and_the_stream(
    pipeline: PipelineSpec, db: Database, jobs: Callable[[PipelineSpec], JobThread]
) -> None:
    job = jobs(pipeline)
    workload_for(pipeline).close()
    change(db, pipeline)
    run = run_batch(pipeline)
    secret = pipeline.cdc.known_password()
    client = ConnectClient(pipeline.cdc.connect_url, secrets=(secret,) if secret else ())
    deadline = time.monotonic() + 90
    while not log_reached(client.offsets(pipeline.cdc.connector), run.position):  # heartbeats move the offset on
        assert time.monotonic() < deadline, client.offsets(pipeline.cdc.connector)
        time.sleep(0.5)
    result, tables = run_from_log(pipeline, wait_seconds=90)
    at = connector_position(client.offsets(pipeline.cdc.connector))
    assert result.position_source == "connector offset" and at is not None
    assert (run.position.major, run.position.minor) <= (result.run.position.major, result.run.position.minor)
    assert_same(pipeline, batch_tables(pipeline, run.run_id), tables)
    # The third side against the stream: `reconcile --spec --run ID~log`, as of the log run's position.
    against_stream = reconcile_spec(pipeline, result.run.run_id, wait=90, record=False)
    assert against_stream.verdict == "clean", {n: r.causes for n, r in against_stream.outputs.items()}
    assert {n: r.left.rows for n, r in against_stream.outputs.items()} == {n: t.num_rows for n, t in tables.items()}
    job.stop()


def test_a_table_the_connector_does_not_capture_fails_with_one_line_and_exit_2(
    pipeline: PipelineSpec, db: Database, tmp_path: Path
) -> None:
    settings = dataclasses.replace(connector_settings(pipeline), tables=(f"{pipeline.source.database}.orders",))
    client = ConnectClient(pipeline.cdc.connect_url, secrets=(settings.password,))
    client.put(settings.name, settings.to_config())
    assert client.wait_settled(settings.name, 90).running
    workload_for(pipeline).close()
    with pytest.raises(DualrunError, match=r"does not capture .*\.customers \(table.include.list="):
        run_from_log(pipeline, wait_seconds=30, record=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "migrate.cli", "run", "batch", "--from-log", "--spec",
         str(Path(pipeline.state_dir) / "dualrun.yaml"), "--wait", "30"],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert "does not capture" in done.stderr and "customers" in done.stderr and "Traceback" not in done.stderr


def test_an_empty_captured_table_has_no_topic_and_is_taken_as_an_empty_table_with_a_note(
    stack: StackConfig, db: Database, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    spec = make_pipeline(stack, db, tmp_path, unique("p"))
    refunds = f"{spec.source.database}.refunds"
    db.run(f"CREATE TABLE {refunds} (id INT PRIMARY KEY, amount DECIMAL(12,2), at DATETIME(3), note VARCHAR(20))")
    spec = spec.with_changes(cdc={"tables": [*spec.cdc.tables, refunds]})
    ensure_connector(spec)
    workload_for(spec).close()
    run = run_batch(spec)
    result, tables = run_from_log(spec, run.run_id, wait_seconds=90, record=False)
    (empty,) = [t for t in result.tables if t.table == refunds]
    assert (empty.rows, empty.events, empty.first_op) == (0, 0, None)
    assert any(f"{empty.topic} does not exist" in note and "taken as empty" in note for note in result.notes)
    assert_same(spec, batch_tables(spec, run.run_id), tables)  # the other tables as before
    typed = empty_table(spec, refunds, empty.topic, {}).schema
    assert typed.field("amount").type == pa.decimal128(12, 2) and pa.types.is_timestamp(typed.field("at").type)
    # No topic is "empty" only when the snapshot read the table's rows and it has none.
    for settings, says in (
        ({"snapshot.mode": "no_data"}, "snapshot.mode=no_data reads no rows"),
        ({"snapshot.include.collection.list": f"{spec.source.database}.orders"}, "leaves it out of the snapshot"),
    ):
        with pytest.raises(DualrunError, match=says):
            empty_table(spec, refunds, empty.topic, settings)
    # A table with rows but no topic (its rows never captured, e.g. a renamed topic): refused.
    db.run(f"INSERT INTO {refunds} VALUES (1, 12.50, NOW(3), 'x')")
    with pytest.raises(DualrunError, match=r"no change topic \S+ but has rows: they were never captured"):
        empty_table(spec, refunds, f"{empty.topic}-renamed", {"snapshot.mode": "initial"})
