"""The offset fence's pure part in migrate: an output as its job last wrote it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from migrate.fence import current_rows, unexplained_keys
from tests.unit.migrate.stream.test_tap import _write


def test_current_rows_are_the_last_record_per_key_in_write_order_tombstones_removed(tmp_path: Path) -> None:
    rows = [
        (b"1", b'{"v": 1}', None, 0, 0), (b"2", b'{"v": 5}', None, 0, 1), (b"1", b'{"v": 2}', None, 0, 2),
        (b"2", None, None, 0, 3), (b"3", b'{"v": 7}', None, 1, 0),
    ]  # fmt: skip
    root = _write(tmp_path, rows, ["id"])
    current = current_rows(root, ["id"], pa.schema([("id", pa.int64()), ("v", pa.int64())]))
    assert sorted(current.to_pylist(), key=lambda r: r["id"]) == [{"id": 1, "v": 2}, {"id": 3, "v": 7}]
    assert all(not name.startswith("__") for name in current.column_names)


def test_current_rows_of_a_tap_never_read_are_empty_and_shaped_like_the_batch(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.int64())])
    assert current_rows(tmp_path, ["id"], schema).schema == schema


def test_keys_written_past_the_output_fence_must_be_in_flight(tmp_path: Path) -> None:
    rows = [(b"1", b'{"v": 1}', None, 0, 4), (b"2", b'{"v": 2}', None, 0, 5), (b"3", b'{"v": 3}', None, 1, 2),
            (b"4", b'{"v": 4}', None, 1, 3)]  # fmt: skip
    root = _write(tmp_path, rows, ["id"])
    flying = pa.table({"id": pa.array([2], pa.int64())})
    # Output fence at offset 5 on partition 0 and 3 on partition 1: keys 2 and 4 were written past it.
    assert unexplained_keys(root, ["id"], {0: 5, 1: 3}, flying).to_pylist() == [{"id": 4}]
    assert unexplained_keys(root, ["id"], {0: 5, 1: 4}, flying).num_rows == 0
    assert unexplained_keys(root, ["id"], {}, flying).num_rows == 0
