"""Every key of an externally computed batch output, decided against the stream (design-byo §4.2).

The external job read the source at unknown times inside its bracket [P_lo, P_hi]
(`migrate.bracket`). The window is the CDC change events with a position in the bracket (kind
"positions", `migrate.window`); its lineage names the **window keys**.

* A key outside the window: its lineage did not change inside the bracket, so the source state it
  depends on was the same at every point the job may have read; the stream's value as of P_hi is
  compared exactly (exact equality of every column), and any difference is a **defect**.
* A window key ("changed during the batch window") is still tested when the stream carries
  positions: the batch value must equal some stream version valid at a point inside the bracket
  (the version current at P_lo, or one written in it; an absent row counts as a version too):
  - equal to one: **consistent**;
  - equal to none, with one changed lineage row (source row) for that key: a **defect** (one row
    changing means every point of the bracket saw one of those versions);
  - equal to none, two or more changed rows: **unresolvable**: the batch did not read at one point
    (a non-snapshot read of an order before and its customer after a change is a combination that
    never existed), reported as such, never a defect;
  - without stream positions: **untested** (in flight).

The stream side is given as its versions; `versions_in_bracket` computes them from a changelog.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from comparators.sql import describe, ident, idents
from migrate.spec.lineage import ALL, TableLineage
from migrate.window import Coverage, KeyTuple, Window, in_flight_keys

OUTCOMES = ("consistent", "defect", "unresolvable", "untested")
Row = dict[str, Any] | None  # a version's values; None: no row for the key at that point


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
    """Every key of one output: outside the window equal or a defect; window keys tested."""

    output: str
    verified_equal: tuple[KeyTuple, ...]
    defects: tuple[KeyTuple, ...]  # outside the window
    window: tuple[WindowKey, ...]

    def outcome(self, name: str) -> tuple[KeyTuple, ...]:
        return tuple(w.key for w in self.window if w.outcome == name)

    @property
    def window_defects(self) -> tuple[KeyTuple, ...]:
        return self.outcome("defect")

    @property
    def coverage(self) -> Coverage:
        """Verified: compared exactly outside the window; every window key counts as in flight."""
        return Coverage(len(self.verified_equal) + len(self.defects), len(self.window))

    @property
    def verdict(self) -> str:
        return "differences" if self.defects or self.window_defects else "clean"

    def to_dict(self) -> dict[str, Any]:
        counts = {name: len(self.outcome(name)) for name in OUTCOMES}
        return {
            "output": self.output, "verdict": self.verdict, **self.coverage.to_dict(),
            "defects": [list(k) for k in self.defects], "window_keys": counts,
            "window": [w.to_dict() for w in self.window],
        }  # fmt: skip


def changed_rows(
    output: str,
    keys: Sequence[str],
    sides: Sequence[pa.Table],
    window: Window,
    lineage: Mapping[str, TableLineage],
) -> dict[KeyTuple, int]:
    """Per window key, the number of distinct source rows (table and primary key) among the window's
    events whose lineage names it. An event without `row` counts as a row of its own (more rows
    only turn a would-be defect into "unresolvable", never the other way).

    One DuckDB pass per table: each image carries its row's number; the keys of side rows whose
    lineage columns equal an image's expressions are counted per distinct row number."""
    rows: dict[tuple[str, Any], int] = {}
    images: dict[str, list[dict[str, Any]]] = {}
    for i, event in enumerate(window.events):
        ident_ = (event.table, event.row if event.row is not None else ("#event", i))
        number = rows.setdefault(ident_, len(rows))
        for image in (event.before, event.after):
            if image is not None:
                images.setdefault(event.table, []).append({**image, "__row": number})
    counts: dict[KeyTuple, int] = {}
    every = [tuple(r[k] for k in keys) for side in sides for r in side.select(list(keys)).to_pylist()]
    for table, found in sorted(images.items()):
        mapping = lineage.get(table)
        if mapping is None:
            continue
        if mapping == ALL:
            changed = len({r["__row"] for r in found})
            for key in set(every):
                counts[key] = counts.get(key, 0) + changed
            continue
        assert isinstance(mapping, dict)
        # in_flight_keys first: it raises the spec errors (unknown column, expression that does not bind).
        one = Window(window.kind, window.lower, window.upper, tuple(e for e in window.events if e.table == table))
        in_flight_keys(output, keys, sides, one, {table: mapping})
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            con.register("images", pa.Table.from_pylist(found))
            select = ", ".join(f"({expr}) AS {ident(col)}" for col, expr in mapping.items())
            con.execute(f'CREATE TEMP TABLE targets AS SELECT DISTINCT {select}, "__row" FROM images')
            cols = idents(list(mapping))
            union = " UNION ".join(f"SELECT {idents(keys)}, {cols} FROM side_{n}" for n in range(len(sides)))
            for n, side in enumerate(sides):
                con.register(f"side_{n}", side)
            result = con.execute(
                f'SELECT {idents(keys)}, count(DISTINCT "__row") FROM ({union}) JOIN targets USING ({cols}) '
                f"GROUP BY ALL"
            ).fetchall()
        for row in result:
            key = tuple(row[: len(keys)])
            counts[key] = counts.get(key, 0) + int(row[-1])
    return counts


