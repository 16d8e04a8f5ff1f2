"""Every key of an externally computed batch output, decided against the stream (design-byo §4.2).

The external job read the source at unknown times inside its bracket [P_lo, P_hi]
(`migrate.bracket`). The window is the CDC change events with a position in the bracket (kind
"positions", `migrate.window`); its lineage names the **window keys**, each with the number of
its lineage rows (source rows) that changed in the bracket (`migrate.window.lineage_rows`).

* A key outside the window: its lineage did not change inside the bracket, so the source state it
  depends on was the same at every point the job may have read; the stream's value as of P_hi is
  reconciled with it exactly as `dualrun reconcile` does (`comparators.reconcile`, with the
  output's `tolerances` and `ignore`), and any unexplained difference is a **defect**.
* A window key ("changed during the batch window") is still tested when the stream carries
  positions: the batch value must match, under the same rules (`comparators.membership`), some
  stream version valid at a point inside the bracket (the version current at P_lo, or one written
  in it; an absent row counts as a version too):
  - matching one: **consistent**;
  - matching none, with one changed lineage row for that key: a **defect** (one row changing
    means every point of the bracket saw one of those versions); it is reconciled with the
    stream's value as of P_hi like a key outside the window, so it shows among the differences;
  - matching none, two or more changed rows: **unresolvable**: the batch did not read at one point
    (a non-snapshot read of an order before and its customer after a change is a combination that
    never existed), reported as such, never a defect;
  - without stream positions: **untested** (in flight).

The stream side is given as its versions; `versions_in_bracket` computes them from a changelog.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from comparators import FrameSource, Reconciliation, Settings, reconcile
from comparators.membership import matching_keys
from comparators.sql import describe, ident, idents
from migrate.sides import WithoutKeys
from migrate.window import Coverage, KeyTuple, key_coverage

OUTCOMES = ("consistent", "defect", "unresolvable", "untested")
PRESENT = "__present"  # versions: FALSE for "no row for the key at that point"


@dataclass(frozen=True)
class WindowKey:
    """One window key's test: its outcome (one of OUTCOMES), how many of its lineage rows changed in
    the bracket, and how many stream versions were valid inside it."""

    key: KeyTuple
    outcome: str
    changed_rows: int
    versions: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": list(self.key), "outcome": self.outcome, "changed_rows": self.changed_rows,
                "versions": self.versions}  # fmt: skip


@dataclass(frozen=True)
class BracketClassification:
    """Every key of one output. `reconciliation`: batch vs the stream as of P_hi over every key
    except the window keys that are not defects (keys outside the window, compared exactly, and
    window defects); `outside`: how many keys lie outside the window; `window`: each window key's
    test; `in_flight`: the window keys (a table of the key columns, for the coverage ledger)."""

    output: str
    reconciliation: Reconciliation
    outside: int
    window: tuple[WindowKey, ...]
    in_flight: pa.Table = field(repr=False, compare=False)

    def outcome(self, name: str) -> tuple[KeyTuple, ...]:
        return tuple(w.key for w in self.window if w.outcome == name)

    @property
    def window_defects(self) -> tuple[KeyTuple, ...]:
        return self.outcome("defect")

    @property
    def coverage(self) -> Coverage:
        """Verified: compared exactly outside the window; every window key counts as in flight."""
        return Coverage(self.outside, len(self.window))

    @property
    def verdict(self) -> str:
        return self.reconciliation.verdict

    def to_dict(self) -> dict[str, Any]:
        counts = {name: len(self.outcome(name)) for name in OUTCOMES}
        return {
            "output": self.output, "verdict": self.verdict, **self.coverage.to_dict(),
            "window_keys": counts, "window": [w.to_dict() for w in self.window],
            "reconciliation": self.reconciliation.to_dict(),
        }  # fmt: skip


def _tuples(table: pa.Table, keys: Sequence[str]) -> list[KeyTuple]:
    return [tuple(row[k] for k in keys) for row in table.select(list(keys)).to_pylist()]


def _window_outcomes(
    keys: Sequence[str],
    batch: pa.Table,
    changed: pa.Table,
    versions: pa.Table | None,
    rules: Mapping[str, str] | None,
    ignore: Iterable[str],
) -> list[WindowKey]:
    """Each window key's test, in the order of `changed`'s rows (see the module docstring)."""
    counts = dict(zip(_tuples(changed, keys), changed.column("changed_rows").to_pylist(), strict=True))
    if not counts:
        return []  # no window key; an empty output's key columns may even be untyped (null), unjoinable
    if versions is None:
        return [WindowKey(key, "untested", n, 0) for key, n in counts.items()]
    wanted = batch.join(changed.select(list(keys)), list(keys), join_type="left semi")
    present = versions.filter(pc.field(PRESENT)).drop_columns([PRESENT])
    matched = set(_tuples(matching_keys(wanted, present, keys, rules=rules, ignore=ignore), keys))
    absent = set(_tuples(versions.filter(~pc.field(PRESENT)), keys))
    in_batch = set(_tuples(wanted, keys))
    valid: dict[KeyTuple, int] = {}
    for key in _tuples(versions, keys):
        valid[key] = valid.get(key, 0) + 1
    decided = []
    for key, n in counts.items():
        consistent = key in matched if key in in_batch else key in absent
        # One changed row: every point of the bracket saw one of the versions, so none matching is a defect.
        outcome = "consistent" if consistent else "defect" if n == 1 else "unresolvable"
        decided.append(WindowKey(key, outcome, n, valid.get(key, 1)))
    return decided


def classify_bracket(
    output: str,
    keys: Sequence[str],
    batch: pa.Table,
    stream: pa.Table,
    changed: pa.Table,
    versions: pa.Table | None,
    *,
    rules: Mapping[str, str] | None = None,
    ignore: Iterable[str] = (),
    partition: str | None = None,
    name: str | None = None,
    positions: tuple[str | None, str | None] = (None, None),
) -> BracketClassification:
    """Decide every key of `batch` and `stream` (the stream's current rows as of P_hi, one per key).

    `changed`: the window keys with their `changed_rows` (`migrate.window.lineage_rows`).
    `versions`: per window key, the stream's rows valid at some point inside the bracket, with
    PRESENT (see `versions_in_bracket`; a key it lacks had no row at any point), or None when the
    stream carries no positions (window keys are then untested). `rules` and `ignore` are the
    output's `tolerances` and `ignore`, applied as `dualrun reconcile` applies them, to the keys
    outside the window and to the window keys' versions alike. Raises what `reconcile` raises."""
    duplicated = set(_tuples(_duplicated(batch, keys), keys))
    tested = [
        replace(w, outcome="defect") if w.key in duplicated else w
        for w in _window_outcomes(keys, batch, changed, versions, rules, ignore)
    ]
    flying = changed.select(list(keys))
    keep = pa.array([w.outcome != "defect" for w in tested], pa.bool_())
    skip = flying.filter(keep)
    result = reconcile(
        WithoutKeys(FrameSource(batch, name=f"batch {output}"), skip),
        WithoutKeys(FrameSource(stream, name=f"stream {output} as of the end mark"), skip),
        list(keys), rules=dict(rules or {}) or None, ignore=tuple(ignore), partition=partition,
        left_position=positions[0], right_position=positions[1], name=name, settings=Settings(allow_empty=True),
    )  # fmt: skip
    # Rows read, not rows compared: the window keys left out count as in flight (one row each a side).
    result = replace(
        result, left=replace(result.left, rows=batch.num_rows), right=replace(result.right, rows=stream.num_rows),
        in_flight_rows=result.in_flight_rows + skip.num_rows,
    )  # fmt: skip
    outside = key_coverage(keys, (batch, stream), flying).verified
    return BracketClassification(output, result, outside, tuple(tested), flying)


def _duplicated(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The keys that occur more than once in `table`: a window key among them is a defect (an output
    holds one row per key), never left out as in flight."""
    with duckdb.connect() as con:
        con.register("t", table.select(list(keys)))
        return con.sql(f"SELECT {idents(keys)} FROM t GROUP BY ALL HAVING count(*) > 1").to_arrow_table()


def versions_in_bracket(
    con: duckdb.DuckDBPyConnection, log: str, keys: Sequence[str], wanted: pa.Table, lo: int, hi: int
) -> pa.Table:
    """The versions of each key of `wanted` valid inside [lo, hi] (`__pos_order` values) in the
    changelog `log` registered on `con` (the changelog contract of `comparators.changelog`): the
    version current just before lo (snapshot rows without a position count as before) and every
    version written at a position in [lo, hi]. Columns: the log's value columns (types kept:
    DECIMAL stays DECIMAL) and PRESENT, FALSE for "no row" (a delete, or no version before lo)."""
    con.register("wanted_keys", wanted.select(list(keys)))
    values = [c for c, _ in describe(con, log) if not c.startswith("__")]
    k, v = idents(keys), idents(values)
    absent = ", ".join([k, *(f"NULL AS {ident(c)}" for c in values if c not in keys)])
    return con.sql(
        f"""WITH v AS (
            SELECT {v}, "__op" <> 'd' AS {PRESENT}, "__pos_order" AS "__at", "__processed_at" AS "__seen"
            FROM {ident(log)} SEMI JOIN wanted_keys USING ({k})
            WHERE "__pos_order" IS NULL OR "__pos_order" <= $hi),
        before AS (
            SELECT * FROM v WHERE "__at" IS NULL OR "__at" < $lo
            QUALIFY row_number() OVER (PARTITION BY {k} ORDER BY "__at" DESC NULLS LAST, "__seen" DESC) = 1)
        SELECT {v}, {PRESENT} FROM before
        UNION ALL BY NAME SELECT {v}, {PRESENT} FROM v WHERE "__at" >= $lo
        UNION ALL BY NAME SELECT {absent}, FALSE AS {PRESENT} FROM wanted_keys ANTI JOIN before USING ({k})""",
        params={"lo": lo, "hi": hi},
    ).to_arrow_table()
