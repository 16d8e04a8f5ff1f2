"""Foreign output records (a user's streaming job's Kafka topic) into changelog rows.

A record is (key bytes, value bytes, headers, partition, offset), as confluent-kafka hands
it over. It becomes one row of the changelog contract (`comparators.sources`):

* key columns from the JSON key object's fields; a scalar key (JSON or plain text) is the
  single key column; otherwise the key columns are the value's fields named in `keys`;
* value columns from the JSON value object (a scalar value becomes the column `value`); a
  null value is a tombstone: `__op` 'd';
* numbers with a fraction or exponent become `Decimal` (never float), so DECIMAL stays exact
  whether the job writes it as a JSON string or a JSON number;
* the source position from the headers, in the first form present:
  - (B) the header named `position_header` (default `dbz.source`) holding Debezium's JSON
    `source` block (file/pos/row/gtid, or lsn/txId/sequence) as Kafka's `HeaderFrom` copies it;
    an integer there is taken as a `__pos_order` value;
  - (A) `ExtractNewRecordState`'s `__source_file`, `__source_pos`, `__source_row`,
    `__source_gtid` (PostgreSQL: `__source_lsn`, `__source_sequence`) as text;
  - dualrun's own job's `dualrun.position` (a `__pos_order` value);
* `__kafka_partition`, `__kafka_offset` and `__has_position` kept as evidence.

Positions are computed by `cdc.position.Position`, so their order agrees with the batch side's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
import pyarrow as pa

from cdc.connector import POSITION_HEADER
from cdc.errors import CdcError
from cdc.position import Position, binlog_order_value, format_lsn
from migrate.errors import ChangelogError, TapError
from migrate.stream.changelog import META as CHANGELOG_META

DUALRUN_HEADER = "dualrun.position"
SNAPSHOT_FLAGS = frozenset({"true", "first", "last", "first_in_data_collection", "last_in_data_collection"})
# The changelog contract's metadata, then the tap's evidence columns.
META = pa.schema(
    list(CHANGELOG_META)
    + [("__kafka_partition", pa.int32()), ("__kafka_offset", pa.int64()), ("__has_position", pa.bool_())]
)
_decode_json = json.JSONDecoder(parse_float=Decimal).decode
# orjson's values that may hide a float (read again with exact Decimals).
_LOSSY = frozenset({float, dict, list})


class Located(NamedTuple):
    """A decoded position: changelog columns (`__pos_file` .. `__pos_order`) and snapshot flag."""

    pos_file: str | None
    pos_offset: int | None
    gtid: str | None
    lsn: str | None
    source_ts_ms: int | None
    pos_order: int
    snapshot: bool


class DecodedRecord(NamedTuple):
    """One record as a changelog row: `columns` (key and value fields) and its metadata."""

    columns: dict[str, Any]
    op: str  # 'u' upsert, 'd' tombstone, 'r' change read from Debezium's snapshot
    position: Located | None
    partition: int
    offset: int


class UndecodableRecord(TapError):
    """A record the tap cannot turn into a row (no key, not JSON): kept as evidence, not guessed."""


def parse_json(data: bytes) -> Any:
    """JSON with every non-integer number as an exact Decimal.

    >>> parse_json(b'{"a": 12.50, "b": 3, "c": "x"}')
    {'a': Decimal('12.50'), 'b': 3, 'c': 'x'}
    >>> parse_json(b'[1.10, {"n": 123456789012345678901234567890}]')
    [Decimal('1.10'), {'n': 123456789012345678901234567890}]
    """
    try:
        fast = orjson.loads(data)  # 3x faster; read again only where a float (lossy) appeared
    except orjson.JSONDecodeError:
        return _decode_json(data.decode())  # e.g. integers beyond 64 bits, which orjson refuses
    if type(fast) is dict:
        return fast if _LOSSY.isdisjoint(map(type, fast.values())) else _decode_json(data.decode())
    return _decode_json(data.decode()) if type(fast) in _LOSSY else fast


def _text(raw: bytes) -> str:
    """A header as text; JSON string headers (JsonConverter) lose their quotes."""
    text = raw.decode()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return str(orjson.loads(text))
    return text


def position_of_source(source: dict[str, Any]) -> Located:
    """A Debezium `source` block (MariaDB/MySQL or PostgreSQL) as changelog position columns.

    >>> position_of_source({"file": "mysql-bin.000003", "pos": 1234, "row": 0, "gtid": "0-1-42",
    ...     "ts_ms": 7, "snapshot": "false"})[:4]
    ('mysql-bin.000003', 1234, '0-1-42', None)
    """
    ts = source.get("ts_ms")
    flag = source.get("snapshot")
    snapshot = flag is not None and flag != "false" and str(flag).lower() in SNAPSHOT_FLAGS
    file, pos = source.get("file"), source.get("pos")
    if file is not None and pos is not None:  # MariaDB/MySQL, the common case: no Position object
        file, pos = str(file), int(pos)
        return Located(file, pos, source.get("gtid"), None, ts, binlog_order_value(file, pos), snapshot)
    position = Position.from_source(source)
    if position.kind == "lsn":
        return Located(None, None, None, format_lsn(position.minor), ts, position.order_value, snapshot)
    return Located(position.file, position.minor, position.gtid, None, ts, position.order_value, snapshot)


def decode_position(headers: Sequence[tuple[str, bytes | None]] | None, header: str) -> Located | None:
    """The record's source position from its headers (forms B, A, dualrun's), None if it has none.

    >>> decode_position([("dualrun.position", b"3298534884562")], "dbz.source").pos_order
    3298534884562
    """
    if not headers:
        return None
    raw = None
    for name, value in headers:  # the last of repeated headers wins, as Kafka Streams' lastHeader()
        if name == header and value is not None:
            raw = value
    try:
        if raw is not None:
            data = orjson.loads(raw)
            if isinstance(data, dict):
                return position_of_source(data)
            return Located(None, None, None, None, None, int(data), False)
        found = {name: value for name, value in headers if value is not None}
        if "__source_file" in found or "__source_lsn" in found:
            source = {k.removeprefix("__source_"): _text(v) for k, v in found.items() if k.startswith("__source_")}
            return position_of_source(source)
        raw = found.get(DUALRUN_HEADER)
        if raw is not None:
            return Located(None, None, None, None, None, int(raw), False)
    except (CdcError, orjson.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as exc:
        raise UndecodableRecord(f"position header is not a Debezium source block or position: {exc}") from exc
    return None


class RecordDecoder:
    """Decodes one output's records; `decode` is pure, so it is tested on plain bytes."""

    def __init__(self, keys: Sequence[str], position_header: str = POSITION_HEADER) -> None:
        if not keys:
            raise ChangelogError("an output needs at least one key column to be read from a topic")
        self.keys = tuple(keys)
        self.position_header = position_header
        self._last_headers: Any = None  # the records of one source event share their headers
        self._last_position: Located | None = None

    def decode(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        partition: int,
        offset: int,
    ) -> DecodedRecord:
        """Raises UndecodableRecord (with the reason) for a record without a usable key or JSON."""
        columns: dict[str, Any]
        if value is None:
            columns = {}
        else:
            try:
                body = _unwrap(parse_json(value))
            except (ValueError, UnicodeDecodeError) as exc:
                raise UndecodableRecord(f"value is not JSON: {exc}") from exc
            columns = body if type(body) is dict else {"value": body}  # a fresh dict: no copy needed
        if key is not None:
            self._key_columns(key, columns)
        missing = [k for k in self.keys if columns.get(k) is None]
        if missing:
            where = "key or value" if value is not None else "key (a tombstone has no value)"
            raise UndecodableRecord(f"key column(s) {missing} not found in the record's {where}")
        if headers and headers == self._last_headers:
            position = self._last_position
        else:
            position = decode_position(headers, self.position_header)
            self._last_headers, self._last_position = headers, position
        op = "d" if value is None else ("r" if position is not None and position.snapshot else "u")
        return DecodedRecord(columns, op, position, partition, offset)

    def _key_columns(self, key: bytes, columns: dict[str, Any]) -> None:
        try:
            data = _unwrap(parse_json(key))
        except (ValueError, UnicodeDecodeError):
            data = key.decode(errors="replace")  # a plain string key (Kafka's StringSerializer)
        if isinstance(data, dict):
            for name in self.keys:
                if name in data:
                    columns[name] = data[name]
        elif len(self.keys) == 1 and data is not None:
            columns.setdefault(self.keys[0], data)


def _unwrap(data: Any) -> Any:
    """Kafka Connect's JsonConverter with schemas on wraps data as {"schema": ..., "payload": ...}."""
    if type(data) is dict and len(data) == 2 and "payload" in data and "schema" in data:
        return data["payload"]
    return data
