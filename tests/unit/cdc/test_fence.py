"""The output fence's verdict (the Kafka steps are shown by the Kafka Streams integration test)."""

from __future__ import annotations

from cdc.fence import OutputFence


def test_the_output_fence_waits_for_every_partitions_last_stable_offset() -> None:
    ends = {("out", 0): 10, ("out", 1): 4}
    open_ = OutputFence(ends, {("out", 0): 10, ("out", 1): 3})
    assert not open_.reached and "out[1] stable 3 < 4" in open_.describe()
    assert OutputFence(ends, {("out", 0): 12, ("out", 1): 4}).reached
