"""The DuckDB fold decodes a row exactly as decoding its change event does (`cdc.envelope.decode`):
random rows of every Debezium encoding, through JSON records, both ways, value for value and type
for type (Decimal digits and scale, naive/zoned datetimes, dates before 1970, NULLs)."""

from __future__ import annotations

import base64
import json
import tempfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from cdc.envelope import ChangeEvent, decode
from cdc.position import Position
from cdc.rebuild import LogStore, append, fold

FIXTURES = Path(__file__).parents[2] / "fixtures" / "debezium"
AT = Position.binlog_snapshot("bin.000009", 1 << 30)


def _decimal_bytes(unscaled: int) -> str:
    size = max(1, (unscaled.bit_length() + 8) // 8)  # two's complement, big-endian, with its sign bit
    return base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode()


def _field(name: str, kind: str, logical: str | None = None, **parameters: str) -> dict[str, Any]:
    field: dict[str, Any] = {"field": name, "type": kind, "optional": True}
    if logical:
        field["name"] = logical
    if parameters:
        field["parameters"] = parameters
    return field


SCALE = 10
FIELDS = [
    _field("id", "int64"),
    _field("amount", "bytes", "org.apache.kafka.connect.data.Decimal", scale=str(SCALE)),
    _field("money0", "bytes", "org.apache.kafka.connect.data.Decimal", scale="0"),
    _field("text_dec", "string"),
    _field("ratio", "double"),
    _field("day", "int32", "io.debezium.time.Date"),
    _field("at_us", "int64", "io.debezium.time.MicroTimestamp"),
    _field("at_ms", "int64", "io.debezium.time.Timestamp"),
    _field("stamp", "string", "io.debezium.time.ZonedTimestamp"),
    _field("clock", "int64", "io.debezium.time.MicroTime"),
    _field("clock_ms", "int32", "io.debezium.time.Time"),
    _field("note", "string"),
]
ROW = {"type": "struct", "optional": True, "fields": FIELDS}
SCHEMA = {"type": "struct", "fields": [{**ROW, "field": "before"}, {**ROW, "field": "after"},
                                       {"type": "struct", "field": "source", "fields": []},
                                       {"type": "string", "field": "op"}]}  # fmt: skip
KEY = {"type": "struct", "fields": [_field("id", "int64")]}

unscaled = st.integers(min_value=-(10**65) + 1, max_value=10**65 - 1)  # DECIMAL(65, s): MariaDB's widest
TIME_MAX = 3_020_399_000_000  # MariaDB TIME: +-838:59:59
micros = st.integers(min_value=-62_135_596_800_000_000 + 86_400_000_000, max_value=253_402_300_799_999_999)
zoned = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
    lambda d: d.isoformat(timespec="microseconds") + "Z"
)
row = st.fixed_dictionaries({
    "amount": st.none() | unscaled.map(_decimal_bytes), "money0": st.none() | unscaled.map(_decimal_bytes),
    "text_dec": st.none() | st.decimals(allow_nan=False, allow_infinity=False).map(str),
    "ratio": st.none() | st.floats(allow_nan=False, allow_infinity=False),
    "day": st.none() | st.integers(min_value=-719_162, max_value=2_932_896),
    "at_us": st.none() | micros, "at_ms": st.none() | micros.map(lambda m: m // 1000),
    "stamp": st.none() | zoned, "clock": st.none() | st.integers(min_value=-(TIME_MAX), max_value=TIME_MAX),
    "clock_ms": st.none() | st.integers(min_value=0, max_value=86_399_999),
    "note": st.none() | st.text(max_size=20),
})  # fmt: skip


def typed(value: Any) -> tuple[str, str]:
    """A value with its type: Decimal('1.50') and Decimal('1.5') differ, so do naive and zoned."""
    return type(value).__name__, repr(value)


def record(i: int, after: dict[str, Any], op: str = "c") -> tuple[bytes, bytes]:
    source = {"file": "bin.000002", "pos": 100 + i, "row": 0, "snapshot": "false"}
    payload = {"before": None, "after": {"id": i, **after}, "source": source, "op": op}
    return (orjson.dumps({"schema": KEY, "payload": {"id": i}}),
            json.dumps({"schema": SCHEMA, "payload": payload}).encode())  # fmt: skip


def both_ways(records: list[tuple[bytes, bytes]]) -> tuple[dict[Any, Any], dict[Any, Any]]:
    expected = {}
    for key, value in records:
        event = decode("t", key, value)
        assert isinstance(event, ChangeEvent) and event.after is not None
        expected[tuple(event.key.values())] = {c: typed(v) for c, v in event.after.items()}
    with tempfile.TemporaryDirectory() as tmp, LogStore(tmp) as store:
        name = store.new_table()
        n = len(records)
        append(store, name, "t", 0, [0] * n, list(range(n)), [k for k, _ in records], [v for _, v in records])
        table = fold(store, name, "t", AT)
        folded = {(image["id"],): {c: typed(v) for c, v in image.items()} for b in table.images(7) for image, _ in b}
    return expected, folded


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=1, max_size=25))
def test_the_fold_decodes_every_encoding_as_the_envelope_decoder_does(rows: list[dict[str, Any]]) -> None:
    expected, folded = both_ways([record(i, r) for i, r in enumerate(rows)])
    assert folded == expected


def test_extreme_values_and_dates_before_1970_come_out_exact() -> None:
    extreme = {"amount": _decimal_bytes(-(10**65) + 1), "money0": _decimal_bytes(-1), "day": -719_162,
               "at_us": -1, "at_ms": -1, "stamp": "1969-12-31T23:59:59.999999Z", "clock": -1,
               "text_dec": "-0.00"}  # fmt: skip
    expected, folded = both_ways([record(1, extreme)])
    assert folded == expected
    image = dict(folded[(1,)])
    assert image["amount"] == typed(Decimal("-" + "9" * 55 + "." + "9" * SCALE))
    assert image["day"] == typed(date(1, 1, 1)) and image["clock"] == typed(timedelta(microseconds=-1))


def test_recorded_debezium_events_fold_to_their_decoded_rows() -> None:
    records = []
    for path in sorted(FIXTURES.glob("mariadb_*_snapshot_read.json")):
        recorded = json.loads(path.read_text())
        records.append((recorded["key"].encode(), recorded["value"].encode()))
    assert records
    for one in records:  # each its own table: the fixtures share a key
        expected, folded = both_ways([one])
        assert folded == expected
