"""Decoding recorded Debezium MariaDB envelopes (tests/fixtures/debezium, from record.py)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cdc.envelope import ChangeEvent, Tombstone, as_decimal, decode
from cdc.errors import EnvelopeError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "debezium"


def load(name: str) -> ChangeEvent | Tombstone:
    record = json.loads((FIXTURES / f"{name}.json").read_text())
    return decode(record["topic"], record["key"], record["value"])


def event(name: str) -> ChangeEvent:
    result = load(name)
    assert isinstance(result, ChangeEvent)
    return result


@pytest.mark.parametrize("mode", ["precise", "string"])
def test_snapshot_read_decodes_every_type(mode: str) -> None:
    e = event(f"mariadb_{mode}_snapshot_read")
    assert (e.op, e.snapshot, e.before, e.key) == ("r", True, None, {"id": 1})
    row = e.after
    assert row is not None
    # precise mode yields Decimal directly; string mode yields the exact text, read by as_decimal.
    assert as_decimal(row["amount"]) == Decimal("129.99")
    assert as_decimal(row["big"]) == Decimal("-12345678901234567890.0123456789")
    assert str(as_decimal(row["big"])) == "-12345678901234567890.0123456789"  # no 28-digit rounding
    assert row["day"] == date(2024, 2, 29)
    assert row["at_ms"] == datetime(2024, 2, 29, 23, 59, 59, 123000)
    assert row["at_us"] == datetime(1969, 12, 31, 23, 59, 59, 999999)  # before the epoch
    assert row["stamp"] == datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
    assert row["clock"] == time(13, 45, 10, 250000)
    assert row["yr"] == 2024
    assert row["blob_col"] == b"\x00\xff\x10"
    assert json.loads(row["doc"]) == {"a": 1}
    assert row["state"] == "NEW"
    assert row["ratio"] == 0.1
    assert e.columns[:3] == ("id", "amount", "big")


def test_precise_mode_gives_decimal_objects() -> None:
    row = event("mariadb_precise_snapshot_read").after
    assert row is not None
    assert isinstance(row["amount"], Decimal) and row["amount"].as_tuple().exponent == -2


def test_insert_update_delete_carry_before_and_after() -> None:
    ins, upd, dele = (event(f"mariadb_precise_{n}") for n in ("insert", "update", "delete"))
    assert (ins.op, ins.before) == ("c", None)
    assert ins.after is not None and ins.after["amount"] == Decimal("0.01")
    assert upd.op == "u" and upd.before is not None and upd.after is not None
    assert (upd.before["amount"], upd.after["amount"]) == (Decimal("0.01"), Decimal("200.10"))
    assert (upd.before["label"], upd.after["label"]) == ("insert", "update")
    assert dele.op == "d" and dele.after is None and dele.row is None
    assert dele.before is not None and dele.before["amount"] == Decimal("200.10")
    assert ins.position < upd.position < dele.position
    assert all(e.transaction_id and e.position.gtid == e.transaction_id for e in (ins, upd, dele))
    assert not ins.snapshot


def test_snapshot_rows_sit_before_streamed_changes() -> None:
    assert event("mariadb_precise_snapshot_read").position < event("mariadb_precise_insert").position


def test_tombstone_follows_delete() -> None:
    tomb = load("mariadb_precise_tombstone")
    assert isinstance(tomb, Tombstone) and tomb.key == {"id": 2}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"not json", "not JSON"),
        (b'{"hello": 1}', "not a Debezium change event"),
        (b'{"op": "x", "source": {}}', "unknown op"),
        (b'{"op": "c", "source": {"file": "mysql-bin.000001", "pos": 4}, "after": null}', "lacks its after"),
        (b'{"op": "c", "source": {}, "after": {"id": 1}}', "neither file/pos nor lsn"),
    ],
)
def test_poison_records_raise_envelope_error(value: bytes, problem: str) -> None:
    with pytest.raises(EnvelopeError, match=problem):
        decode("t", b'{"id": 1}', value)


def test_as_decimal_encodings() -> None:
    assert as_decimal("AxI=", scale=2) == Decimal("7.86")
    assert as_decimal(b"\xff", scale=1) == Decimal("-0.1")
    assert as_decimal(12345, scale=3) == Decimal("12.345")
    assert as_decimal(None) is None
    with pytest.raises(EnvelopeError, match="float"):
        as_decimal(1.5)
    with pytest.raises(EnvelopeError, match="without a scale"):
        as_decimal(b"\x01")
    with pytest.raises(EnvelopeError, match="not a decimal"):
        as_decimal("12,5")


def test_mysql_time_beyond_a_day_is_a_timedelta() -> None:
    from cdc.envelope import decode_value

    assert decode_value(90_000_000_000, {"name": "io.debezium.time.MicroTime"}) == timedelta(hours=25)


def test_variable_scale_decimal() -> None:
    from cdc.envelope import decode_value

    value = {"scale": 3, "value": "MDk="}  # 12345 -> 12.345
    assert decode_value(value, {"name": "io.debezium.data.VariableScaleDecimal"}) == Decimal("12.345")


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("mariadb_*.json")))
def test_the_cached_schema_path_decodes_exactly_like_the_general_one(name: str) -> None:
    record = json.loads((FIXTURES / f"{name}.json").read_text())
    value = record["value"]
    fast = decode(record["topic"], record["key"], value.encode() if value is not None else None)
    general = decode(record["topic"], record["key"], value)  # str input takes the general path
    assert fast == general
