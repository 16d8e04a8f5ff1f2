"""Reading pipeline runs back from a real history database."""

from __future__ import annotations

from pathlib import Path

import pytest

from comparators import history
from comparators.errors import HistoryError
from comparators.report.runs import load_run, pipelines
from tests.unit.report.builders import PIPELINE, build_history, pipeline_run


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[str]]]:
    path = tmp_path_factory.mktemp("history") / "history.duckdb"
    return path, build_history(path, "CCDCD")


def test_latest_run_gathers_every_output_of_the_last_pipeline_run(recorded: tuple[Path, list[list[str]]]) -> None:
    path, ids = recorded
    report = load_run(path, min_parity_streak=3)
    assert report.title == PIPELINE
    assert [o.output for o in report.outputs] == ["orders_enriched", "daily_revenue"]
    assert [o.run_id for o in report.outputs] == ids[-1]
    # the defect run: order 10 missing, two value mismatches, a negative revenue
    assert report.outputs[0].result.causes["missing_in_stream"] == 1
    assert report.outputs[0].result.causes["value_mismatch"] == 2
    assert report.outputs[1].result.causes["value_mismatch"] == 1
    assert report.verdict == "differences" and report.exit_code == 1


def test_trend_and_streak_follow_the_recorded_verdicts(recorded: tuple[Path, list[list[str]]]) -> None:
    path, _ = recorded
    report = load_run(path)
    assert [p.clean for p in report.trend] == [True, True, False, True, False]
    assert [p.streak for p in report.trend] == [1, 2, 0, 1, 0]
    assert all(p.outputs == 2 for p in report.trend)
    # the per-output streak the history keeps agrees with the pipeline trend on clean outputs
    assert history.parity_streak(path, f"{PIPELINE}/orders_enriched") == 0


