"""The exploration notebook and the report's key drill-down reading the real source database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from comparators.report import render_run
from migrate.reporting import build_report
from migrate.stackconfig import StackConfig
from tests.integration.conftest import Database
from tests.unit.report.builders import (
    build_history,
    local_spec,
    notebook_text,
    orders_rows,
    output_tables,
    run_notebook,
    write_batch,
    write_changelog,
)

pytestmark = pytest.mark.integration


def test_notebook_and_report_drill_into_a_key_down_to_the_source(
    stack: StackConfig, db: Database, unique: Callable[[str], str], tmp_path: Path
) -> None:
    database = unique("src_nb")
    db.run(
        f"CREATE DATABASE `{database}`",
        f"CREATE TABLE `{database}`.customers LIKE shop.customers",
        f"CREATE TABLE `{database}`.orders LIKE shop.orders",
        f"INSERT INTO `{database}`.customers (id, name, tier) VALUES (7, 'c7', 'SILVER')",
        # the source has moved on since the batch run: order 2 is now refunded to 640.00
        f"INSERT INTO `{database}`.orders (order_id, customer_id, amount, status) VALUES (2, 7, 640.00, 'REFUNDED')",
    )
    url = f"mysql+pymysql://{stack.db_user}@127.0.0.1:{stack.ports.mariadb}/{database}"
    spec = local_spec(tmp_path, source={"url": url, "default_password": stack.db_password})
    build_history(spec.history_path, "CCD")
    tables = output_tables(orders_rows())
    write_batch(spec, tables)
    write_changelog(spec, tables)

    notebook = run_notebook(tmp_path, spec, {"DUALRUN_KEY": "orders_enriched:order_id=2",
                                             "DUALRUN_NOTEBOOK_SOURCE": "1"})  # fmt: skip
    assert [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"] == []
    text = notebook_text(notebook)
    assert "REFUNDED" in text and "640" in text  # the source row, next to batch and stream versions
    assert "batch run 20240430T020000-test01" in text

    report = build_report(spec, source=True)
    order10 = next(h for h in report.key_histories if h.output == "orders_enriched" and dict(h.key) == {"order_id": 10})
    assert [(e.side, e.op) for e in order10.events] == [("batch", "absent"), ("source", "absent")]
    html = render_run(report, "html")
    assert html.count("<details") >= 5 and "no change history was gathered" not in html
