"""PostgreSQL snapshot visibility and the stream cut (cdc.visibility)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cdc.errors import PositionError
from cdc.visibility import PgSnapshot, commit_of, lookback_commits, stream_cut, widen

EPOCH = 1 << 32


@pytest.mark.parametrize(
    ("txid", "reference", "xid8"),
    [
        (737, 740, 737),
        (5, 3 * EPOCH + 10, 3 * EPOCH + 5),  # same epoch
        (EPOCH - 3, 3 * EPOCH + 10, 2 * EPOCH + EPOCH - 3),  # just before the epoch turned
        (4, 3 * EPOCH - 2, 3 * EPOCH + 4),  # just after it (a younger transaction than the reference)
    ],
)
def test_widen_puts_the_epoch_back(txid: int, reference: int, xid8: int) -> None:
    assert widen(txid, reference) == xid8


def test_visibility_is_postgresqls_rule_across_an_epoch() -> None:
    snapshot = PgSnapshot.parse(f"{EPOCH - 2}:{EPOCH + 3}:{EPOCH - 1},{EPOCH + 1}", lsn_after=100)
    assert [snapshot.visible_txid(t) for t in (EPOCH - 3, EPOCH - 2, EPOCH - 1, 0, 1, 2, 3)] == [
        True, True, False, True, False, True, False,
    ]  # fmt: skip


def test_a_malformed_or_inconsistent_snapshot_is_refused() -> None:
    with pytest.raises(PositionError, match="not a PostgreSQL snapshot"):
        PgSnapshot.parse("10-12")
    with pytest.raises(PositionError, match="inconsistent"):
        PgSnapshot.parse("10:12:13")


def test_the_cut_ends_before_the_first_invisible_commit_even_if_its_xid_is_older() -> None:
    snapshot = PgSnapshot.parse("10:13:10", lsn_after=500)
    # 10 was open across the snapshot and commits after 11 and 12 (which it cannot see).
    cut = stream_cut(snapshot, [(8, 100), (11, 200), (12, 300), (10, 520), (13, 600)])
    assert cut.exact and cut.bound == 299 and cut.last_visible == (12, 300) and cut.first_invisible == (10, 520)


def test_a_cut_is_incomplete_until_the_stream_or_debezium_passed_the_snapshots_wal_position() -> None:
    snapshot = PgSnapshot.parse("10:12:", lsn_after=500)
    commits = [(10, 200), (11, 300)]
    assert not stream_cut(snapshot, commits).complete
    assert stream_cut(snapshot, commits, passed_lsn=500).exact
    assert stream_cut(snapshot, commits, passed_lsn=500).bound == 299


def test_a_visible_transaction_after_an_invisible_one_is_stray_never_exact() -> None:
    snapshot = PgSnapshot.parse("10:13:11", lsn_after=500)
    cut = stream_cut(snapshot, [(10, 200), (11, 300), (12, 400), (13, 600)])
    assert cut.stray == ((12, 400),) and not cut.exact and cut.bound == 199


def test_a_visible_transaction_at_the_snapshots_wal_position_after_an_invisible_one_is_stray() -> None:
    snapshot = PgSnapshot.parse("10:13:11", lsn_after=500)
    cut = stream_cut(snapshot, [(10, 200), (11, 300), (12, 500), (13, 600)])
    assert cut.stray == ((12, 500),) and not cut.exact


Commits = list[tuple[int, int]]


def _reader(whole: Commits, window: Commits, calls: list[int | None]) -> Callable[[int | None], Commits]:
    def read(since_ms: int | None) -> list[tuple[int, int]]:
        calls.append(since_ms)
        return whole if since_ms is None else window

    return read


def test_a_quiet_lookback_window_reads_the_whole_transaction_topic() -> None:
    snapshot = PgSnapshot.parse("10:10:", lsn_after=500)
    whole, calls = [(8, 100), (9, 200)], list[int | None]()
    commits = lookback_commits(snapshot, 1_000, _reader(whole, [], calls))
    assert commits == whole and calls == [1_000, None]
    assert stream_cut(snapshot, commits, passed_lsn=500).bound == 199


def test_a_window_starting_visible_is_read_once_and_an_invisible_start_reads_everything() -> None:
    snapshot = PgSnapshot.parse("10:12:", lsn_after=500)
    calls: list[int | None] = []
    assert lookback_commits(snapshot, 7, _reader([(1, 50)], [(9, 200)], calls)) == [(9, 200)] and calls == [7]
    calls.clear()
    assert lookback_commits(snapshot, 7, _reader([(1, 50)], [(12, 600)], calls)) == [(1, 50)] and calls == [7, None]


def test_nothing_visible_streamed_cuts_after_the_connectors_snapshot_reads_only() -> None:
    from cdc.position import Position

    assert stream_cut(PgSnapshot.parse("10:10:", lsn_after=50), [(10, 60)]).bound == 0
    read = Position.from_source({"lsn": 40, "sequence": '[null,"40"]', "snapshot": "true"})
    first = Position.from_source({"lsn": 45, "sequence": '[null,"45"]', "snapshot": "false"})
    assert read.order_value == 0 < first.order_value == 1


def test_commit_of_reads_end_records_only() -> None:
    assert commit_of(b'{"payload": {"status": "END", "id": "5:77"}}') == (5, 77)
    assert commit_of(b'{"status": "BEGIN", "id": "5:70"}') is None and commit_of(None) is None
    with pytest.raises(PositionError, match="txId:lsn"):
        commit_of(b'{"status": "END", "id": "0-1-42"}')
