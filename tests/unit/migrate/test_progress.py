""" "Stream behind" says how far only when someone knows: never "by 0 events" (issue 13 trial)."""

from __future__ import annotations

from cdc.position import Position
from cdc.progress import GroupProgress, PartitionProgress
from migrate.progress import StreamProgress

TARGET = Position.binlog_snapshot("mysql-bin.000003", 1234)


def behind(lag: int | None, seconds: float | None = None) -> str:
    return StreamProgress(False, TARGET, None, lag, seconds, "running").describe()


def test_a_job_with_nothing_left_in_kafka_says_debezium_has_not_published_never_by_0_events() -> None:
    text = behind(0, 2.0)
    assert "by 0" not in text
    assert "the job has consumed every change in Kafka; Debezium has not published the rest yet" in text


def test_a_real_count_is_shown_with_its_age() -> None:
    assert f"stream behind the batch position {TARGET} by 1,200 event(s) / 3.5 s (job running" in behind(1200, 3.5)
    assert "by 4.0 s (job running" in behind(None, 4.0)


def test_a_group_without_partitions_shows_no_count() -> None:
    empty = GroupProgress("g", TARGET, (), ())
    assert not empty.reached and empty.lag == 0 and "by 0" not in empty.describe()
    waiting = GroupProgress("g", TARGET, (PartitionProgress("t", 0, 10, 4, 12), PartitionProgress("t", 1, 3, 3, 3)), ())
    assert f"stream behind the batch position {TARGET} by 6 event(s): group 'g' at t[0] lag 6" in waiting.describe()
