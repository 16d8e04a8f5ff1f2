"""dualrun and datacompy count the same differences on the same generated pair."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.comparators.conftest import rec

datacompy = pytest.importorskip("datacompy")


def generated_pair(n: int = 5000, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    left = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "qty": rng.integers(0, 100, n),
            "price": rng.normal(100, 30, n).round(2),
            "label": rng.choice(["a", "b", "c", "d"], n).astype(object),
            "note": rng.choice(np.array(["x", "y", None], dtype=object), n),
        }
    )
    right = left.copy()
    change = rng.choice(n, n // 50, replace=False)
    right.loc[change[0::3], "qty"] += 1
    right.loc[change[1::3], "price"] += rng.choice([0.001, 0.5], len(change[1::3]))
    right.loc[change[2::3], "label"] = "z"
    right.loc[change[::7], "note"] = None
    missing = rng.choice(n, n // 100, replace=False)
    right = right.drop(index=missing)
    extra = left.sample(n // 200, random_state=seed).assign(id=lambda d: d["id"] + n)
    return left, pd.concat([right, extra], ignore_index=True)


def test_counts_agree_with_datacompy() -> None:
    left, right = generated_pair()
    theirs = datacompy.PandasCompare(left, right, join_columns=["id"], abs_tol={"price": 0.01})
    ours = rec(left, right, rules={"price": "abs:0.01"})
    assert ours.only_in_left == len(theirs.df1_unq_rows) > 0
    assert ours.only_in_right == len(theirs.df2_unq_rows) > 0
    assert ours.mismatched_rows == len(theirs.all_mismatch()) > 0
    unequal = {s["column"]: int(s["unequal_cnt"]) for s in theirs.column_stats}
    assert {c.name: c.mismatches for c in ours.columns} == {c: unequal[c] for c in ("qty", "price", "label", "note")}
    assert ours.columns[1].within_tolerance > 0  # the 0.001 nudges


def test_one_cent_on_double_is_where_dualrun_deliberately_differs() -> None:
    """datacompy checks abs_tol on the binary difference (1.01 - 1.00 = 0.010000000000000009),
    so it rejects one-cent pairs depending on their binary forms; dualrun reads a tolerance
    written as a decimal on each value's shortest decimal form and accepts every one."""
    left = pd.DataFrame({"id": [1, 2, 3, 4], "amount": [1.00, 100.10, 0.30, 2.50]})
    right = pd.DataFrame({"id": [1, 2, 3, 4], "amount": [1.01, 100.11, 0.31, 2.51]})
    theirs = datacompy.PandasCompare(left, right, join_columns=["id"], abs_tol=0.01)
    ours = rec(left, right, rules={"amount": "abs:0.01"})
    assert len(theirs.all_mismatch()) == 3
    assert (ours.mismatched_rows, ours.within_tolerance_rows) == (0, 4)


def test_text_against_number_differs_from_datacompy_only_where_the_text_is_the_number() -> None:
    """Both keep '02134' apart from 2134. datacompy also counts '90210' vs 90210 (any text
    against any number); dualrun compares text with the number's exact text, so that row is
    equal, and reports the column's type mismatch as its own unexplained cause instead."""
    left = pd.DataFrame({"id": [1, 2], "zip": ["02134", "90210"]})
    right = pd.DataFrame({"id": [1, 2], "zip": [2134, 90210]})
    theirs = datacompy.PandasCompare(left, right, join_columns=["id"])
    ours = rec(left, right)
    assert len(theirs.all_mismatch()) == 2
    assert (ours.mismatched_rows, ours.causes["type_mismatch"], ours.verdict) == (1, 1, "differences")
