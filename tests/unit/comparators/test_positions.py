from __future__ import annotations

import pytest

from comparators.errors import PositionError
from comparators.positions import (
    BinlogPosition,
    Gtid,
    GtidSet,
    Lsn,
    PosOrder,
    binlog_order,
    lsn_order,
    parse_position,
)


def test_binlog_orders_by_file_number_then_offset_not_as_strings() -> None:
    positions = ["bin.1000000:1", "bin.999999:999999", "bin.999999:10", "bin.000010:4"]
    ordered = sorted(positions, key=lambda p: BinlogPosition.parse(p).order)
    assert ordered == ["bin.000010:4", "bin.999999:10", "bin.999999:999999", "bin.1000000:1"]
    assert sorted(positions) != ordered  # the string order is wrong, which is the point


def test_lsn_orders_numerically() -> None:
    assert Lsn.parse("9/FFFFFFFF").order < Lsn.parse("10/0").order
    assert Lsn.parse("16/B374D848").order == 0x16B374D848
    assert str(Lsn.parse("16/B374D848")) == "16/B374D848"
    assert lsn_order("16/B374D848") == lsn_order(str(0x16B374D848))


def test_gtid_set_covers_per_domain() -> None:
    pos = GtidSet.parse("1-2-7, 0-1-100")
    assert str(pos) == "0-1-100,1-2-7"
    assert pos.covers(Gtid.parse("0-9-100"))  # the server id does not order
    assert pos.covers(Gtid.parse("0-1-99"))
    assert not pos.covers(Gtid.parse("0-1-101"))
    assert not pos.covers(Gtid.parse("2-1-1"))  # a domain the position never saw


@pytest.mark.parametrize(
    ("text", "kind"),
    [("0-1-42", GtidSet), ("0-1-42,1-1-3", GtidSet), ("mysql-bin.000003:1234", BinlogPosition),
     ("16/B374D848", Lsn), ("123", PosOrder)],
)  # fmt: skip
def test_parse_position_recognises_forms(text: str, kind: type) -> None:
    assert isinstance(parse_position(text), kind)


@pytest.mark.parametrize("text", ["", "abc", "0-1", "0-1-2,0-1-3", "bin:12", "1/2/3", "-5"])
def test_bad_positions_raise_position_error(text: str) -> None:
    with pytest.raises(PositionError):
        parse_position(text)


def test_binlog_order_needs_a_sequence_number() -> None:
    assert binlog_order("mysql-bin.000003", 1234) == 3 * 2**40 + 1234
    assert binlog_order("b.8388607", 2**40 - 1) < 2**63
    with pytest.raises(PositionError):
        binlog_order("b.000001", 2**40)
    with pytest.raises(PositionError):
        binlog_order("mysql-bin", 4)


def test_a_postgresql_cut_shows_as_its_lsn_not_its_order_number() -> None:
    """A report's `changelog ... as of` names a PostgreSQL position in the one LSN form."""
    from comparators.changelog import ChangelogSource
    from comparators.positions import PosOrder
    from comparators.sources import ParquetSource

    cut = PosOrder(0x16B3748, shown="lsn 0/016B3748")
    assert str(cut) == "lsn 0/016B3748" and cut == PosOrder(0x16B3748) and cut.order == 0x16B3748
    assert ChangelogSource(ParquetSource("log.parquet"), cut).label.endswith(" as of lsn 0/016B3748")
