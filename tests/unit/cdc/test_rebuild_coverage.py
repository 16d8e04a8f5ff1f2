"""The SQL coverage rule of `cdc.rebuild` ("this event is part of the source as of the position")
against the Python rule it replaced (`covers`, kept here as the reference), on generated events."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from cdc.errors import CdcError
from cdc.position import Position, parse_gtid_set
from cdc.rebuild import _covered_sql

U64 = (1 << 64) - 1


def covers(at: Position, pos: Position, snapshot: bool) -> bool:
    """The reference: the rule as `cdc.rebuild.covers` had it in Python before the DuckDB fold."""
    if snapshot:
        return (pos.major, pos.minor) <= (at.major, at.minor)
    if pos.gtid and at.gtid:
        try:
            event_gtid = parse_gtid_set(pos.gtid)
            done = parse_gtid_set(at.gtid)
        except CdcError:
            pass  # a MySQL uuid:n GTID: order by file/pos
        else:
            return all(done.get(domain, -1) >= seq for domain, seq in event_gtid.items())
    return (pos.major, pos.minor) < (at.major, at.minor)


def sql_covers(at: Position, pos: Position, snapshot: bool) -> bool:
    con = duckdb.connect()
    try:
        row = con.execute(
            f"SELECT {_covered_sql(at)} FROM (SELECT ?::BIGINT AS seq, ?::BIGINT AS pos, ?::BOOLEAN AS snap, "
            "?::VARCHAR AS gtid)",
            [pos.major, pos.minor, snapshot, pos.gtid],
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return bool(row[0])


domains = st.integers(0, 3)
seqs = st.one_of(st.integers(0, 40), st.integers((1 << 63) - 2, U64), st.just(U64))
mariadb_part = st.builds(lambda d, s, n: f"{d}-{s}-{n}", domains, st.integers(0, 4294967295), seqs)
mariadb_set = st.lists(mariadb_part, max_size=4).map(", ".join)
mysql_gtid = st.builds(lambda n: f"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-{n}", st.integers(1, 40))
gtids = st.one_of(st.none(), st.just(""), st.just(","), mariadb_set, mysql_gtid)
files = st.integers(1, 3).map(lambda n: f"bin.{n:06d}")
offsets = st.integers(0, 600)


@settings(max_examples=400, deadline=None)
@given(files, offsets, gtids, files, offsets, gtids, st.booleans())
def test_the_sql_rule_agrees_with_the_python_rule(
    at_file: str, at_pos: int, at_gtid: str | None, file: str, pos: int, gtid: str | None, snapshot: bool
) -> None:
    at = Position.binlog_snapshot(at_file, at_pos, gtid=at_gtid)
    event = Position.binlog(file, pos, 0, gtid)
    assert sql_covers(at, event, snapshot) == covers(at, event, snapshot)


def test_the_edges_the_generator_must_not_miss() -> None:
    at = Position.binlog_snapshot("bin.000002", 500, gtid="0-1-7,1-1-" + str(U64 - 1))
    cases = [
        (Position.binlog("bin.000002", 500, 0, None), True),  # snapshot read exactly at P
        (Position.binlog("bin.000002", 400, 0, f"1-1-{U64}"), False),  # seq_no beyond BIGINT, not done
        (Position.binlog("bin.000002", 400, 0, f"1-1-{U64 - 1}"), True),
        (Position.binlog("bin.000002", 400, 0, "0-1-7,2-1-1"), False),  # a domain the position lacks
        (Position.binlog("bin.000002", 400, 0, "3e11fa47-71ca-11e1-9e33-c80aa9429562:5"), True),  # file/pos
        (Position.binlog("bin.000002", 500, 0, "3e11fa47-71ca-11e1-9e33-c80aa9429562:5"), False),
    ]
    for i, (event, expected) in enumerate(cases):
        snapshot = i == 0
        assert covers(at, event, snapshot) is expected
        assert sql_covers(at, event, snapshot) is expected
    empty = Position.binlog_snapshot("bin.000002", 500, gtid="0-1-0")
    assert sql_covers(empty, Position.binlog("bin.000001", 1, 0, "0-1-1"), False) is False