def _by_key(table: pa.Table, keys: Sequence[str]) -> dict[KeyTuple, dict[str, Any]]:
    return {tuple(row[k] for k in keys): row for row in table.to_pylist()}


def classify_bracket(
    output: str,
    keys: Sequence[str],
    batch: pa.Table,
    stream: pa.Table,
    versions: Mapping[KeyTuple, Sequence[Row]] | None,
    window: Window,
    lineage: Mapping[str, TableLineage],
) -> BracketClassification:
    """Decide every key of `batch` and `stream` (the stream's current rows as of P_hi, one per key).

    `versions`: per key, the stream's values valid at some point inside the bracket (see
    `versions_in_bracket`; a key it lacks had no row at any point), or None when the stream carries
    no positions (window keys are then untested). Values compare with exact equality of every
    column (Decimal('1.50') == Decimal('1.5'): equal numbers are equal)."""
    counts = changed_rows(output, keys, (batch, stream), window, lineage)
    left, right = _by_key(batch, keys), _by_key(stream, keys)
    equal: list[KeyTuple] = []
    defects: list[KeyTuple] = []
    tested: list[WindowKey] = []
    for key in sorted(set(left) | set(right) | set(counts), key=repr):
        if key not in counts:
            (equal if left.get(key) == right.get(key) else defects).append(key)
            continue
        if versions is None:
            tested.append(WindowKey(key, "untested", counts[key], 0))
            continue
        valid = list(versions.get(key, (None,)))
        # One changed row: every point of the bracket saw one of the versions, so none matching is a defect.
        outcome = "consistent" if left.get(key) in valid else "defect" if counts[key] == 1 else "unresolvable"
        tested.append(WindowKey(key, outcome, counts[key], len(valid)))
    return BracketClassification(output, tuple(equal), tuple(defects), tuple(tested))


def versions_in_bracket(
    con: duckdb.DuckDBPyConnection, log: str, keys: Sequence[str], wanted: pa.Table, lo: int, hi: int
) -> dict[KeyTuple, list[Row]]:
    """The versions of each key of `wanted` valid inside [lo, hi] (`__pos_order` values) in the
    changelog `log` registered on `con` (the changelog contract of `comparators.changelog`): the
    version current just before lo (None when none, or deleted) and every version written at a
    position in [lo, hi] (None for a delete). Snapshot rows without a position come first."""
    con.register("wanted_keys", wanted.select(list(keys)))
    values = [c for c, _ in describe(con, log) if not c.startswith("__")]
    rows = con.execute(
        f'SELECT {idents(values)}, "__op", "__pos_order" FROM {ident(log)} SEMI JOIN wanted_keys '
        f'USING ({idents(keys)}) WHERE "__pos_order" IS NULL OR "__pos_order" <= ? '
        f'ORDER BY {idents(keys)}, "__pos_order" NULLS FIRST, "__processed_at"',
        [hi],
    ).fetchall()
    found: dict[KeyTuple, list[Row]] = {}
    before: dict[KeyTuple, Row] = {}
    width = len(values)
    for row in rows:
        data = dict(zip(values, row[:width], strict=True))
        op, order = row[width], row[width + 1]
        key = tuple(data[k] for k in keys)
        value = None if op == "d" else data
        if order is None or order < lo:
            before[key] = value
        else:
            found.setdefault(key, []).append(value)
    for row in wanted.select(list(keys)).to_pylist():
        key = tuple(row[k] for k in keys)
        found[key] = [before.get(key), *found.get(key, [])]
    return found
