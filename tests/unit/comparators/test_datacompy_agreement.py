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
