"""The window: change events whose effect on an output may or may not show yet (design-byo §3, §4.2).

A window is the set of CDC change events between a lower fence and an upper one: CDC offsets per
partition for a stream without positions (the offset fence, `migrate.fence`), source positions
for an external batch run bracketed by `batch mark` (`migrate.bracket`). Whatever the fences are, the rule is
the same: an output's **lineage** (`migrate.spec.lineage`) maps each window event's before and
after images to output rows; the keys of those rows, on either side, are **in flight**. Every other
key is compared exactly, and any difference there is a defect (exact under design-byo §3's claim:
an exactly-once job, a complete lineage).

`in_flight_keys` computes the in-flight keys in DuckDB (the reconciliation then leaves them out of
both sides); `classify` is the whole decision per key with exact equality, for tests and for
callers without tolerances; `Coverage` counts verified and in-flight keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from comparators.sql import ident, idents
from migrate.errors import DualrunError, SpecError
from migrate.spec.lineage import ALL, TableLineage

KeyTuple = tuple[Any, ...]


@dataclass(frozen=True)
class WindowEvent:
    """One change inside the window: its source table (`database.table`) and row images (None:
    no such image, e.g. `before` of an insert); `row`, the source row's primary key (Debezium's
    message key) when known, tells changes of one row from changes of several."""

    table: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    row: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Window:
    """The change events between two fences. `kind` says what the fences are: "offsets"
    (`topic[partition]` -> Kafka offset) or "positions" (source positions, as text)."""

    kind: str
    lower: Mapping[str, int | str]
    upper: Mapping[str, int | str]
    events: tuple[WindowEvent, ...] = ()
    overshoot: int = 0  # of `events`: below the lower fence, yet past the batch position (redelivered)

    @property
    def size(self) -> int:
        return len(self.events)

    def per_table(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event.table] = counts.get(event.table, 0) + 1
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "lower": dict(self.lower), "upper": dict(self.upper), "events": self.size,
            "events_per_table": self.per_table(), **({"overshoot": self.overshoot} if self.overshoot else {}),
        }  # fmt: skip


@dataclass(frozen=True)
class Coverage:
    """Keys compared exactly (`verified`, outside the window) and keys left out as in flight."""

    verified: int
    in_flight: int

    @property
    def keys(self) -> int:
        return self.verified + self.in_flight

    @property
    def ratio(self) -> float:
        """verified / all keys; 1.0 for an empty output (nothing left unverified)."""
        return self.verified / self.keys if self.keys else 1.0

    def __add__(self, other: Coverage) -> Coverage:
        return Coverage(self.verified + other.verified, self.in_flight + other.in_flight)

    def to_dict(self) -> dict[str, Any]:
        return {"verified_keys": self.verified, "in_flight_keys": self.in_flight, "coverage": round(self.ratio, 6)}


def _numbered(events: Sequence[WindowEvent]) -> dict[str, list[dict[str, Any]]]:
    """Per table, every before and after image with `__row`, its source row's number: one per
    (table, primary key); an event without `row` counts as a row of its own."""
    numbers: dict[tuple[str, Any], int] = {}
    images: dict[str, list[dict[str, Any]]] = {}
    for i, event in enumerate(events):
        row = numbers.setdefault((event.table, event.row if event.row is not None else ("#event", i)), len(numbers))
        for image in (event.before, event.after):
            if image is not None:
                images.setdefault(event.table, []).append({**image, "__row": row})
    return images


def _typed(rows: list[dict[str, Any]], table: str) -> pa.Table:
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DualrunError(f"the window's changes of {table} could not be typed for the lineage: {exc}") from None


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> set[str]:
    return {str(row[0]) for row in con.execute(f"DESCRIBE {ident(name)}").fetchall()}


def lineage_rows(
    output: str,
    keys: Sequence[str],
    sides: Sequence[pa.Table],
    window: Window,
    lineage: Mapping[str, TableLineage],
) -> pa.Table:
    """The window's lineage evaluated on `sides` (batch and stream output, current rows): the
    distinct keys of rows on any side whose lineage columns equal a lineage expression evaluated on
    a window event's before or after image, each with `changed_rows` (BIGINT), the number of
    distinct source rows (table and primary key, `WindowEvent.row`) among the events naming it. A
    table mapped to `all` names every key of every side with all of its changed rows. Sorted by key.

    Expressions run in DuckDB with TimeZone UTC (a verdict never depends on the machine). Raises
    SpecError when the lineage names a column the output lacks or an expression does not bind to
    the change's columns (an incomplete or wrong lineage is a spec error, said as such).
    """
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        names = []
        for i, side in enumerate(sides):
            con.register(f"side_{i}", side)
            names.append(f"side_{i}")
        key_cols = idents(keys)
        all_keys = " UNION ".join(f"SELECT {key_cols} FROM {ident(n)}" for n in names)
        images = _numbered(window.events)
        hits: list[str] = []
        whole = 0  # changed rows of tables mapped to `all`: every key counts them
        for t, (table, mapping) in enumerate(sorted(lineage.items())):
            if table not in images:
                continue
            if mapping == ALL:
                whole += len({image["__row"] for image in images[table]})
                continue
            assert isinstance(mapping, dict)
            image = f"image_{t}"
            con.register(image, _typed(images[table], table))
            where = f"outputs.{output}.lineage.{table}"
            for n in names:
                missing = sorted(set(mapping) - _columns(con, n))
                if missing:
                    raise SpecError(f"{where}: {missing[0]!r} is not a column of output {output}; map output columns")
            targets = f"targets_{t}"
            select = ", ".join(f"({expr}) AS {ident(col)}" for col, expr in mapping.items())
            try:
                con.execute(
                    f'CREATE TEMP TABLE {ident(targets)} AS SELECT DISTINCT {select}, "__row" FROM {ident(image)}'
                )
            except duckdb.Error as exc:
                reason = str(exc).splitlines()[0]
                raise SpecError(f"{where}: the expressions do not apply to the changes of {table}: {reason}") from None
            cols = idents(list(mapping))
            for n in names:
                hits.append(
                    f'SELECT {key_cols}, "__row" FROM (SELECT {key_cols}, {cols} FROM {ident(n)}) '
                    f"JOIN {ident(targets)} USING ({cols})"
                )
        counted = [f'SELECT {key_cols}, count(DISTINCT "__row") AS n FROM ({" UNION ".join(hits)}) GROUP BY ALL']
        if whole:
            counted.append(f"SELECT {key_cols}, {whole} AS n FROM ({all_keys})")
        elif not hits:
            return con.sql(f"SELECT {key_cols}, 0::BIGINT AS changed_rows FROM ({all_keys}) LIMIT 0").to_arrow_table()
        union = " UNION ALL ".join(counted[1:] if not hits else counted)
        return con.sql(
            f"SELECT {key_cols}, sum(n)::BIGINT AS changed_rows FROM ({union}) GROUP BY ALL ORDER BY ALL"
        ).to_arrow_table()


def in_flight_keys(
    output: str,
    keys: Sequence[str],
    sides: Sequence[pa.Table],
    window: Window,
    lineage: Mapping[str, TableLineage],
) -> pa.Table:
    """The distinct keys the window's lineage names on `sides` (`lineage_rows` without the counts):
    in flight, to be left out of both sides. SpecError as `lineage_rows`."""
    return lineage_rows(output, keys, sides, window, lineage).select(list(keys))


def unpredicted_keys(
    output: str,
    keys: Sequence[str],
    sides: Sequence[pa.Table],
    written: pa.Table,
    window: Window,
    lineage: Mapping[str, TableLineage],
) -> pa.Table:
    """The lineage self-check: the distinct keys of `written` (output records written inside the
    window, so by its change events) that the window's lineage, evaluated on `sides` and `written`,
    does not name. Any means the lineage is incomplete (a table missing, a wrong expression). Sorted."""
    named = in_flight_keys(output, keys, (*sides, written), window, lineage)
    cols = idents(keys)
    with duckdb.connect() as con:
        con.register("written", written.select(list(keys)))
        con.register("named", named)
        return con.sql(
            f"SELECT DISTINCT {cols} FROM written ANTI JOIN named USING ({cols}) ORDER BY ALL"
        ).to_arrow_table()


def key_coverage(keys: Sequence[str], sides: Sequence[pa.Table], flying: pa.Table) -> Coverage:
    """Coverage of one output: its distinct keys over `sides`, less the `flying` ones (in flight)."""
    with duckdb.connect() as con:
        for i, side in enumerate(sides):
            con.register(f"side_{i}", side)
        union = " UNION ".join(f"SELECT {idents(keys)} FROM side_{i}" for i in range(len(sides)))
        row = con.execute(f"SELECT count(*) FROM ({union})").fetchone()
    total = int(row[0]) if row else 0
    return Coverage(max(0, total - flying.num_rows), flying.num_rows)


@dataclass(frozen=True)
class Classification:
    """Every key of one output, decided: equal outside the window, a defect outside it, or in flight."""

    output: str
    verified_equal: tuple[KeyTuple, ...]
    defects: tuple[KeyTuple, ...]
    in_flight: tuple[KeyTuple, ...]

    @property
    def coverage(self) -> Coverage:
        return Coverage(len(self.verified_equal) + len(self.defects), len(self.in_flight))

    @property
    def verdict(self) -> str:
        return "differences" if self.defects else "clean"

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output, "verdict": self.verdict, **self.coverage.to_dict(),
            "defects": [list(k) for k in self.defects], "in_flight": [list(k) for k in self.in_flight],
        }  # fmt: skip


def _by_key(table: pa.Table, keys: Sequence[str]) -> dict[KeyTuple, dict[str, Any]]:
    return {tuple(row[k] for k in keys): row for row in table.to_pylist()}


def classify(
    output: str,
    keys: Sequence[str],
    batch: pa.Table,
    stream: pa.Table,
    window: Window,
    lineage: Mapping[str, TableLineage],
) -> Classification:
    """Decide every key of `batch` and `stream` (current rows, one per key) with exact equality of
    all columns: in flight when in the window's lineage, else equal or a defect (a row on one side
    only is a defect too)."""
    flying = {tuple(row.values()) for row in in_flight_keys(output, keys, (batch, stream), window, lineage).to_pylist()}
    left, right = _by_key(batch, keys), _by_key(stream, keys)
    equal: list[KeyTuple] = []
    defects: list[KeyTuple] = []
    for key in sorted(set(left) | set(right), key=repr):
        if key in flying:
            continue
        (equal if left.get(key) == right.get(key) else defects).append(key)
    return Classification(output, tuple(equal), tuple(defects), tuple(sorted(flying, key=repr)))
