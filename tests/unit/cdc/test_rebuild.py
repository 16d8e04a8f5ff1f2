"""Rebuilding a table from change events as of a position: latest version per key, deletes removed."""

from __future__ import annotations

from typing import Any

from cdc.envelope import ChangeEvent, Tombstone
from cdc.position import Position
from cdc.rebuild import fold

AT = Position.binlog_snapshot("bin.000003", 1000, gtid="0-1-20")


def event(op: str, row: dict[str, Any], pos: int, gtid: str | None = None, file: str = "bin.000003") -> ChangeEvent:
    before = row if op == "d" else None
    after = None if op == "d" else row
    position = Position.binlog(file, pos, 0, gtid)
    return ChangeEvent("t", {"id": row["id"]}, op, before, after, position, 0, 0, op == "r", "t", None, ("id", "v"))


def rebuild(events: list[ChangeEvent | Tombstone], earliest: int = 0) -> Any:
    return fold("t", events, AT, lambda row: (row["id"],), earliest_offset=earliest)


def test_the_latest_version_at_or_before_the_position_wins_and_deletes_remove_the_key() -> None:
    table = rebuild([
        event("r", {"id": 1, "v": "a"}, 200), event("r", {"id": 2, "v": "b"}, 200),
        event("u", {"id": 1, "v": "a2"}, 500, "0-1-19"), event("d", {"id": 2, "v": "b"}, 600, "0-1-20"),
        Tombstone("t", {"id": 2}),
        event("c", {"id": 3, "v": "late"}, 1000, "0-1-21"), event("u", {"id": 1, "v": "late"}, 1100, "0-1-22"),
    ])  # fmt: skip
    assert table.rows == {(1,): {"id": 1, "v": "a2"}}
    assert table.changed_keys == {(1,), (2,)} and table.later_keys == {(1,), (3,)}
    extent = table.extent
    assert (extent.first_op, extent.snapshot_reads, extent.resnapshot_at) == ("r", 2, None)
    assert (extent.events_at_or_before, extent.events_after, extent.truncated) == (4, 2, False)


def test_gtids_decide_before_file_positions_and_a_transaction_starting_at_the_position_is_after_it() -> None:
    # The same file/pos as the snapshot, but a GTID the snapshot does not cover: after it.
    table = rebuild([event("c", {"id": 1, "v": "x"}, 999, "0-1-21"), event("c", {"id": 2, "v": "y"}, 1000)])
    assert table.rows == {}


def test_a_snapshot_after_streamed_changes_is_a_resnapshot_and_a_head_cut_by_retention_is_truncated() -> None:
    table = rebuild(
        [event("u", {"id": 1, "v": "a"}, 300, "0-1-5"), event("r", {"id": 1, "v": "b"}, 700),
         event("r", {"id": 4, "v": "c"}, 700)],
        earliest=42,
    )  # fmt: skip
    assert table.extent.first_op == "u" and table.extent.truncated
    assert table.extent.resnapshot_at == Position.binlog("bin.000003", 700)
    assert table.rows == {(1,): {"id": 1, "v": "b"}, (4,): {"id": 4, "v": "c"}}


def test_snapshot_keys_are_those_whose_version_at_the_position_is_a_snapshot_read() -> None:
    table = rebuild([
        event("r", {"id": 1, "v": "a"}, 200), event("r", {"id": 2, "v": "b"}, 200),
        event("r", {"id": 3, "v": "c"}, 200),
        event("u", {"id": 2, "v": "b2"}, 500, "0-1-19"), event("u", {"id": 3, "v": "late"}, 1100, "0-1-22"),
    ])  # fmt: skip
    assert table.snapshot_keys == {(1,), (3,)}


def test_without_key_of_the_record_key_keys_the_versions() -> None:
    events = [event("r", {"id": 1, "v": "a"}, 200), event("u", {"id": 1, "v": "b"}, 500, "0-1-19")]
    table = fold("t", events, AT, None)
    assert table.rows == {(1,): {"id": 1, "v": "b"}}
