"""The tap's decoding of foreign output records and its findings, on records as confluent-kafka
hands them over: (key bytes, value bytes, headers, partition, offset)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import KafkaError

from cdc.position import Position
from comparators import ChangelogSource, FrameSource, reconcile
from migrate.errors import TapError
from migrate.stream.decoder import RecordDecoder, UndecodableRecord, decode_position
from migrate.stream.findings import reordered_keys_around, tap_report
from migrate.stream.tap import STATE, TapLog, _State, passing, to_arrow, waitable

MARIADB = {"version": "3.5.0.Final", "connector": "mariadb", "name": "ledger", "ts_ms": 1700000000000,
           "snapshot": "false", "db": "ledger", "table": "transfers", "server_id": 1, "gtid": "0-1-42",
           "file": "mysql-bin.000003", "pos": 1234, "row": 0}  # fmt: skip
PG = {"connector": "postgresql", "ts_ms": 1700000000001, "snapshot": "false", "txId": 777,
      "lsn": 24023128, "sequence": '["24023119","24023128"]'}  # fmt: skip


def header(source: dict[str, object], name: str = "dbz.source") -> list[tuple[str, bytes | None]]:
    return [("other", b"x"), (name, orjson.dumps(source))]


def at(pos: int, **extra: object) -> list[tuple[str, bytes | None]]:
    return header({**MARIADB, "pos": pos, **extra})


def order(pos: int) -> int:
    return Position.binlog("mysql-bin.000003", pos).order_value


def test_form_b_the_whole_debezium_source_block_in_one_json_header() -> None:
    rec = RecordDecoder(["account_id"]).decode(b'{"account_id": 7}', b'{"balance": "12.50"}', header(MARIADB), 2, 41)
    assert rec.columns == {"balance": "12.50", "account_id": 7} and rec.op == "u"
    assert (rec.partition, rec.offset) == (2, 41)
    assert rec.position is not None
    assert (rec.position.pos_file, rec.position.pos_offset, rec.position.gtid) == ("mysql-bin.000003", 1234, "0-1-42")
    assert rec.position.pos_order == order(1234) and rec.position.source_ts_ms == 1700000000000
    assert not rec.position.snapshot


def test_form_b_postgresql_orders_by_previous_commit_then_change_lsn() -> None:
    located = decode_position(header(PG), "dbz.source")
    assert located is not None and located.lsn == "0/016E9058" and located.pos_file is None
    assert located.pos_order == Position.lsn(24023119, 24023128).order_value


def test_form_a_extract_new_record_state_headers_as_text_or_json_strings() -> None:
    plain = [("__source_file", b"mysql-bin.000003"), ("__source_pos", b"1234"), ("__source_row", b"0"),
             ("__source_gtid", b"0-1-42")]  # fmt: skip
    quoted = [("__source_file", b'"mysql-bin.000003"'), ("__source_pos", b"1234"), ("__source_gtid", b'"0-1-42"')]
    for headers in (plain, quoted):
        located = decode_position(headers, "dbz.source")
        assert located is not None
        assert (located.pos_file, located.pos_offset, located.gtid, located.pos_order) == (
            "mysql-bin.000003", 1234, "0-1-42", order(1234))  # fmt: skip
    pg = decode_position([("__source_lsn", b"24023128"), ("__source_sequence", b'["24023119","24023128"]')], "x")
    assert pg is not None and pg.pos_order == Position.lsn(24023119, 24023128).order_value


def test_dualruns_own_position_header_and_an_integer_in_the_named_header() -> None:
    assert decode_position([("dualrun.position", str(order(99)).encode())], "dbz.source").pos_order == order(99)  # type: ignore[union-attr]
    assert decode_position([("pos", b"12345")], "pos").pos_order == 12345  # type: ignore[union-attr]


def test_records_without_a_position_and_broken_headers() -> None:
    decoder = RecordDecoder(["id"])
    for headers in (None, [], [("other", b"1")], [("dbz.source", None)]):
        assert decoder.decode(b"1", b'{"v": 1}', headers, 0, 0).position is None
    with pytest.raises(UndecodableRecord, match="position header"):
        decoder.decode(b"1", b'{"v": 1}', [("dbz.source", b'{"neither": 1}')], 0, 0)


def test_keys_from_the_key_object_else_a_scalar_key_else_the_value() -> None:
    decoder = RecordDecoder(["customer_id", "day"])
    composite = decoder.decode(b'{"customer_id": 7, "day": "2026-11-30"}', b'{"revenue": 10}', None, 0, 0)
    assert composite.columns == {"revenue": 10, "customer_id": 7, "day": "2026-11-30"}
    value = b'{"customer_id": 8, "day": "2026-12-01", "revenue": 1}'
    from_value = decoder.decode(b"ignored-text-key", value, None, 0, 1)
    assert from_value.columns["customer_id"] == 8
    single = RecordDecoder(["order_id"])
    assert single.decode(b"1001", b'{"amount": 1}', None, 0, 0).columns["order_id"] == 1001  # JSON number
    assert single.decode(b"A-17", b'{"amount": 1}', None, 0, 0).columns["order_id"] == "A-17"  # plain text key
    assert single.decode(b'"A-18"', b'{"amount": 1}', None, 0, 0).columns["order_id"] == "A-18"  # JSON string
    connect = b'{"schema": {"type": "struct"}, "payload": {"order_id": 5}}'  # JsonConverter, schemas on
    assert single.decode(connect, b'{"amount": 1}', None, 0, 0).columns["order_id"] == 5
    scalar_value = single.decode(b"9", b'"9"', None, 0, 0)
    assert scalar_value.columns == {"value": "9", "order_id": 9}


def test_tombstones_are_deletes_and_need_their_key_in_the_key() -> None:
    rec = RecordDecoder(["order_id"]).decode(b'{"order_id": 3}', None, at(2000), 0, 5)
    assert rec.op == "d" and rec.columns == {"order_id": 3} and rec.position is not None
    with pytest.raises(UndecodableRecord, match="tombstone"):
        RecordDecoder(["customer_id", "day"]).decode(b"7", None, at(2000), 0, 6)
    with pytest.raises(UndecodableRecord, match="not JSON"):
        RecordDecoder(["order_id"]).decode(b"1", b"{oops", None, 0, 7)


def test_snapshot_changes_are_marked_r() -> None:
    assert RecordDecoder(["id"]).decode(b"1", b'{"v": 1}', at(100, snapshot="last"), 0, 0).op == "r"


def test_decimals_stay_exact_whether_json_strings_or_numbers() -> None:
    decoder = RecordDecoder(["id"])
    rows = [
        decoder.decode(b"1", b'{"amount": "12.50"}', at(1), 0, 0),
        decoder.decode(b"2", b'{"amount": 12.5}', at(2), 0, 1),
        decoder.decode(b"3", b'{"amount": 12345678901234567.89}', at(3), 0, 2),  # beyond a double's digits
    ]
    assert rows[2].columns["amount"] == Decimal("12345678901234567.89")
    schema = pa.schema([("id", pa.int64()), ("amount", pa.decimal128(20, 2))])
    table = to_arrow(rows, schema, 0)
    assert table.schema.field("amount").type == pa.decimal128(20, 2)
    assert table.column("amount").to_pylist() == [Decimal("12.50"), Decimal("12.50"), Decimal("12345678901234567.89")]
    # A value that does not fit the batch output's type is an error, never rounded.
    with pytest.raises(TapError, match="amount"):
        to_arrow([decoder.decode(b"4", b'{"amount": 1.005}', at(4), 0, 3)], schema, 0)


def _write(tmp: Path, rows: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]] | None, int, int]],
           keys: list[str]) -> Path:  # fmt: skip
    """A tap folder holding `rows` as one segment, as tap_output leaves it."""
    decoder = RecordDecoder(keys)
    table = to_arrow([decoder.decode(*row) for row in rows], None, 1_000_000)
    pq.write_table(table, tmp / "seg-000000-test.parquet")
    state = _State("t", {0: 99}, ["seg-000000-test.parquet"])
    state.save(tmp)
    assert (tmp / STATE).exists()
    return tmp


def test_report_counts_records_without_positions_with_evidence(tmp_path: Path) -> None:
    root = _write(tmp_path, [(b"1", b'{"v": 1}', at(10), 0, 0), (b"2", b'{"v": 2}', None, 0, 1),
                             (b"3", b'{"v": 3}', [("x", b"y")], 1, 7)], ["id"])  # fmt: skip
    report = tap_report(root, ["id"])
    assert (report.records, report.without_position, report.has_positions) == (3, 2, False)
    assert [(e.key, e.partition, e.offsets) for e in report.without_position_samples] == [
        ({"id": 2}, 0, (1,)), ({"id": 3}, 1, (7,))]  # fmt: skip
    assert report.to_dict()["without_position_samples"][0]["key"] == {"id": "2"}


def test_reordering_is_found_per_key_and_ties_are_not_reordering(tmp_path: Path) -> None:
    rows = [
        (b"1", b'{"v": 1}', at(100), 0, 0), (b"1", b'{"v": 2}', at(130), 0, 1), (b"1", b'{"v": 3}', at(120), 0, 2),
        (b"2", b'{"v": 1}', at(50, snapshot="true"), 0, 3), (b"2", b'{"v": 2}', at(50, snapshot="true"), 0, 4),
        (b"3", b'{"v": 1}', at(100), 0, 5), (b"3", b'{"v": 2}', at(90), 0, 6), (b"3", b'{"v": 3}', at(200), 0, 7),
    ]  # fmt: skip
    root = _write(tmp_path, rows, ["id"])
    report = tap_report(root, ["id"], order(125))
    assert report.reordered_keys == 2 and not report.monotone  # keys 1 and 3; key 2's tie is not reordering
    assert [e.key["id"] for e in report.reordered_samples] == [1, 3]
    sample = report.reordered_samples[0]
    assert sample.offsets == (0, 1, 2) and sample.positions == (order(100), order(130), order(120))
    # Around P = 125: key 1 (130 then 120) is in flight; key 3 went backwards wholly before P.
    assert report.reordered_around == 1 and report.reordered_around_samples[0].key == {"id": 1}
    assert reordered_keys_around(root, ["id"], order(125)).to_pylist() == [{"id": 1}]
    assert tap_report(root, ["id"], order(300)).reordered_around == 0


def test_the_tap_log_reads_as_of_a_position_with_ties_by_offset(tmp_path: Path) -> None:
    rows = [
        (b"1", b'{"v": "a"}', at(50, snapshot="true"), 0, 0), (b"1", b'{"v": "b"}', at(50, snapshot="true"), 0, 1),
        (b"2", b'{"v": "x"}', at(60), 0, 2), (b"2", None, at(200), 0, 3),
        (b"3", b'{"v": "late"}', at(300), 0, 4),
    ]  # fmt: skip
    root = _write(tmp_path, rows, ["id"])
    batch = pa.table({"id": [1, 2], "v": ["b", "x"]})
    log = TapLog((str(root / "seg-000000-test.parquet"),))
    result = reconcile(FrameSource(batch), ChangelogSource(log, "mysql-bin.000003:150"), ["id"])
    assert result.verdict == "clean", result.to_dict()
    after = reconcile(FrameSource(pa.table({"id": [1, 3], "v": ["b", "late"]})),
                      ChangelogSource(log, "mysql-bin.000003:400"), ["id"])  # fmt: skip
    assert after.verdict == "clean", after.to_dict()


def test_keys_reordered_around_the_position_are_left_out_of_both_sides(tmp_path: Path) -> None:
    from migrate.sides import WithoutKeys

    # Key 1's versions in offset order: 100, 130, 120 (H1). As of 125 the view would pick the version
    # at 120, whose value already holds the change at 130: a false mismatch unless left out.
    rows = [
        (b"1", b'{"v": "a"}', at(100), 0, 0), (b"1", b'{"v": "c"}', at(130), 0, 1),
        (b"1", b'{"v": "b+c"}', at(120), 0, 2), (b"2", b'{"v": "x"}', at(110), 0, 3),
    ]  # fmt: skip
    root = _write(tmp_path, rows, ["id"])
    batch = pa.table({"id": [1, 2], "v": ["b", "x"]})
    stream = ChangelogSource(TapLog((str(root / "seg-000000-test.parquet"),)), "mysql-bin.000003:125")
    assert reconcile(FrameSource(batch), stream, ["id"]).verdict != "clean"
    skip = reordered_keys_around(root, ["id"], order(125))
    result = reconcile(WithoutKeys(FrameSource(batch), skip), WithoutKeys(stream, skip), ["id"])
    assert result.verdict == "clean" and result.left.rows == result.right.rows == 1


@pytest.mark.parametrize(("value", "column"), [(b'"12.505"', "amount"), (b'"abc"', "n")])
def test_a_value_that_does_not_fit_the_batch_type_is_undecodable_evidence(
    tmp_path: Path, value: bytes, column: str
) -> None:
    # Not a TapError (exit 2 on every later run, offsets never saved): the record is kept as evidence.
    from migrate.stream.tap import _SegmentWriter

    schema = pa.schema([("id", pa.int64()), ("amount", pa.decimal128(12, 2)), ("n", pa.int64())])
    decoder = RecordDecoder(["id"])
    state = _State("t", {}, [])
    writer = _SegmentWriter(tmp_path, state, schema, ["id"])
    writer.add(decoder.decode(b"1", b'{"amount": "1.50", "n": 1}', at(1), 0, 0))
    writer.add(decoder.decode(b"2", b'{"%s": %s}' % (column.encode(), value), at(2), 0, 1))
    state.offsets[0] = 2
    writer.flush()
    saved = _State.load(tmp_path, "t")
    assert saved.offsets == {0: 2} and len(saved.files) == 1
    report = tap_report(tmp_path, ["id"])
    assert (report.records, report.undecodable, writer.rejected) == (1, 1, 1)
    sample = report.undecodable_samples[0]
    assert (sample["partition"], sample["offset"], sample["key"]) == (0, 1, '{"id":2}')
    assert column in sample["reason"] and value.strip(b'"').decode() in sample["reason"]


E = KafkaError


@pytest.mark.parametrize(
    ("error", "waited"),
    [
        # the broker down, restarting or not yet serving: waited out at the start of a read
        (E(E._TRANSPORT, "Broker transport failure"), True),  # list_topics against a stopped broker
        (E(E._ALL_BROKERS_DOWN, "1/1 brokers are down"), True),  # get_watermark_offsets against one
        (E(E._TIMED_OUT, "Local: Timed out"), True),
        (E(E.REQUEST_TIMED_OUT, "request timed out"), True),
        (E(E.LEADER_NOT_AVAILABLE, "leader election in progress"), True),  # a topic's metadata on start-up
        (E(E.NOT_LEADER_FOR_PARTITION, "leader moved", retriable=True), True),
        (E(E.NETWORK_EXCEPTION, "connection reset"), True),
        # a missing topic is a finding at once; refusals and the unexpected are not waited for
        (E(E.UNKNOWN_TOPIC_OR_PART, "Unknown topic or partition", retriable=True), False),
        (E(E._UNKNOWN_TOPIC, "Local: Unknown topic"), False),
        (E(E.TOPIC_AUTHORIZATION_FAILED, "not authorized"), False),
        (E(E.SASL_AUTHENTICATION_FAILED, "wrong password"), False),
        (E(E._INVALID_ARG, "bad argument"), False),
    ],
    ids=lambda v: v.name() if isinstance(v, KafkaError) else None,
)
def test_what_the_tap_waits_out_at_the_start_of_a_read(error: KafkaError, waited: bool) -> None:
    assert waitable(error) is waited


@pytest.mark.parametrize(
    ("error", "outlived"),
    [
        (E(E._PARTITION_EOF, "end of partition"), True),
        (E(E._TRANSPORT, "Broker transport failure"), True),  # mid-read: bounded by the idle limit
        (E(E.TOPIC_AUTHORIZATION_FAILED, "not authorized"), False),
        (E(E._FENCED, "fenced", fatal=True), False),
    ],
    ids=lambda v: v.name() if isinstance(v, KafkaError) else None,
)
def test_what_a_read_under_way_outlives(error: KafkaError, outlived: bool) -> None:
    assert passing(error) is outlived
