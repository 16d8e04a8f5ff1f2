"""The Kafka Streams OrderEnricher on a PostgreSQL source: the user's own job (no dualrun process beside it)
reads Debezium's PostgreSQL change topics; the batch runs in a REPEATABLE READ snapshot, placed in the
stream's commit order by `pg_current_snapshot()`; concurrent writers interleave their transactions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cdc.connect import ConnectClient
from migrate.asof import reconcile_spec
from migrate.batch import run_batch
from migrate.connector import connector_settings, ensure_connector
from migrate.examples.order_enricher.runner import SPEC, EnricherJob
from migrate.spec import PipelineSpec, load_spec
from migrate.stackconfig import StackConfig
from tests.integration.cdc.test_postgres import PgDatabase, drop_slot
from tests.integration.migrate.examples.test_kstreams_dualrun import TOPIC_SUFFIX, starter
from tests.integration.migrate.test_pipelines import assert_clean, causes
from tests.integration.migrate.test_postgres_source import Writers, make_pg_pipeline, seed

pytestmark = pytest.mark.integration


@pytest.fixture(params=["dbz.source", None], ids=["positions", "offset-fence"])
def pg_kstreams(
    request: pytest.FixtureRequest, postgres_stack: StackConfig, tmp_path: Path, unique: Callable[[str], str]
) -> Iterator[tuple[PipelineSpec, Callable[[str | None], EnricherJob]]]:
    """The example spec on its own PostgreSQL schema and connector, the job external, its outputs with the
    position header or (no SMT) through the offset fence and lineage: (spec, start(defect))."""
    pg = PgDatabase(postgres_stack)
    base = make_pg_pipeline(postgres_stack, pg, tmp_path, unique("pgks"))
    name = base.name
    tables = {t.partition(".")[2]: t for t in base.cdc.tables}
    outputs = {}
    for output, out in load_spec(SPEC).outputs.items():
        data = out.model_dump()
        data["stream"]["topic"] = f"{name}-{TOPIC_SUFFIX[output]}"
        data["lineage"] = {tables[t.partition(".")[2]]: m for t, m in data["lineage"].items()}
        outputs[output] = data
    spec = base.with_changes(
        stream={"pipeline": None}, cdc={"position_header": request.param}, outputs=outputs,
        compare={"wait_seconds": 120},
    )  # fmt: skip
    seed(spec)
    ensure_connector(spec)
    started: list[EnricherJob] = []
    yield spec, starter(spec, started)
    for job in started:
        job.cleanup()
    ConnectClient(spec.cdc.connect_url).delete(spec.cdc.connector)
    drop_slot(pg, connector_settings(spec).pg_slot)


def test_the_kafka_streams_job_on_postgresql_is_clean_under_interleaved_writers_and_a_defect_is_caught(
    pg_kstreams: tuple[PipelineSpec, Callable[[str | None], EnricherJob]],
) -> None:
    spec, start = pg_kstreams
    with Writers(spec) as writers:
        writers.wait_for(20)  # Debezium creates a table's topic with its first change; the job waits for both
        start(None)
        start("drop-deletes")
        writers.wait_for(writers.committed + 150)
        run = run_batch(spec)
        writers.wait_for(writers.committed + 150)
    assert run.snapshot is not None and run.snapshot.xip, f"no transaction open across the snapshot {run.snapshot}"
    result = reconcile_spec(spec, run.run_id)
    assert_clean(result)
    assert set(result.outputs) == {"orders_enriched", "order_alerts", "daily_revenue"}
    assert all(rec.left.rows > 0 and rec.right.rows > 0 for rec in result.outputs.values())
    checks = [c.to_dict() for c in result.checks.values()]
    assert all(check.cause is None for check in result.checks.values()), checks
    if spec.cdc.position_header is None:  # through the offset fence: keys verified, the window's in flight
        assert all(c.coverage is not None and c.coverage.verified > 0 for c in result.checks.values()), checks

    dropped = reconcile_spec(spec.variant("drop-deletes"), run.run_id).outputs["orders_enriched"]
    assert set(causes(dropped)) == {"missing_in_batch"} and dropped.only_in_right > 0 and dropped.only_in_left == 0
    print(f"\nsnapshot {run.snapshot}: rows {[r.left.rows for r in result.outputs.values()]}, "
          f"drop-deletes: {dropped.only_in_right} orders the job kept; {[c['coverage'] for c in checks]}")  # fmt: skip
