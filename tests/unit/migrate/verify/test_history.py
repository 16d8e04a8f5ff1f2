"""Verifications in the run history, the `cdc_complete` check over them, and their text rendering."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cdc.position import Position
from migrate import render
from migrate.checklist.changelog import cdc_complete
from migrate.checklist.context import Context
from migrate.verify import history
from migrate.verify.model import CdcVerification, Finding, TableVerification
from tests.unit.report.builders import local_spec

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
AT = Position.binlog_snapshot("mysql-bin.000012", 4711, gtid="0-1-812")
GAP = Finding("lost_delete", 2, "rows alive in the log but deleted in the database", samples=({"key": ["7"]},))


def verification(
    *findings: Finding, at: datetime = T0, unevaluated: str | None = None, pipeline: str = "shop"
) -> CdcVerification:
    table = TableVerification("shop.orders", "dbserver1.shop.orders", 10, 12 if findings else 10, 10, findings)
    tables = () if unevaluated else (table,)
    return CdcVerification(pipeline, "dualrun-shop", AT, at.isoformat(), 1.5, tables, {"snapshot.mode": "initial"},
                           unevaluated)  # fmt: skip


def check(tmp_path: Path, hours_later: float) -> tuple[str, str]:
    ctx = Context(local_spec(tmp_path), now=(T0 + timedelta(hours=hours_later)).timestamp())
    result = cdc_complete(ctx)
    return result.status, result.evidence


def test_cdc_complete_passes_on_a_recent_clean_verification_and_fails_on_an_old_one(tmp_path: Path) -> None:
    assert check(tmp_path, 1)[0] == "warn"  # never verified
    spec = local_spec(tmp_path)
    history.record(spec.history_path, verification(pipeline=spec.name))
    assert check(tmp_path, 2) == ("pass", "verified 2h 0m ago at mysql-bin.000012:4711: 1 table(s) clean")
    status, evidence = check(tmp_path, 30)
    assert status == "fail" and "older than the 24h batch window" in evidence


def test_cdc_complete_fails_on_differences_and_on_an_unevaluated_latest_run(tmp_path: Path) -> None:
    spec = local_spec(tmp_path)
    path = spec.history_path
    history.record(path, verification(GAP, at=T0, pipeline=spec.name))
    assert check(tmp_path, 1) == (
        "fail",
        "latest verification (1h 0m ago) at mysql-bin.000012:4711: shop.orders (2 lost_delete)",
    )
    history.record(
        path, verification(at=T0 + timedelta(minutes=5), unevaluated="the log is behind", pipeline=spec.name)
    )
    status, evidence = check(tmp_path, 1)
    assert status == "fail" and "could not be evaluated: the log is behind" in evidence
    latest = history.latest(path, spec.name)
    assert latest is not None and latest.verdict == "unevaluated"


def test_the_text_rendering_names_cause_setting_and_samples() -> None:
    sample = {"key": ["10"], "amount (database)": "12345678901234.5678", "amount (log)": "12345678901234.568"}
    decoding = Finding("decoding", 1, "values differ because of how the connector encodes amount",
                       "decimal.handling.mode=double", ("amount",), (sample,))  # fmt: skip
    text = render.cdc_verification(verification(decoding))
    assert text.splitlines() == [
        "dualrun cdc verify shop: DIFFERENCES",
        "connector dualrun-shop, log rebuilt as of mysql-bin.000012:4711 gtid 0-1-812",
        "  shop.orders              1 rows differ    database        10  log        12  matched        10",
        "                           decoding: 1 rows [decimal.handling.mode=double]: values differ because of how "
        "the connector encodes amount",
        '                             e.g. {"key": ["10"], "amount (database)": "12345678901234.5678", '
        '"amount (log)": "12345678901234.568"}',
    ]
    assert render.cdc_verification(verification(), "json").startswith("{")


def test_a_table_none_of_whose_rows_could_be_verified_makes_the_run_unevaluated_not_clean() -> None:
    blind = TableVerification("shop.orders", "t", 3, 0, 0, (), coverage="since_offset", unverified_rows=3)
    run = dataclasses.replace(verification(), tables=(blind,))
    assert (run.verdict, run.exit_code) == ("unevaluated", 2)
    partly = dataclasses.replace(blind, matched_rows=1, unverified_rows=2)
    assert dataclasses.replace(run, tables=(partly,)).verdict == "unevaluated"


def test_partial_coverage_below_the_threshold_is_unevaluated_with_the_counts() -> None:
    table = TableVerification("shop.orders", "t", 200, 0, 0, (), coverage="since_offset", unverified_rows=3)
    run = dataclasses.replace(verification(), tables=(table,))
    assert (run.verdict, run.exit_code) == ("unevaluated", 2)  # 197 of 200: 98.5% < 99%
    assert run.shortfall == "shop.orders: 197 of 200 rows verified: below checklist.min_coverage (99%)"
    assert run.to_dict()["coverage_shortfall"] == run.shortfall
    assert "not evaluated: shop.orders: 197 of 200 rows verified" in render.cdc_verification(run)
    assert dataclasses.replace(run, min_coverage=0.985).verdict == "clean"  # exactly at the threshold
    enough = dataclasses.replace(table, unverified_rows=2)
    assert dataclasses.replace(run, tables=(enough,)).verdict == "clean" and run.tables[0].clean
