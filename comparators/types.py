"""Type families and the coercion that lets two differently typed columns be compared."""

from __future__ import annotations

import re
from dataclasses import dataclass

from comparators.errors import RuleError

_INTS = {
    "TINYINT": 3, "SMALLINT": 5, "INTEGER": 10, "BIGINT": 19, "HUGEINT": 39,
    "UTINYINT": 3, "USMALLINT": 5, "UINTEGER": 10, "UBIGINT": 20, "UHUGEINT": 39,
}  # fmt: skip
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?$")


def family(duck_type: str) -> str:
    """The comparison family of a DuckDB type.

    >>> [family(t) for t in ("DECIMAL(12,2)", "BIGINT", "DOUBLE", "VARCHAR", "TIMESTAMP_NS")]
    ['exact', 'exact', 'float', 'string', 'time']
    """
    t = duck_type.upper()
    if t in _INTS or _DECIMAL.match(t):
        return "exact"
    if t in ("FLOAT", "DOUBLE", "REAL"):
        return "float"
    if t == "VARCHAR" or t.startswith("VARCHAR("):
        return "string"
    if t == "TIMESTAMP WITH TIME ZONE":
        return "timestamptz"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "time"
    return t


def is_integer(duck_type: str) -> bool:
    """Whether a DuckDB type is one of the integer types.

    >>> is_integer("BIGINT"), is_integer("DECIMAL(18,0)"), is_integer("VARCHAR")
    (True, False, False)
    """
    return duck_type.upper() in _INTS


def _digits(duck_type: str) -> tuple[int, int]:
    """(integer digits, scale) an exact numeric type can hold."""
    m = _DECIMAL.match(duck_type.upper())
    if m:
        return int(m[1]) - int(m[2]), int(m[2])
    return _INTS[duck_type.upper()], 0


@dataclass(frozen=True)
class Pairing:
    """How one column is compared: both sides cast to `target` (None: as they are)."""

    left_type: str
    right_type: str
    target: str | None
    mismatch: bool  # the types belong to different families
    acknowledged: bool  # an explicit coercion says the mismatch is intended
    lossy: bool  # TRY_CAST: values that do not convert become NULL

    @property
    def compared_as(self) -> str:
        return self.target or self.left_type

    @property
    def family(self) -> str:
        return family(self.compared_as)


def check_type_name(name: str) -> str:
    """Validate a user-given coercion type, since it is written into SQL as a type."""
    if not _TYPE_NAME.match(name.strip()):
        raise RuleError(f"not a DuckDB type: {name!r}; expected e.g. DOUBLE, DECIMAL(18,2), TIMESTAMP")
    return name.strip().upper()


def pair(left_type: str, right_type: str, coerce: str | None = None) -> Pairing:
    """Decide how to compare a left and a right column type.

    >>> pair("DECIMAL(12,2)", "DECIMAL(10,4)").target
    'DECIMAL(14,4)'
    >>> p = pair("DECIMAL(12,2)", "DOUBLE"); (p.target, p.mismatch, p.acknowledged)
    ('DOUBLE', True, False)
    """
    lf, rf = family(left_type), family(right_type)
    mismatch = lf != rf
    if coerce is not None:
        return Pairing(left_type, right_type, check_type_name(coerce), mismatch, True, True)
    if left_type == right_type:
        return Pairing(left_type, right_type, None, False, False, False)
    if not mismatch:
        target = _same_family_target(lf, left_type, right_type)
        return Pairing(left_type, right_type, target, False, False, False)
    families = {lf, rf}
    if families == {"exact", "float"}:
        target = "DOUBLE"
    elif "string" in families:
        other = right_type if lf == "string" else left_type
        target = other if family(other) in ("time", "timestamptz", "exact", "float") else "VARCHAR"
    else:
        target = "VARCHAR"
    return Pairing(left_type, right_type, target, True, False, True)


def _same_family_target(fam: str, left_type: str, right_type: str) -> str:
    if fam == "exact":
        (li, ls), (ri, rs) = _digits(left_type), _digits(right_type)
        scale = max(ls, rs)
        if scale == 0 and max(li, ri) <= 19:
            return "BIGINT"
        if scale == 0 and max(li, ri) <= 39 and min(li, ri) > 19:
            return "HUGEINT"
        return f"DECIMAL({min(38, max(li, ri) + scale)},{scale})"
    if fam == "float":
        return "DOUBLE"
    if fam == "time":
        return "TIMESTAMP"
    return left_type


def cast(expr: str, pairing: Pairing, side_type: str) -> str:
    """The SQL that brings one side's column (of `side_type`) to the comparison type."""
    if pairing.target is None or pairing.target == side_type.upper().replace(" ", ""):
        return expr
    return f"{'TRY_CAST' if pairing.lossy else 'CAST'}({expr} AS {pairing.target})"
