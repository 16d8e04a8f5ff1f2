"""Rebuilding a table from change events as of a position, in DuckDB: latest version per key,
deletes removed (records as the JSON converter writes them, folded by `cdc.rebuild`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from cdc.errors import CdcError, EnvelopeError, PositionError
from cdc.position import Position
from cdc.rebuild import LogStore, RebuiltTable, TopicReader, append, fold

AT = Position.binlog_snapshot("bin.000003", 1000, gtid="0-1-20")
KEY_SCHEMA = {"type": "struct", "fields": [{"field": "id", "type": "int32", "optional": False}], "optional": False}
ROW = {"type": "struct", "optional": True, "fields": [
    {"field": "id", "type": "int32", "optional": False},
    {"field": "v", "type": "string", "optional": True}]}  # fmt: skip
VALUE_SCHEMA = {"type": "struct", "fields": [
    {**ROW, "field": "before"}, {**ROW, "field": "after"},
    {"type": "struct", "field": "source", "fields": []}, {"type": "string", "field": "op"}]}  # fmt: skip


def key(id_: int) -> bytes:
    return orjson.dumps({"schema": KEY_SCHEMA, "payload": {"id": id_}})


def event(op: str, row: dict[str, Any], pos: int, gtid: str | None = None, file: str = "bin.000003") -> tuple:
    source = {"file": file, "pos": pos, "row": 0, "gtid": gtid, "snapshot": "true" if op == "r" else "false"}
    payload = {"before": row if op == "d" else None, "after": None if op == "d" else row, "source": source, "op": op}
    return key(row["id"]), orjson.dumps({"schema": VALUE_SCHEMA, "payload": payload})


def tombstone(id_: int) -> tuple:
    return key(id_), None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LogStore]:
    with LogStore(tmp_path) as s:
        yield s


def rebuild(store: LogStore, records: list[tuple], earliest: int = 0, at: Position = AT) -> RebuiltTable:
    name = store.new_table()
    half = len(records) // 2  # two chunks: numbering carries over
    for start, part in ((0, records[:half]), (half, records[half:])):
        if part:
            append(store, name, "t", start, [0] * len(part), list(range(start, start + len(part))),
                   [k for k, _ in part], [v for _, v in part])  # fmt: skip
    return fold(store, name, "t", at, earliest_offset=earliest)


def rows(table: RebuiltTable) -> dict[int, dict[str, Any]]:
    return {image["id"]: image for batch in table.images() for image, _ in batch}


def test_the_latest_version_at_or_before_the_position_wins_and_deletes_remove_the_key(store: LogStore) -> None:
    table = rebuild(store, [
        event("r", {"id": 1, "v": "a"}, 200), event("r", {"id": 2, "v": "b"}, 200),
        event("u", {"id": 1, "v": "a2"}, 500, "0-1-19"), event("d", {"id": 2, "v": "b"}, 600, "0-1-20"),
        tombstone(2),
        event("c", {"id": 3, "v": "late"}, 1000, "0-1-21"), event("u", {"id": 1, "v": "late"}, 1100, "0-1-22"),
    ])  # fmt: skip
    assert rows(table) == {1: {"id": 1, "v": "a2"}} and table.rows == 1
    assert set(table.keys("changed")) == {(1,), (2,)} and set(table.keys("later")) == {(1,), (3,)}
    assert table.columns == ("id", "v")
    extent = table.extent
    assert (extent.first_op, extent.snapshot_reads, extent.resnapshot_at) == ("r", 2, None)
    assert extent.first_position == Position.binlog("bin.000003", 200)
    assert (extent.events_at_or_before, extent.events_after, extent.truncated) == (4, 2, False)


def test_gtids_decide_before_file_positions_and_a_transaction_starting_at_the_position_is_after_it(
    store: LogStore,
) -> None:
    # The same file/pos as the snapshot, but a GTID the snapshot does not cover: after it.
    table = rebuild(store, [event("c", {"id": 1, "v": "x"}, 999, "0-1-21"), event("c", {"id": 2, "v": "y"}, 1000)])
    assert rows(table) == {}
    # A GTID the position covers wins over a file/pos after it; another domain is not covered.
    table = rebuild(
        store, [event("c", {"id": 1, "v": "x"}, 5000, "0-1-20"), event("c", {"id": 2, "v": "y"}, 10, "1-1-1")]
    )
    assert rows(table) == {1: {"id": 1, "v": "x"}}


def test_without_a_gtid_set_at_the_position_file_and_pos_decide(store: LogStore) -> None:
    at = Position.binlog_snapshot("bin.000003", 1000)
    later = event("c", {"id": 2, "v": "y"}, 20, file="bin.000004")
    table = rebuild(store, [event("c", {"id": 1, "v": "x"}, 999, "0-1-21"), later], at=at)
    assert rows(table) == {1: {"id": 1, "v": "x"}}


def test_a_snapshot_after_streamed_changes_is_a_resnapshot_and_a_head_cut_by_retention_is_truncated(
    store: LogStore,
) -> None:
    table = rebuild(
        store,
        [event("u", {"id": 1, "v": "a"}, 300, "0-1-5"), event("r", {"id": 1, "v": "b"}, 700),
         event("r", {"id": 4, "v": "c"}, 700)],
        earliest=42,
    )  # fmt: skip
    assert table.extent.first_op == "u" and table.extent.truncated
    assert table.extent.resnapshot_at == Position.binlog("bin.000003", 700)
    assert rows(table) == {1: {"id": 1, "v": "b"}, 4: {"id": 4, "v": "c"}}


def test_each_row_says_whether_its_version_at_the_position_is_a_snapshot_read(store: LogStore) -> None:
    table = rebuild(store, [
        event("r", {"id": 1, "v": "a"}, 200), event("r", {"id": 2, "v": "b"}, 200),
        event("r", {"id": 3, "v": "c"}, 200),
        event("u", {"id": 2, "v": "b2"}, 500, "0-1-19"), event("u", {"id": 3, "v": "late"}, 1100, "0-1-22"),
    ])  # fmt: skip
    assert {image["id"] for batch in table.images() for image, snap in batch if snap} == {1, 3}


def test_the_store_keeps_its_database_and_spill_under_the_work_dir_and_removes_them(tmp_path: Path) -> None:
    with LogStore(tmp_path) as store:
        assert store.dir.parent == tmp_path and (store.dir / "log.duckdb").exists()
        table = rebuild(store, [event("r", {"id": 1, "v": "a"}, 200)])
        assert rows(table) == {1: {"id": 1, "v": "a"}}
    assert not store.dir.exists()


def test_poison_records_raise_the_decoders_error_and_keyless_events_are_refused(store: LogStore) -> None:
    with pytest.raises(EnvelopeError, match="unknown op"):
        rebuild(store, [(key(1), orjson.dumps({"schema": VALUE_SCHEMA, "payload": {"op": "x", "source": {}}}))])
    with pytest.raises(CdcError, match="not JSON"):
        rebuild(store, [(key(1), b"{not json")])
    keyless = (None, event("c", {"id": 1, "v": "x"}, 10)[1])
    with pytest.raises(CdcError, match="without a record key"):
        rebuild(store, [keyless])


def test_a_row_image_that_is_a_json_string_is_explained_in_one_line(store: LogStore) -> None:
    source = {"file": "bin.000003", "pos": 10, "row": 0, "snapshot": "false"}
    payload = {"before": None, "after": '{"id": 1, "v": "x"}', "source": source, "op": "c"}
    with pytest.raises(CdcError) as raised:
        rebuild(store, [(key(1), orjson.dumps({"schema": VALUE_SCHEMA, "payload": payload}))])
    assert "\n" not in str(raised.value)


def test_a_quote_in_the_work_dir_is_fine_and_a_store_that_cannot_start_leaves_nothing(tmp_path: Path) -> None:
    odd = tmp_path / "it's here"
    with LogStore(odd) as s:
        assert str(s.con.execute("SELECT current_setting('temp_directory')").fetchone()[0]).startswith(str(odd))
    assert list(odd.iterdir()) == []
    with pytest.raises(duckdb.Error):
        LogStore(tmp_path / "bad", memory_limit="lots")
    assert list((tmp_path / "bad").iterdir()) == []


def test_a_position_without_binlog_coordinates_is_refused_before_the_topic_is_read(store: LogStore) -> None:
    reader = TopicReader("127.0.0.1:1", timeout=0.1)  # nothing there: reading would fail otherwise
    with pytest.raises(PositionError, match="needs binlog positions"):
        reader.rebuild("t", Position.lsn(5), store)
