"""How values are compared, one kind of fault at a time, over many values rather than
one example each (the README's "How values are compared" table is what they check)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from decimal import Decimal as D
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comparators import InFlight, Settings, reconcile
from comparators.errors import ComparatorError, EmptySideError
from comparators.report import render
from comparators.report._common import values
from comparators.result import Reconciliation
from comparators.types import family, lossless, pair
from tests.unit.comparators.conftest import rec

FEW = settings(max_examples=10, deadline=None)


def side(ids: list[int], v: pa.Array) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "v": v})


# --- 1. nothing depends on the host; naive timestamps are read in a stated zone -------------

WALLS = [
    dt.datetime(2026, m, d, h, mi)
    for m, d, h, mi in [(1, 1, 0, 0), (3, 8, 2, 30), (3, 29, 1, 30), (7, 1, 12, 0), (10, 25, 2, 30), (11, 1, 1, 30)]
]
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"]


@pytest.fixture
def host_zone() -> Any:
    """Run a block under another host time zone (TZ), restoring it afterwards."""
    before = os.environ.get("TZ")

    def set_zone(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.parametrize("zone", ZONES)
def test_naive_timestamps_are_read_in_the_stated_zone_whatever_the_host(zone: str, host_zone: Any) -> None:
    naive = side(list(range(len(WALLS))), pa.array(WALLS, pa.timestamp("us")))
    instants = [w.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC) for w in WALLS]
    aware = side(list(range(len(WALLS))), pa.array(instants, pa.timestamp("us", tz="UTC")))
    off = side(
        list(range(len(WALLS))), pa.array([i + dt.timedelta(hours=1) for i in instants], pa.timestamp("us", tz="UTC"))
    )  # noqa: E501
    verdicts = set()
    for host in ("America/Los_Angeles", "Asia/Tokyo"):
        host_zone(host)
        ok = rec(naive, aware, naive_timezone=zone)
        bad = rec(naive, off, naive_timezone=zone)
        verdicts.add((ok.verdict, bad.mismatched_rows))
        assert any(f"read as {zone}" in n for n in ok.notes)
    # Wall times in a DST gap (no such time) or overlap (two such instants) do not name one
    # instant: they are differences. Every other one is read in the stated zone.
    tz = ZoneInfo(zone)
    unclear = sum(
        w.replace(tzinfo=tz).astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != w
        or w.replace(tzinfo=tz).utcoffset() != w.replace(tzinfo=tz, fold=1).utcoffset()
        for w in WALLS
    )
    assert verdicts == {("clean" if not unclear else "differences", len(WALLS))}
    assert rec(naive, aware, naive_timezone=zone).mismatched_rows == unclear


@pytest.mark.parametrize("aware_column", [False, True])
def test_an_in_flight_cutoff_is_read_in_the_naive_timestamp_zone(aware_column: bool, host_zone: Any) -> None:
    host_zone("Asia/Tokyo")
    at = dt.datetime(2026, 7, 1, 12, 30, tzinfo=dt.UTC)  # 08:30 in New York
    kind = pa.timestamp("us", tz="UTC") if aware_column else pa.timestamp("us")
    stamp = at if aware_column else at.astimezone(ZoneInfo("America/New_York")).replace(tzinfo=None)
    left = pa.table({"id": [1], "v": [1], "at": pa.array([stamp], kind)})
    right = pa.table({"id": [1], "v": [2], "at": pa.array([stamp], kind)})
    for cutoff, in_flight in ((dt.datetime(2026, 7, 1, 8, 0), 1), (dt.datetime(2026, 7, 1, 9, 0), 0)):
        r = rec(left, right, in_flight=InFlight("at", cutoff), naive_timezone="America/New_York", ignore=["at"])
        assert (r.in_flight_rows, r.mismatched_rows) == (in_flight, 1 - in_flight), (cutoff, aware_column)


def test_unknown_zone_is_refused_in_one_line() -> None:
    with pytest.raises(ComparatorError, match="unknown time zone 'Nowhere/Land'") as exc:
        rec(side([1], pa.array([1])), side([1], pa.array([1])), naive_timezone="Nowhere/Land")
    assert "\n" not in str(exc.value)


# --- 2. every implicit conversion is lossless, checked, or refused --------------------------

# (left type, left value, right type, right value): different values a lossy conversion
# would make equal. Each must be a difference (or a refusal), never clean.
LOSSY_PAIRS = [
    (pa.string(), "02134", pa.int64(), 2134),
    (pa.string(), "12.505", pa.decimal128(12, 2), D("12.51")),
    (pa.string(), " 42", pa.int64(), 42),
    (pa.string(), "1e3", pa.float64(), 1000.0),
    (pa.string(), "BAE=", pa.decimal128(12, 2), D("10.25")),
    (pa.string(), "2026-01-01T00:00:00", pa.timestamp("us"), dt.datetime(2026, 1, 1)),
    (pa.int64(), 2**53 + 1, pa.float64(), float(2**53)),
    (pa.int64(), 2**62 + 1, pa.float64(), float(2**62)),
    (pa.decimal128(20, 2), D("123456789012345678.01"), pa.float64(), 123456789012345678.0),
    (pa.decimal128(12, 2), D("12.50"), pa.decimal128(12, 3), D("12.505")),
    (pa.timestamp("ns"), 1_700_000_000_000_000_001, pa.timestamp("us"), 1_700_000_000_000_000),
    (pa.float64(), 0.1 + 0.2, pa.float64(), 0.3),
    (pa.float32(), 0.1, pa.float64(), 0.1),
    (pa.int8(), 1, pa.bool_(), True),
]


@pytest.mark.parametrize(("lt", "lv", "rt", "rv"), LOSSY_PAIRS, ids=lambda x: str(x)[:20])
def test_different_values_never_compare_equal_through_a_conversion(lt: Any, lv: Any, rt: Any, rv: Any) -> None:
    r = rec(side([1], pa.array([lv], lt)), side([1], pa.array([rv], rt)))
    assert r.exit_code == 1 and r.mismatched_rows == 1
    (sample,) = [s for s in r.samples if s.cause == "value_mismatch"]
    left, right = sample.values[0][1:]
    assert left is not None and right is not None  # the evidence is what each side holds


# ISO text with a "T" converts to TIMESTAMP exactly when asked (--coerce), so it is left out here.
@pytest.mark.parametrize(("lt", "lv", "rt", "rv"), LOSSY_PAIRS[:5], ids=lambda x: str(x)[:20])
def test_a_coercion_that_loses_information_is_a_difference_and_reported(lt: Any, lv: Any, rt: Any, rv: Any) -> None:
    target = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.decimal128(12, 2): "DECIMAL(12,2)",
              pa.timestamp("us"): "TIMESTAMP"}[rt]  # fmt: skip
    r = rec(side([1], pa.array([lv], lt)), side([1], pa.array([rv], rt)), coerce={"v": target})
    assert r.mismatched_rows == 1 and r.columns[0].lossy_left == 1
    assert any(f"--coerce v={target} loses information" in n for n in r.notes)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=40))
@FEW
def test_bigint_against_double_is_equal_only_when_the_double_is_that_integer(ints: list[int]) -> None:
    ids = list(range(len(ints)))
    r = rec(side(ids, pa.array(ints, pa.int64())), side(ids, pa.array([float(i) for i in ints], pa.float64())))
    assert r.mismatched_rows == sum(int(float(i)) != i for i in ints)


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=40))
@FEW
def test_number_text_equals_a_number_only_as_its_exact_text(items: list[tuple[int, int, int]]) -> None:
    """Text vs DECIMAL is compared as text: '0012.50' is not 12.50, '12.50' is."""
    nums = [D(n).scaleb(-2) for n, _, _ in items]
    texts = ["0" * zeros + str(x) + " " * blanks for x, (_, zeros, blanks) in zip(nums, items, strict=True)]
    ids = list(range(len(items)))
    r = rec(side(ids, pa.array(texts)), side(ids, pa.array(nums, pa.decimal128(12, 2))))
    assert r.mismatched_rows == sum(z > 0 or b > 0 for _, z, b in items)


FAMILIES = {
    "int": (pa.int32(), 7), "bigint": (pa.int64(), 7), "decimal": (pa.decimal128(12, 2), D("7.00")),
    "double": (pa.float64(), 7.0), "text": (pa.string(), "7"), "date": (pa.date32(), dt.date(2026, 1, 7)),
    "timestamp": (pa.timestamp("us"), dt.datetime(2026, 1, 7)),
    "timestamptz": (pa.timestamp("us", tz="UTC"), dt.datetime(2026, 1, 7, tzinfo=dt.UTC)),
    "bool": (pa.bool_(), True),
}  # fmt: skip


@pytest.mark.parametrize("lname", FAMILIES)
@pytest.mark.parametrize("rname", FAMILIES)
def test_every_pair_of_type_families_is_compared_losslessly_or_checked(lname: str, rname: str) -> None:
    (lt, lv), (rt, rv) = FAMILIES[lname], FAMILIES[rname]
    left, right = side([1], pa.array([lv], lt)), side([1], pa.array([rv], rt))
    r = rec(left, right)
    col = r.columns[0]
    p = pair(col.left_type, col.right_type)
    for side_type in (col.left_type, col.right_type):
        # A side is converted without a per-value check only when no information can be lost.
        assert p.checked(side_type) == (p.converts(side_type) and not lossless(side_type, p.compared_as))
    if family(col.left_type) == "string" or family(col.right_type) == "string":
        assert col.compared_as == "VARCHAR"  # text is never parsed implicitly
    same_family = family(col.left_type) == family(col.right_type) or {
        family(col.left_type),
        family(col.right_type),
    } == {"time", "timestamptz"}  # noqa: E501
    assert (r.causes["type_mismatch"] == 0) == same_family


# --- 3. a decimal tolerance is honoured at its boundary for every storage type --------------


@pytest.mark.parametrize("tolerance", ["0.01", "0.05", "1", "0.001"])
def test_every_pair_x_and_x_plus_t_is_within_abs_t_on_double(tolerance: str) -> None:
    """Every x in 0.00 .. 999.99 against x + t (both as DOUBLE): all within, whatever their
    binary forms; x against x + t + 0.01 (or + 0.001 for t = 0.001): all beyond."""
    t = D(tolerance)
    step = D("0.001") if t < D("0.01") else D("0.01")
    xs = [D(i).scaleb(-2) for i in range(100_000)]
    ids = list(range(len(xs)))
    left = side(ids, pa.array([float(x) for x in xs], pa.float64()))
    right = side(ids, pa.array([float(x + t) for x in xs], pa.float64()))
    r = rec(left, right, rules={"v": f"abs:{tolerance}"}, samples=0)
    assert (r.within_tolerance_rows, r.mismatched_rows) == (len(xs), 0)
    beyond = side(ids, pa.array([float(x + t + step) for x in xs], pa.float64()))
    r = rec(left, beyond, rules={"v": f"abs:{tolerance}"}, samples=0)
    assert (r.within_tolerance_rows, r.mismatched_rows) == (0, len(xs))


@given(
    st.lists(st.decimals(min_value=-(10**6), max_value=10**6, places=3), min_size=1, max_size=30),
    st.sampled_from(["0.001", "0.01", "0.5", "2"]),
    st.sampled_from([0, 1]),
)
@FEW
def test_abs_and_rel_boundaries_hold_for_decimal_and_double_storage(xs: list[D], tol: str, beyond: int) -> None:
    t = D(tol)
    ids = list(range(len(xs)))
    ys = [x + t + beyond * D("0.001") for x in xs]
    for storage in (pa.float64(), pa.decimal128(18, 3)):
        conv = float if storage == pa.float64() else (lambda v: v)
        left, right = (side(ids, pa.array([conv(v) for v in vs], storage)) for vs in (xs, ys))
        r = rec(left, right, rules={"v": f"abs:{tol}"}, samples=0)
        assert r.mismatched_rows == (len(xs) if beyond else 0), storage


@pytest.mark.parametrize(("x", "y", "tol", "within"), [
    (100.0, 101.0, "0.01", True), (100.0, 101.02, "0.01", False), (0.99, 1.0, "0.01", True),
    (1e-9, 2e-9, "0.5", True), (1e300, 1.01e300, "0.01", True), (-5.0, -5.05, "0.01", True),
])  # fmt: skip
def test_relative_tolerance_on_double_is_read_on_decimals(x: float, y: float, tol: str, within: bool) -> None:
    r = rec(side([1], pa.array([x])), side([1], pa.array([y])), rules={"v": f"rel:{tol}"})
    assert (r.within_tolerance_rows == 1) == within and (r.mismatched_rows == 1) != within


# --- 4. an empty side is the biggest difference ---------------------------------------------


@pytest.mark.parametrize(("nl", "nr"), [(0, 0), (3, 0), (0, 3), (3, 3)])
def test_empty_sides_are_results(nl: int, nr: int) -> None:
    full = side([1, 2, 3], pa.array([1, 2, 3]))
    r = rec(full.slice(0, nl), full.slice(0, nr))
    assert (r.only_in_left, r.only_in_right, r.exit_code) == (nl - min(nl, nr), nr - min(nl, nr), int(nl != nr))
    if nl == 0 or nr == 0:
        with pytest.raises(EmptySideError):
            reconcile(full.slice(0, nl), full.slice(0, nr), ["id"], settings=Settings(allow_empty=False))


# --- 5. every option the user wrote is applied or refused with one line ---------------------

BOTH = pa.table({"id": [1, 2], "a": [1.0, 2.0], "s": ["x", "y"], "only_l": [1, 2]})
RIGHT = pa.table({"id": [1, 2], "a": [1.0, 2.0], "s": ["x", "y"], "b": [1.0, 2.0], "only_r": [1, 2]})
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"rules": {"id": "abs:1"}}, "keys are matched exactly"),
    ({"rules": {"a": "abs:1"}, "ignore": ["a"]}, "ignored and also have a rule"),
    ({"coerce": {"a": "DOUBLE"}, "ignore": ["a"]}, "ignored and also have a coercion"),
    ({"rules": {"only_l": "abs:1"}}, "one side only"),
    ({"coerce": {"only_r": "BIGINT"}}, "one side only"),
    ({"rules": {"nope": "abs:1"}}, "exist on neither side"),
    ({"rename": {"b": "zz"}}, "'zz' is not in the left side"),
    ({"rename": {"b": "a"}}, "already has a column 'a'"),
    ({"rules": {"*": "skew:1s"}}, "fits no compared column"),
    ({"rules": {"a": "null:abc"}}, "could never apply"),
    ({"aggregate_tolerance": "0.01"}, "give --partition"),
    ({"coerce": {"a": "NOTATYPE"}}, "no such type"),
    ({"rules": {"s": "abs:1"}}, "does not fit column 's'"),
    ({"naive_timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"in_flight": InFlight("nope", dt.datetime(2026, 1, 1))}, "in-flight column 'nope'"),
]


@pytest.mark.parametrize(("options", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_an_option_that_would_not_apply_is_refused_in_one_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ComparatorError, match=message) as exc:
        rec(BOTH, RIGHT, **options)
    assert "\n" not in str(exc.value)


def test_options_that_apply_change_the_result_they_are_listed_for() -> None:
    left = pa.table({"id": [1, 2], "a": [1.0, 2.0], "s": ["x", "y"]})
    right = pa.table({"id": [1, 2], "a2": [1.005, None], "s": ["X ", "y"]})
    r = rec(left, right, rename={"a2": "a"}, rules={"a": ["abs:0.01", "null:2.0"], "s": "norm:trim,case"})
    assert (r.verdict, r.within_tolerance_rows) == ("clean", 2)
    assert {c.name: c.within_tolerance for c in r.columns} == {"a": 2, "s": 1}


# --- 6. two different values never look the same in any report format ----------------------

TRICKY = ["a", "a ", " a", "a\u200b", "\u00e9", "e\u0301", "NULL", "null", "", "nan", "-0.0", "0.0", "a\u00a0b",
          "a b", "a  b", "a\tb", "'a'", "\ufeffa", None]  # fmt: skip
TRICKY_VALUES: list[Any] = [*TRICKY, -0.0, 0.0, float("nan"), float("inf"), D("10.25"), "10.25", b"\x04\x01", "0x0401"]


@given(st.sampled_from(TRICKY_VALUES), st.sampled_from(TRICKY_VALUES))
@settings(max_examples=300, deadline=None)
def test_two_different_values_never_render_alike(a: Any, b: Any) -> None:
    same = type(a) is type(b) and repr(a) == repr(b)
    shown = values(a, b)
    assert (shown[0] == shown[1]) == same
    from comparators.result import _pair

    as_json = json.dumps(_pair(a, b))
    assert (json.loads(as_json)["left"] == json.loads(as_json)["right"] and "left_type" not in as_json) == same


def _tricky_result() -> Reconciliation:
    texts = [t for t in TRICKY if t is not None]
    pairs = [(x, y) for x in texts for y in texts if x != y]
    ids = list(range(len(pairs)))
    left = pa.table({"id": ids, "v": [x for x, _ in pairs]})
    right = pa.table({"id": ids, "v": [y for _, y in pairs]})
    return rec(left, right, samples=len(pairs))


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_every_report_format_shows_differing_text_differently(fmt: str) -> None:
    r = _tricky_result()
    assert r.mismatched_rows == len([s for s in r.samples if s.cause == "value_mismatch"]) > 300
    out = render(r, fmt)
    if fmt == "json":
        for s in json.loads(out)["samples"]:
            assert s["values"]["v"]["left"] != s["values"]["v"]["right"]
        return
    for line in out.splitlines():
        if "[value_mismatch]" in line or "**value_mismatch**" in line:
            shown = line.split(": v: ", 1)[1]
            left, right = shown.split(" -> ")
            assert left != right, line


def test_null_text_and_null_are_told_apart_in_the_html_run_report() -> None:
    from comparators.report.html import _values
    from comparators.result import Sample

    s = Sample("value_mismatch", (("id", 1),), (("v", "NULL", None), ("w", "a ", "a"), ("x", -0.0, 0.0)))
    assert [(lv, rv) for _, lv, rv in _values(s)] == [("'NULL'", "NULL"), ("'a '", "a"), ("-0.0", "0.0")]
    spaced = Sample("value_mismatch", (("id", 1),), (("v", "a  b", "a b"),))
    assert _values(spaced)[0][1:] == ("'a \\x20b'", "a b")  # HTML would collapse the two blanks


def test_nanosecond_timestamps_that_differ_are_shown_differently() -> None:
    ns = pa.array([1_700_000_000_000_000_001], pa.timestamp("ns"))
    r = rec(side([1], ns), side([1], pa.array([1_700_000_000_000_000_002], pa.timestamp("ns"))))
    (sample,) = r.samples
    left, right = sample.values[0][1:]
    assert left != right and str(left).endswith("001") and str(right).endswith("002")
