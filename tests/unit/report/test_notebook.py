"""notebooks/explore.ipynb executes cleanly against a history, warehouse and changelog this test builds."""

from __future__ import annotations

from pathlib import Path

from tests.unit.report.builders import (
    NOTEBOOK,
    build_history,
    local_spec,
    notebook_text,
    orders_rows,
    output_tables,
    run_notebook,
    write_batch,
    write_changelog,
)


def test_notebook_runs_and_shows_runs_trend_causes_and_a_key_history(tmp_path: Path) -> None:
    spec = local_spec(tmp_path)
    build_history(spec.history_path, "CCDCD")
    tables = output_tables(orders_rows())
    write_batch(spec, tables)
    write_changelog(spec, tables)
    notebook = run_notebook(tmp_path, spec, {"DUALRUN_KEY": "orders_enriched:order_id=2",
                                             "DUALRUN_NOTEBOOK_SOURCE": "0"})  # fmt: skip
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = notebook_text(notebook)
    assert "latest run: differences; parity streak 0 of 3 clean batch runs required" in text
    assert "missing_in_stream" in text and "value_mismatch" in text  # the causes table
    # order 2 as the batch run and the stream changelog saw it
    assert "batch run 20240430T020000-test01" in text and "mysql-bin.000003:1001" in text
    assert "650.00" in text or "650.0" in text
    assert not list(NOTEBOOK.parent.glob("*.nbconvert.ipynb"))
