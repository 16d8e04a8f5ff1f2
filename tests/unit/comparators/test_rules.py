"""Every rule, rename, coercion and schema finding on hand-built pairs with exact counts."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal as D

import pyarrow as pa
import pytest

from comparators.errors import RuleError, SpecError
from comparators.rules import (
    RULES,
    AbsoluteTolerance,
    Exact,
    Normalise,
    NullAs,
    RelativeTolerance,
    TimestampSkew,
    parse_rule,
)
from comparators.sql import Params
from tests.unit.comparators.conftest import rec, table

AMOUNTS = table(id=[1, 2, 3, 4, 5], v=[D("100.00"), D("100.00"), D("100.00"), D("-5.00"), None])


def _counts(r: object, column: str = "v") -> tuple[int, int, int]:
    col = {c.name: c for c in r.columns}[column]  # type: ignore[attr-defined]
    return col.mismatches, col.within_tolerance, r.mismatched_rows  # type: ignore[attr-defined]


def test_absolute_tolerance_is_inclusive_and_exact_on_decimals() -> None:
    right = table(id=[1, 2, 3, 4, 5], v=[D("100.01"), D("100.02"), D("99.99"), D("-5.01"), None])
    r = rec(AMOUNTS, right, rules={"v": "abs:0.01"})
    assert _counts(r) == (1, 3, 1)  # only 100.02 is beyond 0.01
    assert r.within_tolerance_rows == 3 and r.causes["within_tolerance"] == 3


def test_relative_tolerance() -> None:
    right = table(id=[1, 2, 3, 4, 5], v=[D("100.10"), D("101.00"), D("100.00"), D("-5.05"), None])
    r = rec(AMOUNTS, right, rules={"v": "rel:0.01"})
    # |100 - 100.10| <= 1.001, |100 - 101| <= 1.01, |-5 - -5.05| = 0.05 <= 0.0505
    assert _counts(r) == (0, 3, 0)
    r = rec(AMOUNTS, right, rules={"v": "rel:0.0005"})
    assert _counts(r) == (3, 0, 3)


def test_default_rule_applies_to_fitting_columns_and_exact_overrides_it() -> None:
    left = table(id=[1, 2], a=[1.0, 2.0], b=[1.0, 2.0], s=["x", "y"])
    right = table(id=[1, 2], a=[1.0000001, 2.0], b=[1.0000001, 2.0], s=["x", "Y"])
    r = rec(left, right, rules={"*": "abs:0.001", "b": "exact"})
    assert _counts(r, "a") == (0, 1, 2)  # rows 1 (b) and 2 (s) mismatch elsewhere
    assert _counts(r, "b")[:2] == (1, 0)
    assert _counts(r, "s")[:2] == (1, 0)  # the numeric default does not apply to strings


def test_timestamp_skew() -> None:
    t = datetime(2024, 5, 1, 2, 0, 0)
    left = table(id=[1, 2, 3], ts=[t, t, t])
    right = table(id=[1, 2, 3], ts=[t + timedelta(seconds=2), t - timedelta(seconds=3), t])
    r = rec(left, right, rules={"ts": "skew:2s"})
    assert _counts(r, "ts") == (1, 1, 1)
    assert {c.name: c.max_abs_diff for c in r.columns}["ts"] == 3.0


def test_string_normalisation() -> None:
    left = table(id=[1, 2, 3, 4], s=["Alice", "bob", "carol", "dan"])
    right = table(id=[1, 2, 3, 4], s=[" alice", "BOB ", "carol", "dave"])
    assert _counts(rec(left, right, rules={"s": "norm:trim,case"}), "s") == (1, 2, 1)
    assert _counts(rec(left, right, rules={"s": "norm:case"}), "s") == (3, 0, 3)
    assert _counts(rec(left, right, rules={"s": "norm:trim"}), "s") == (3, 0, 3)


def test_null_semantics() -> None:
    left = table(id=[1, 2, 3, 4], v=[0, None, None, 5])
    right = table(id=[1, 2, 3, 4], v=[None, 0, None, None])
    plain = rec(left, right)
    col = plain.columns[0]
    assert (col.mismatches, col.null_vs_value) == (3, 3)  # NULL equals NULL (row 3)
    assert _counts(rec(left, right, rules={"v": "null:0"})) == (1, 2, 1)


def test_several_rules_on_one_column_any_may_explain() -> None:
    right = table(id=[1, 2, 3, 4, 5], v=[D("100.50"), D("102.00"), D("100"), D("-5"), D(0)])
    r = rec(AMOUNTS, right, rules={"v": ["abs:1", NullAs("0")]})
    assert _counts(r) == (1, 2, 1)


def test_ignored_and_renamed_columns() -> None:
    left = table(id=[1, 2], total=[D(1), D(2)], noise=["a", "b"])
    right = table(id=[1, 2], amount=[D(1), D(3)], noise=["x", "y"])
    r = rec(left, right, rename={"amount": "total"}, ignore=["noise"])
    assert [c.name for c in r.columns] == ["total"] and r.columns[0].right_name == "amount"
    assert _counts(r, "total") == (1, 0, 1)
    assert r.schema.only_in_left == () and r.schema.only_in_right == ()


def test_schema_drift_is_reported_and_fails() -> None:
    left = table(id=[1], a=[1], gone=[2])
    right = table(id=[1], a=[1], new=[3])
    r = rec(left, right)
    assert r.schema.only_in_left == ("gone",) and r.schema.only_in_right == ("new",)
    assert r.causes["schema_drift"] == 2 and r.exit_code == 1
    assert rec(left, right, ignore=["gone", "new"]).verdict == "clean"


def test_decimal_vs_double_is_a_type_mismatch_until_coerced() -> None:
    left = table(id=[1, 2, 3], v=[D("1.10"), D("2.20"), D("3.30")])
    right = table(id=[1, 2, 3], v=[1.1, 2.2000001, 3.4])
    r = rec(left, right)
    assert [(t.column, t.compared_as, t.acknowledged) for t in r.schema.type_mismatches] == [("v", "DOUBLE", False)]
    assert r.causes["type_mismatch"] == 1 and _counts(r) == (2, 0, 2)
    r = rec(left, right, coerce={"v": "DOUBLE"}, rules={"v": "abs:0.001"})
    assert r.causes["type_mismatch"] == 0 and _counts(r) == (1, 1, 1)


def test_string_vs_timestamp_is_compared_as_text_and_coercion_checks_each_value() -> None:
    t = datetime(2024, 5, 1, 2, 0)
    left = table(id=[1, 2, 3], ts=[t, t, t])
    right = table(id=[1, 2, 3], ts=["2024-05-01 02:00:00", "2024-05-01 02:00:01", "garbage"])
    r = rec(left, right)
    assert r.schema.type_mismatches[0].compared_as == "VARCHAR"
    col = r.columns[0]
    assert (col.mismatches, col.null_vs_value) == (2, 0)  # text is never parsed implicitly
    r = rec(left, right, coerce={"ts": "TIMESTAMP"})
    col = r.columns[0]
    # 'garbage' does not convert: a difference showing the raw text, never a NULL.
    assert (col.mismatches, col.null_vs_value, col.lossy_right) == (2, 0, 1)
    shown = {s.key[0][1]: s.values[0][2] for s in r.samples}
    assert shown[3] == "garbage" and any("loses information" in n for n in r.notes)


def test_decimal_widths_are_the_same_family_not_a_mismatch() -> None:
    left = pa.table({"id": [1, 2], "v": pa.array([D("1.5"), D("2.5")], pa.decimal128(5, 1))})
    right = pa.table({"id": [1, 2], "v": pa.array([D("1.50"), D("2.51")], pa.decimal128(18, 2))})
    r = rec(left, right)
    assert r.schema.type_mismatches == () and r.columns[0].compared_as == "DECIMAL(18,2)"
    assert _counts(r) == (1, 0, 1)


def test_rule_that_does_not_fit_its_column_is_an_error() -> None:
    with pytest.raises(RuleError, match="does not fit column 's'"):
        rec(table(id=[1], s=["a"]), table(id=[1], s=["a"]), rules={"s": "abs:1"})


def test_unknown_columns_in_options_are_errors() -> None:
    with pytest.raises(SpecError, match="exist on neither side"):
        rec(AMOUNTS, AMOUNTS, ignore=["nope"])
    with pytest.raises(SpecError, match="renamed column"):
        rec(AMOUNTS, AMOUNTS, rename={"nope": "v"})


@pytest.mark.parametrize("text", ["abs:x", "abs:-1", "rel:nan", "skew:2 days", "norm:upper", "bogus:1"])
def test_bad_rules_raise_rule_error(text: str) -> None:
    with pytest.raises(RuleError):
        parse_rule(text)


def test_registry_order_and_round_trip() -> None:
    assert [r.prefix for r in RULES] == ["exact", "abs", "rel", "skew", "norm", "null"]
    for rule in (Exact(), AbsoluteTolerance(D("0.5")), RelativeTolerance(D("0.01")),
                 TimestampSkew(250_000), Normalise(True, False), NullAs("0")):  # fmt: skip
        assert parse_rule(rule.describe()) == rule
        assert isinstance(rule.explains("l", "r", "DOUBLE", Params()), str)
