"""Wording shared by the human-readable renderers."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from decimal import Decimal  # noqa: F401 (doctest)
from typing import Any

from comparators.result import EXPLAINED_CAUSES, Reconciliation, Sample, jsonable

CAUSE_TITLES = {
    "missing_in_stream": "missing in stream (key only in left)",
    "missing_in_batch": "missing in batch (key only in right)",
    "duplicate_key": "duplicate keys",
    "value_mismatch": "value mismatch (rows)",
    "schema_drift": "schema drift (columns on one side)",
    "type_mismatch": "type mismatch (columns, not coerced)",
    "aggregate_mismatch": "aggregate mismatch (partitions)",
    "within_tolerance": "within tolerance (rows)",
    "in_flight": "in flight (rows)",
}


def further_side(name: str | None) -> str | None:
    """The side a comparison named `<pipeline>/<output>@<side>` checks (its right side; its left
    side is the output's stream, what feeds it), else None for batch vs stream.

    >>> further_side("shop/orders_enriched@sink"), further_side("shop/orders_enriched"), further_side(None)
    ('sink', None, None)
    """
    if not name:
        return None
    head, sep, side = name.rpartition("@")
    return side if sep and "/" in head else None


def side_titles(name: str | None) -> tuple[str, str]:
    """What the left and right sides of a comparison are, for headings and cause titles.

    >>> side_titles("shop/orders_enriched@sink"), side_titles("shop/orders_enriched")
    (('stream', 'sink'), ('batch', 'stream'))
    """
    side = further_side(name)
    return ("stream", side) if side else ("batch", "stream")


def cause_title(cause: str, name: str | None = None) -> str:
    """A cause's title; a further side's keys on one side only say which side (`missing in sink`).

    >>> cause_title("missing_in_stream", "shop/orders@sink"), cause_title("missing_in_batch", "shop/orders@sink")
    ('missing in sink (key only in left)', 'only in sink (key only in right)')
    """
    side = further_side(name)
    if side and cause == "missing_in_stream":
        return f"missing in {side} (key only in left)"
    if side and cause == "missing_in_batch":
        return f"only in {side} (key only in right)"
    return CAUSE_TITLES.get(cause, cause)


def row_counts(names: list[str], results: list[Reconciliation]) -> tuple[list[str], list[list[str]]]:
    """Summary columns of row counts, one per side ("batch rows", "stream rows", then one per
    further side present, e.g. "sink rows"), and each comparison's cells ("–": not its side).
    """
    sides = list(dict.fromkeys(s for s in (further_side(n) for n in names) if s))
    titles = ["batch", "stream", *sides]
    cells = []
    for name, result in zip(names, results, strict=True):
        left, right = side_titles(name)
        counts = {left: result.left.rows, right: result.right.rows}
        cells.append([f"{counts[t]:,}" if t in counts else "–" for t in titles])
    return [f"{t} rows" for t in titles], cells


def cause_tag(cause: str, name: str | None = None) -> str:
    """A sample's cause as shown next to it; a further side's keys on one side only say which side.

    >>> cause_tag("missing_in_batch", "shop/orders@sink"), cause_tag("missing_in_batch", "shop/orders")
    ('only_in_sink', 'missing_in_batch')
    """
    side = further_side(name)
    if side and cause in ("missing_in_stream", "missing_in_batch"):
        return f"{'missing_in' if cause == 'missing_in_stream' else 'only_in'}_{side}"
    return cause


# Text that would read as something else if shown bare.
_RESERVED = {"NULL", "NONE", "NAN", "-NAN", "INF", "-INF", "INFINITY", "-INFINITY", "TRUE", "FALSE", "-0", "-0.0"}
_VISIBLE_CATEGORIES = ("L", "N", "P", "S")  # letters, numbers, punctuation, symbols (not marks)


def _escape(ch: str, ascii_only: bool) -> str:
    if ch in "'\\":
        return "\\" + ch
    cat = unicodedata.category(ch)
    if ch == " " or (cat[0] in _VISIBLE_CATEGORIES and not (ascii_only and ord(ch) > 127)):
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def text(v: str) -> str:
    """Text as a person can tell it from any other text, NULL and numbers: bare when
    plain, else quoted with invisible characters, marks and blanks made visible (and
    every non-ASCII character escaped when the text is not in Unicode NFC form).

    >>> [text(t) for t in ("paid", "NULL", "a ", "caf\u00e9", "cafe\u0301", "x\u200by", "")]
    ['paid', "'NULL'", "'a '", 'café', "'cafe\\\\u0301'", "'x\\\\u200by'", "''"]
    """
    ascii_only = unicodedata.normalize("NFC", v) != v
    # A space after a space is escaped: HTML and Markdown collapse runs of blanks.
    escaped = "".join(
        "\\x20" if ch == " " and i and v[i - 1] == " " else _escape(ch, ascii_only) for i, ch in enumerate(v)
    )
    plain = escaped == v and v and v == v.strip() and v.upper() not in _RESERVED and "'" not in v
    return v if plain else f"'{escaped}'"


def value(v: Any) -> str:
    """One value for the human-readable formats; NULL is the SQL NULL, never text.

    >>> [value(x) for x in (None, "NULL", -0.0, float("nan"), b"\\x04\\x01")]
    ['NULL', "'NULL'", '-0.0', 'nan', '0x0401']
    """
    if v is None:
        return "NULL"
    if isinstance(v, str):
        return text(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bytes):
        return "0x" + v.hex()
    out = jsonable(v)
    return out if isinstance(out, str) else str(out)


def key_text(key: Iterable[tuple[str, Any]]) -> str:
    """A key as every renderer and the CLI show it: `column=value` pairs (values as `value` shows
    them), never a Python tuple.

    >>> key_text([("order_id", "A-1")]), key_text([("customer_id", 7), ("day", None)])
    ('order_id=A-1', 'customer_id=7, day=NULL')
    """
    return ", ".join(f"{column}={value(v)}" for column, v in key)


def values(left: Any, right: Any) -> tuple[str, str]:
    """Two values shown side by side: when they would look the same but differ (a DECIMAL
    and its text, a float and a string), each also says its type.

    >>> values(Decimal("10.25"), "10.25")
    ('10.25 (Decimal)', '10.25 (str)')
    """
    lv, rv = value(left), value(right)
    if lv == rv and (type(left) is not type(right) or repr(left) != repr(right)):
        return f"{lv} ({type(left).__name__})", f"{rv} ({type(right).__name__})"
    return lv, rv


def headline(result: Reconciliation) -> str:
    if result.verdict == "clean":
        return "CLEAN: no unexplained differences"
    if result.not_compared is not None:
        return f"NOT COMPARED ({result.not_compared[0]}): {result.not_compared[1]}"
    return f"DIFFERENCES: {result.unexplained} unexplained"


def cause_rows(result: Reconciliation) -> list[tuple[str, int, str]]:
    rows = []
    for cause, count in result.causes.items():
        note = "explained" if cause in EXPLAINED_CAUSES else ("" if not count else "unexplained")
        if cause == "duplicate_key" and count:
            note += (
                f" (left {result.left.duplicate_keys} keys/{result.left.duplicate_rows} rows,"
                f" right {result.right.duplicate_keys} keys/{result.right.duplicate_rows} rows)"
            )
        rows.append((cause_title(cause, result.name), count, note))
    return rows


def sample_line(s: Sample) -> str:
    key = key_text(s.key)
    if s.cause == "duplicate_key":
        return f"{key}: {s.left_count} rows in left, {s.right_count} in right"
    if s.cause == "missing_in_stream":
        vals = ", ".join(f"{c}={value(lv)}" for c, lv, _ in s.values)
        return f"{key}: left has {vals}" if vals else key
    if s.cause == "missing_in_batch":
        vals = ", ".join(f"{c}={value(rv)}" for c, _, rv in s.values)
        return f"{key}: right has {vals}" if vals else key
    diffs = "; ".join(f"{c}: {' -> '.join(values(lv, rv))}" for c, lv, rv in s.values)
    return f"{key}: {diffs}"
