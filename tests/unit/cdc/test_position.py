from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.errors import PositionError
from cdc.position import Position, format_lsn, parse_gtid_set, parse_lsn
from comparators.positions import binlog_order


def test_binlog_positions_order_by_file_number_then_offset() -> None:
    assert Position.binlog("mysql-bin.000009", 99_999) < Position.binlog("mysql-bin.000010", 4)
    assert Position.binlog("b.9", 5) < Position.binlog("b.10", 4)  # '9' > '10' as text
    assert Position.binlog("b.1", 5, row=0) < Position.binlog("b.1", 5, row=1)


def test_snapshot_bound_covers_rows_at_its_offset() -> None:
    bound = Position.binlog_snapshot("mysql-bin.000002", 2853)
    assert Position.binlog("mysql-bin.000002", 2853, row=7) <= bound
    assert Position.binlog("mysql-bin.000002", 2854) > bound


def test_lsn_parsing_and_order() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    assert Position.lsn("9/0") < Position.lsn("10/0")
    with pytest.raises(PositionError):
        parse_lsn("16-B374D848")


def test_a_postgresql_cut_target_sorts_after_its_last_transaction_and_before_the_next() -> None:
    """A change's order is (previous commit LSN, change LSN): the last visible transaction's changes
    sit after the bound's own LSN, so `Position.lsn(bound)` put them past the batch."""
    bound = parse_lsn("0/5000")
    last = Position.from_source({"lsn": 0x5010, "sequence": '["20480", "20496"]'})
    later = Position.from_source({"lsn": 0x5008, "sequence": '["20528", "20488"]'})  # interleaved: lower LSN
    target = Position.lsn_cut(bound)
    assert last > Position.lsn(bound)  # the mistake
    assert last <= target < later and target.order_value == bound == last.order_value


def test_gtid_sets() -> None:
    assert parse_gtid_set("0-1-42,1-2-7") == {0: 42, 1: 7}
    assert parse_gtid_set("") == {}
    with pytest.raises(PositionError, match="not a MariaDB GTID"):
        parse_gtid_set("0-1")


def test_kinds_do_not_mix() -> None:
    with pytest.raises(PositionError, match="cannot order"):
        _ = Position.binlog("b.1", 4) < Position.lsn("0/1")


def test_bad_binlog_file_name() -> None:
    with pytest.raises(PositionError, match="does not end"):
        Position.binlog("mysql-bin", 4)


@given(st.integers(1, 2**23 - 1), st.integers(0, 2**40 - 1), st.integers(1, 2**23 - 1), st.integers(0, 2**40 - 1))
def test_order_value_agrees_with_comparators_and_sort_key(s1: int, p1: int, s2: int, p2: int) -> None:
    a = Position.binlog(f"mysql-bin.{s1:06d}", p1)
    b = Position.binlog(f"mysql-bin.{s2:06d}", p2)
    # The integer the streaming job stores must be the one the comparators filter on.
    assert a.order_value == binlog_order(a.file or "", p1)
    assert (a.order_value < b.order_value) == (a < b)
    assert a.order_value < 2**63


def test_postgres_events_order_by_the_previous_commit_then_their_own_lsn() -> None:
    # Two interleaved transactions as pgoutput delivers them: B (committed first, wrote at LSN 200)
    # then A (wrote at 100 and 300, committed at 400). B's commit LSN is 250.
    b = Position.from_source({"lsn": 200, "sequence": '[null,"200"]', "txId": 8})
    a1 = Position.from_source({"lsn": 100, "sequence": '["250","100"]', "txId": 7})
    a2 = Position.from_source({"lsn": 300, "sequence": '["250","300"]', "txId": 7})
    assert b < a1 < a2
    assert Position.from_source({"lsn": 42}) == Position.lsn(42, 42)  # no sequence: the change LSN alone


def test_a_malformed_postgres_sequence_is_a_position_error() -> None:
    with pytest.raises(PositionError, match="lastCommitLsn"):
        Position.from_source({"lsn": 1, "sequence": "not json"})


def test_the_fast_constructor_matches_the_dataclass() -> None:
    fast = Position.binlog("mysql-bin.000007", 1234, 2, "0-1-9")
    slow = Position("binlog", 7, 1234, 2, "mysql-bin.000007", "0-1-9")
    assert fast == slow and hash(fast) == hash(slow) and fast.order_value == slow.order_value
    assert repr(fast) == repr(slow)


def test_from_dict_inverts_to_dict() -> None:
    for position in (Position.binlog("mysql-bin.000007", 1234, 2, "0-1-9"), Position.lsn("0/16B3748", "0/16B3750")):
        again = Position.from_dict(position.to_dict())
        assert again == position and again.order_value == position.order_value and str(again) == str(position)


def test_every_lsn_renders_in_one_form_postgresql_s_own() -> None:
    """Issue 13 trial: LSNs showed as `0/16B3748` in one place and other forms elsewhere. One form,
    `%X/%08X`, for positions, the changelog, comparators and a snapshot's evidence; stored runs with
    integer LSNs still load."""
    from cdc.visibility import PgSnapshot
    from comparators.positions import Lsn
    from migrate.batch import _lsn

    value = parse_lsn("0/16B3748")
    assert format_lsn(value) == str(Lsn.parse("0/16B3748")) == "0/016B3748"
    assert str(Position.lsn("0/16B3748")) == "lsn 0/016B3748"
    assert Position.lsn("0/16B3748").to_dict()["commit_lsn"] == "0/016B3748"
    shown = PgSnapshot.parse("100:105:", value, value + 8).to_dict()
    assert (shown["lsn_before"], shown["lsn_after"]) == ("0/016B3748", "0/016B3750")
    assert _lsn(shown["lsn_after"]) == _lsn(value + 8) == value + 8 and _lsn(None) is None