def test_rechecks_of_one_batch_run_count_once_in_the_trend_as_in_the_history(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    at = {"night-1": "0-1-5", "night-2": "0-1-6"}
    # night-1 checked twice, night-2 once, then night-2 re-checked dirty and, after a fix, clean
    for batch_run, dirty in [("night-1", False), ("night-1", False), ("night-2", False), ("night-2", True),
                             ("night-2", False)]:  # fmt: skip
        for result in pipeline_run(dirty, at[batch_run], baseline=False).values():
            history.record(path, result, batch_run=batch_run)
    report = load_run(path)
    assert [p.batch_run for p in report.trend] == ["night-1", "night-1", "night-2", "night-2", "night-2"]
    assert [p.streak for p in report.trend] == [1, 1, 2, 0, 2]
    assert report.parity_streak == 2 == history.parity_streak(path, f"{PIPELINE}/orders_enriched")


def test_batch_runs_at_one_source_position_count_once_in_the_trend_as_in_the_history(tmp_path: Path) -> None:
    """A quiet source: three batch runs at one position are one piece of evidence, not three."""
    path = tmp_path / "h.duckdb"
    for batch_run in ("night-1", "night-2", "night-3"):
        for result in pipeline_run(False, "0-1-5", baseline=False).values():
            history.record(path, result, batch_run=batch_run)
    report = load_run(path)
    assert [p.streak for p in report.trend] == [1, 1, 1]
    assert report.parity_streak == 1 == history.parity_streak(path, f"{PIPELINE}/orders_enriched")
    assert [r.batch_run for r in history.runs(path, f"{PIPELINE}/orders_enriched")] == ["night-3", "night-2", "night-1"]


def test_a_pipeline_run_that_compared_only_some_outputs_is_not_clean(tmp_path: Path) -> None:
    """The report's trend counts a pipeline run clean only when every output was compared and clean,
    as the checklist's parity does per output."""
    path = tmp_path / "h.duckdb"
    for i in range(3):
        results = pipeline_run(False, f"0-1-{10 + i}", baseline=False)
        for output, result in results.items():
            if i == 1 and output == "daily_revenue":
                continue  # not compared in the second run (its side was behind)
            history.record(path, result, batch_run=f"night-{i}")
    report = load_run(path)
    assert [p.streak for p in report.trend] == [1, 0, 1]
    assert [p.outputs for p in report.trend] == [2, 1, 2]


def test_a_run_id_selects_its_own_pipeline_run_and_the_trend_up_to_it(recorded: tuple[Path, list[list[str]]]) -> None:
    path, ids = recorded
    report = load_run(path, run=ids[1][1])  # the second output of the second run
    assert [o.run_id for o in report.outputs] == ids[1]
    assert report.verdict == "clean" and report.parity_streak == 2
    assert len(report.trend) == 2


def test_results_survive_the_round_trip_through_history(recorded: tuple[Path, list[list[str]]]) -> None:
    path, _ = recorded
    stored = load_run(path).outputs[0].result
    fresh = pipeline_run(True, "0-1-140")["orders_enriched"]
    assert stored.causes == fresh.causes
    assert [s.to_dict() for s in stored.samples] == [s.to_dict() for s in fresh.samples]
    assert stored.aggregates is not None and fresh.aggregates is not None
    assert [p.to_dict() for p in stored.aggregates.differing] == [p.to_dict() for p in fresh.aggregates.differing]
    assert [(w, b.verdict) for w, b in stored.baselines] == [("batch vs batch rerun", "clean")]


def test_two_pipelines_in_one_history_stay_apart(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    build_history(path, "CD", pipeline="alpha")
    build_history(path, "C", pipeline="beta")
    assert pipelines(path) == ["beta/", "alpha/"]
    assert load_run(path).title == "beta"
    alpha = load_run(path, pipeline="alpha")
    assert alpha.title == "alpha" and alpha.verdict == "differences" and len(alpha.trend) == 2


def test_comparisons_recorded_without_a_pipeline_are_runs_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    result = pipeline_run(False, "0-1-1", baseline=False)["daily_revenue"]
    import dataclasses

    for _ in range(3):
        history.record(path, dataclasses.replace(result, name="batch.parquet vs stream.parquet"))
    report = load_run(path)
    assert len(report.outputs) == 1 and len(report.trend) == 3
    # all three judged the batch side at one position (0-1-1): one batch run, checked three times
    assert report.parity_streak == 1 == history.parity_streak(path, "batch.parquet vs stream.parquet")
    later = dataclasses.replace(
        result, name="batch.parquet vs stream.parquet", left=dataclasses.replace(result.left, position="0-1-2")
    )
    history.record(path, later)
    assert load_run(path).parity_streak == 2


def test_missing_history_is_a_user_error_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "history.duckdb"
    with pytest.raises(HistoryError, match="no run history at"):
        load_run(path)
    assert not path.parent.exists()


def test_unknown_run_and_pipeline_name_what_exists(recorded: tuple[Path, list[list[str]]]) -> None:
    path, _ = recorded
    with pytest.raises(HistoryError, match="run 'nope' is not in the history"):
        load_run(path, run="nope")
    with pytest.raises(HistoryError, match=f"no runs of 'other'.*it has {PIPELINE}/"):
        load_run(path, pipeline="other")


def test_a_sink_side_joins_the_run_of_its_output_and_counts_in_the_trend(tmp_path: Path) -> None:
    """`<pipeline>/<output>@sink` is compared at the topic's read point, not the batch position: it
    still belongs to the pipeline run that holds its output, and a sink difference breaks the streak."""
    path = tmp_path / "h.duckdb"
    ids = build_history(path, "CCC", sinks="CD-")
    second = load_run(path, run=ids[1][0])
    assert [o.output for o in second.outputs] == ["orders_enriched", "daily_revenue", "orders_enriched@sink"]
    assert second.verdict == "differences" and second.unexplained == 2  # only the sink differs
    assert second.outputs[2].result.left.position == "orders-enriched [0]@41"
    latest = load_run(path)
    assert [o.output for o in latest.outputs] == ["orders_enriched", "daily_revenue"]  # the sink was behind
    assert [(p.outputs, p.clean) for p in latest.trend] == [(3, True), (3, False), (2, True)]
    assert history.parity_streak(path, f"{PIPELINE}/orders_enriched@sink") == 0


def test_a_sink_entry_whose_run_has_it_already_is_a_run_of_its_own(tmp_path: Path) -> None:
    from tests.unit.report.builders import sink_run

    path = tmp_path / "h.duckdb"
    build_history(path, "C", sinks="C")
    history.record(path, sink_run(True, 8))  # the sink compared again, on its own
    report = load_run(path, pipeline=PIPELINE)
    assert [p.outputs for p in report.trend] == [3, 1]
    assert [o.output for o in report.outputs] == ["orders_enriched@sink"] and report.verdict == "differences"


def test_a_history_without_batch_run_reads_read_only_with_the_left_position_standing_for_it(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "h.duckdb"
    build_history(path, "CCC")  # batch positions 0-1-100, 0-1-110, 0-1-120
    for result in pipeline_run(False, "0-1-120").values():  # the last batch run reconciled again
        history.record(path, result)
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE runs DROP COLUMN batch_run")  # as a history written before the column
    con.close()
    report = load_run(path)  # read-only: nothing migrated, the left position stands for the batch run
    assert [p.streak for p in report.trend] == [1, 2, 3, 3]
    with duckdb.connect(str(path), read_only=True) as con:
        assert not history.has_batch_run(con)
    assert history.parity_streak(path, f"{PIPELINE}/orders_enriched") == 3  # migrates, same meaning
    assert [p.batch_run for p in load_run(path).trend] == ["0-1-100", "0-1-110", "0-1-120", "0-1-120"]
