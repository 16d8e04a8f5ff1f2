"""The output fence's verdict (the Kafka steps are shown by the Kafka Streams integration test)."""

from __future__ import annotations

import pytest

from cdc.fence import OutputFence


def test_the_output_fence_waits_for_every_partitions_last_stable_offset() -> None:
    ends = {("out", 0): 10, ("out", 1): 4}
    open_ = OutputFence(ends, {("out", 0): 10, ("out", 1): 3})
    assert not open_.reached and "out[1] stable 3 < 4" in open_.describe()
    assert OutputFence(ends, {("out", 0): 12, ("out", 1): 4}).reached


def test_end_offsets_where_no_broker_answers_name_the_servers_and_what_to_do() -> None:
    import socket

    from cdc.errors import KafkaUnreachable
    from cdc.fence import partition_ends

    with socket.socket() as sock:  # a port free now: bound, then released
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(KafkaUnreachable) as caught:
        partition_ends(f"127.0.0.1:{port}", ["orders-fence-unreachable"], timeout=2)
    text = str(caught.value)
    assert text.startswith(
        f"reading the end offsets of orders-fence-unreachable: Kafka is not reachable at 127.0.0.1:{port} ("
    )
    assert text.endswith("); start the broker or correct kafka.bootstrap_servers") and "\n" not in text
