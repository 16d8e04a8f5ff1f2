"""Plain-text report for people: summary first, then causes, columns, samples."""

from __future__ import annotations

from comparators.report._common import cause_rows, cause_tag, headline, sample_line, side_titles, value
from comparators.result import Reconciliation


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return ["  " + fmt.format(*header).rstrip()] + ["  " + fmt.format(*r).rstrip() for r in rows]


def _body(result: Reconciliation, title: str) -> list[str]:
    out = [f"{title}: {headline(result)}"]
    sides = side_titles(result.name)
    names = (f"left  ({sides[0]})", f"right ({sides[1]})")
    width = max(map(len, names))
    for what, side in ((names[0].ljust(width), result.left), (names[1].ljust(width), result.right)):
        at = f" at {side.position}" if side.position else ""
        out.append(f"  {what} {side.rows:>12,} rows  {side.label}{at}")
    out.append(f"  keys: {', '.join(result.keys)}; matched keys: {result.matched_rows:,}")
    out += ["", "Causes"]
    out += _table(["cause", "count", ""], [[t, f"{c:,}", n] for t, c, n in cause_rows(result)])
    if result.columns:
        out += ["", "Columns"]
        rows = [
            [
                c.name + (f" (right: {c.right_name})" if c.right_name else ""),
                c.compared_as,
                ",".join(c.rules) or "exact",
                f"{c.mismatches:,}",
                f"{c.within_tolerance:,}",
                f"{c.null_vs_value:,}",
                "" if c.max_abs_diff is None else value(c.max_abs_diff),
            ]
            for c in result.columns
        ]
        header = ["column", "compared as", "rules", "mismatches", "within tol", "null/value",
                  "max |diff|"]  # fmt: skip
        out += _table(header, rows)
    if result.notes:
        out += ["", "How values were compared"] + [f"  {n}" for n in result.notes]
    schema = result.schema
    if schema.only_in_left or schema.only_in_right or schema.type_mismatches:
        out += ["", "Schema"]
        if schema.only_in_left:
            out.append(f"  only in left: {', '.join(schema.only_in_left)}")
        if schema.only_in_right:
            out.append(f"  only in right: {', '.join(schema.only_in_right)}")
        for t in schema.type_mismatches:
            how = "coerced as asked" if t.acknowledged else "not coerced: add --coerce"
            out.append(f"  {t.column}: left {t.left_type}, right {t.right_type}, compared as {t.compared_as} ({how})")
    if result.aggregates:
        agg = result.aggregates
        out += [
            "",
            f"Partitions by {agg.column}: {len(agg.differing):,} of {agg.partitions:,} differ",
        ]
        for p in agg.differing[:20]:
            sums = "; ".join(f"sum {c} {value(lv)} vs {value(rv)}" for c, lv, rv in p.sums)
            fp = "" if p.fingerprint_equal else "fingerprint differs"
            detail = ", ".join(x for x in (f"rows {p.left_rows:,} vs {p.right_rows:,}", sums, fp) if x)
            out.append(f"  {value(p.value)}: {detail}")
    if result.samples:
        out += ["", "Samples"]
        for s in result.samples:
            out.append(f"  [{cause_tag(s.cause, result.name)}] {sample_line(s)}")
    return out


def render_text(result: Reconciliation) -> str:
    out = _body(result, f"reconcile {result.name}" if result.name else "reconcile")
    for what, noise in result.baselines:
        out += ["", "=" * 72, f"Noise baseline, {what} (not part of the verdict)"]
        out += _body(noise, "baseline")
    return "\n".join(out) + "\n"
