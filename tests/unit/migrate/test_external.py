"""The stream side of a user's own job, without Kafka: versions compared in the order the job wrote them."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from comparators import ChangelogSource, FrameSource
from migrate.external import InWriteOrder

# A join took a customer change (pos 130) before an order change MariaDB committed earlier (pos 120): the
# version at 130 lacks the order change (a state that never existed), the one written after it has both.
LOG = pa.table({
    "order_id": [1, 1, 1],
    "amount": ["10.00", "10.00", "12.00"],
    "customer_name": ["Ada", "Ada L.", "Ada L."],
    "__op": ["u", "u", "u"],
    "__pos_file": ["bin.000001"] * 3,
    "__pos_offset": [100, 130, 120],
    "__pos_order": [100, 130, 120],
    "__kafka_partition": [0, 0, 0],
    "__kafka_offset": [0, 1, 2],
    "__processed_at": pa.array([1, 2, 3], pa.int64()).cast(pa.timestamp("us")),
})  # fmt: skip


def as_of(position: int, ordered: bool) -> list[tuple[object, ...]]:
    log = FrameSource(LOG, name="tap")
    source = ChangelogSource(InWriteOrder(log) if ordered else log, position)
    with duckdb.connect() as con:
        source.register(con, "stream", ["order_id"])
        return con.sql("SELECT amount, customer_name FROM stream").fetchall()


def test_the_last_version_written_before_the_first_past_the_position_is_the_state_there() -> None:
    assert as_of(140, ordered=True) == [("12.00", "Ada L.")]
    # By raw position alone the version at 130 wins, and it never existed in the database.
    assert as_of(140, ordered=False) == [("10.00", "Ada L.")]
    assert as_of(110, ordered=True) == [("10.00", "Ada")]
    # Between 120 and 130 no version is right: that key is in flight (migrate.stream.tap.reordered_keys_around).


def test_versions_written_in_position_order_are_unchanged() -> None:
    monotone = LOG.slice(0, 2)
    with duckdb.connect() as con:
        ChangelogSource(InWriteOrder(FrameSource(monotone, name="tap")), 200).register(con, "s", ["order_id"])
        assert con.sql("SELECT amount, customer_name FROM s").fetchall() == [("10.00", "Ada L.")]
