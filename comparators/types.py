"""Type families, and how two differently typed columns are brought to one comparison type.

Every implicit conversion is lossless, or it is checked value by value (a value that
does not convert exactly is compared as it is, and differs unless the other side holds
the very same), or it is refused. The README's "How values are compared" table is the
user-facing form of `pair`; keep them in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from comparators.errors import RuleError
from comparators.sql import literal

# Integer types: (bits, signed).
_INTS = {
    "TINYINT": (8, True), "SMALLINT": (16, True), "INTEGER": (32, True), "BIGINT": (64, True),
    "HUGEINT": (128, True), "UTINYINT": (8, False), "USMALLINT": (16, False),
    "UINTEGER": (32, False), "UBIGINT": (64, False), "UHUGEINT": (128, False),
}  # fmt: skip
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?$")
# A DOUBLE holds every decimal of at most 15 significant digits exactly enough to tell
# any two apart (its 53-bit mantissa is 15.95 decimal digits).
DOUBLE_DIGITS = 15
_NAIVE = ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE", "DATETIME")
TZ = "TIMESTAMP WITH TIME ZONE"
_NULL = {'"NULL"', "NULL"}  # DuckDB's type of an all-NULL column (e.g. an empty SQL result)


def _norm(duck_type: str) -> str:
    t = " ".join(duck_type.upper().split())
    t = re.sub(r"\s*([(),])\s*", r"\1", t)
    return {"TIMESTAMPTZ": TZ, "DATETIME": "TIMESTAMP", "REAL": "FLOAT", "FLOAT4": "FLOAT",
            "FLOAT8": "DOUBLE", "INT": "INTEGER", "INT8": "BIGINT", "INT4": "INTEGER",
            "STRING": "VARCHAR", "TEXT": "VARCHAR"}.get(t, t)  # fmt: skip


def family(duck_type: str) -> str:
    """The comparison family of a DuckDB type.

    >>> [family(t) for t in ("DECIMAL(12,2)", "BIGINT", "DOUBLE", "VARCHAR", "TIMESTAMP_NS")]
    ['exact', 'exact', 'float', 'string', 'time']
    """
    t = _norm(duck_type)
    if t in _INTS or _DECIMAL.match(t):
        return "exact"
    if t in ("FLOAT", "DOUBLE"):
        return "float"
    if t == "VARCHAR" or t.startswith("VARCHAR("):
        return "string"
    if t == TZ:
        return "timestamptz"
    if t in _NAIVE:
        return "time"
    return t


def is_integer(duck_type: str) -> bool:
    """Whether a DuckDB type is one of the integer types.

    >>> is_integer("BIGINT"), is_integer("DECIMAL(18,0)"), is_integer("VARCHAR")
    (True, False, False)
    """
    return _norm(duck_type) in _INTS


def _digits(duck_type: str) -> tuple[int, int]:
    """(integer digits, scale) an exact numeric type can hold."""
    m = _DECIMAL.match(_norm(duck_type))
    if m:
        return int(m[1]) - int(m[2]), int(m[2])
    bits, signed = _INTS[_norm(duck_type)]
    return len(str(2 ** (bits - (1 if signed else 0)))), 0


def lossless(source: str, target: str, zone: str = "UTC") -> bool:
    """Whether every value of DuckDB type `source` converts to `target` exactly and
    distinct values stay distinct; otherwise the conversion is checked value by value.

    >>> lossless("INTEGER", "DOUBLE"), lossless("BIGINT", "DOUBLE"), lossless("DOUBLE", "VARCHAR")
    (True, False, True)
    >>> lossless("VARCHAR", "BIGINT"), lossless("DECIMAL(12,2)", "DECIMAL(14,4)")
    (False, True)
    """
    s, t = _norm(source), _norm(target)
    fs, ft = family(s), family(t)
    if s == t or s in _NULL:  # a column of type NULL (an empty result) holds only NULLs
        return True
    if ft == "string":  # every rendering below is one-to-one (shortest repr for floats)
        return fs in ("exact", "float", "time", "timestamptz", "BOOLEAN", "UUID", "DATE", "TIME", "INTERVAL")
    if fs == "exact" and ft == "exact":
        if is_integer(s) and is_integer(t):
            (sb, ss), (tb, ts) = _INTS[s], _INTS[t]
            return (ss == ts and sb <= tb) or (ts and not ss and sb < tb)
        (si, sc), (ti, tc) = _digits(s), _digits(t)
        return si <= ti and sc <= tc and not (is_integer(t) and sc > 0)
    if fs == "exact" and ft == "float":
        if t == "FLOAT":
            return False
        si, sc = _digits(s)
        return si + sc <= DOUBLE_DIGITS
    if fs == "float" and ft == "float":
        return s == "FLOAT" and t == "DOUBLE"
    if fs == "time" and ft == "time":
        order = ("DATE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP", "TIMESTAMP_NS")
        return s in order and t in order and order.index(s) <= order.index(t) and t != "DATE"
    if fs == "time" and ft == "timestamptz":
        return zone.upper() in ("UTC", "ETC/UTC") and s != "TIMESTAMP_NS"
    return False


@dataclass(frozen=True)
class Pairing:
    """How one column is compared: both sides brought to `target` (None: as they are).

    `zone` is the IANA zone a naive timestamp is read in when it meets an aware one."""

    left_type: str
    right_type: str
    target: str | None
    mismatch: bool  # the types belong to different families
    acknowledged: bool  # an explicit coercion says the mismatch is intended
    zone: str = "UTC"

    @property
    def compared_as(self) -> str:
        return self.target or self.left_type

    @property
    def family(self) -> str:
        return family(self.compared_as)

    def converts(self, side_type: str) -> bool:
        """Whether a side of this type is converted at all."""
        return self.target is not None and _norm(self.target) != _norm(side_type)

    def checked(self, side_type: str) -> bool:
        """Whether a side's conversion may lose information, so each value is verified."""
        return self.converts(side_type) and not lossless(side_type, self.compared_as, self.zone)

    @property
    def naive_meets_aware(self) -> bool:
        fams = {family(self.left_type), family(self.right_type), self.family}
        return "time" in fams and "timestamptz" in fams


def check_type_name(name: str) -> str:
    """Validate a user-given coercion type, since it is written into SQL as a type."""
    if not _TYPE_NAME.match(name.strip()):
        raise RuleError(f"not a DuckDB type: {name!r}; expected e.g. DOUBLE, DECIMAL(18,2), TIMESTAMP")
    return _norm(name.strip())


def pair(left_type: str, right_type: str, coerce: str | None = None, zone: str = "UTC") -> Pairing:
    """Decide how to compare a left and a right column type.

    >>> pair("DECIMAL(12,2)", "DECIMAL(10,4)").target
    'DECIMAL(14,4)'
    >>> p = pair("DECIMAL(12,2)", "DOUBLE"); (p.target, p.mismatch, p.acknowledged)
    ('DOUBLE', True, False)
    >>> pair("VARCHAR", "BIGINT").target
    'VARCHAR'
    >>> pair("TIMESTAMP", "TIMESTAMP WITH TIME ZONE").mismatch
    False
    """
    lf, rf = family(left_type), family(right_type)
    mismatch = lf != rf and {lf, rf} != {"time", "timestamptz"} and not {lf, rf} & _NULL
    if coerce is None and {lf, rf} & _NULL:
        return Pairing(left_type, right_type, right_type if lf in _NULL else left_type, False, False, zone)
    if coerce is not None:
        return Pairing(left_type, right_type, check_type_name(coerce), mismatch, True, zone)
    if _norm(left_type) == _norm(right_type):
        return Pairing(left_type, right_type, None, False, False, zone)
    if lf == rf:
        return Pairing(left_type, right_type, _same_family_target(lf, left_type, right_type), False, False, zone)
    families = {lf, rf}
    if families == {"exact", "float"}:
        target = "DOUBLE"
    elif families == {"time", "timestamptz"}:
        target = TZ
    else:
        target = "VARCHAR"  # text is compared as text, never parsed as a number or a time
    return Pairing(left_type, right_type, target, mismatch, False, zone)


def _same_family_target(fam: str, left_type: str, right_type: str) -> str:
    if fam == "exact":
        (li, ls), (ri, rs) = _digits(left_type), _digits(right_type)
        scale, whole = max(ls, rs), max(li, ri)
        if scale == 0 and is_integer(left_type) and is_integer(right_type):
            for name in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"):
                if lossless(left_type, name) and lossless(right_type, name):
                    return name
        if whole + scale > 38:
            # No DECIMAL holds both: each value is checked against DECIMAL(38, scale).
            return f"DECIMAL(38,{scale})"
        return f"DECIMAL({whole + scale},{scale})"
    if fam == "float":
        return "DOUBLE"
    if fam == "time":
        return "TIMESTAMP_NS" if "TIMESTAMP_NS" in (_norm(left_type), _norm(right_type)) else "TIMESTAMP"
    return "VARCHAR"


def cast(expr: str, pairing: Pairing, side_type: str) -> str:
    """The SQL that brings one side's column (of `side_type`) to the comparison type.

    A naive timestamp becomes an instant in `pairing.zone` (never the host's zone), and
    an instant becomes wall-clock time in that zone."""
    if not pairing.converts(side_type):
        return expr
    target, src = _norm(pairing.compared_as), _norm(side_type)
    op = "TRY_CAST" if pairing.checked(side_type) else "CAST"
    if target == TZ and family(src) == "time":
        return f"timezone({literal(pairing.zone)}, {op}({expr} AS TIMESTAMP))"
    if family(target) == "time" and src == TZ:
        return f"{op}(timezone({literal(pairing.zone)}, {expr}) AS {target})"
    return f"{op}({expr} AS {target})"


def exact_sql(raw: str, converted: str, pairing: Pairing, side_type: str) -> str:
    """A SQL boolean: the side's `raw` value converted without loss (NULL stays NULL).

    Text must read back as the same text (leading zeros, blanks, extra digits and
    unparsable text are losses; trailing zeros after a decimal point are not); any other
    type must convert back to the same value."""
    src, target = _norm(side_type), _norm(pairing.compared_as)
    if family(src) == "string":
        back, orig = f"CAST({converted} AS VARCHAR)", raw
        if family(target) == "time":
            orig = f"replace({raw}, 'T', ' ')"
        elif family(target) in ("exact", "float"):
            back, orig = _fraction(back), _fraction(raw)
        test = f"{back} = {orig}"
    elif src == TZ and family(target) == "time":
        test = f"timezone({literal(pairing.zone)}, CAST({converted} AS TIMESTAMP)) = {raw}"
    elif family(src) == "time" and target == TZ:
        zone = literal(pairing.zone)
        test = f"TRY_CAST(timezone({zone}, {converted}) AS {src}) = {raw}"
        # A wall time in a DST overlap names two instants: which one is not in the data.
        # Every zone's shifts are 30 minutes, 1 or 2 hours.
        others = [f"timezone({zone}, {converted} {op} INTERVAL {d}) = CAST({raw} AS TIMESTAMP)"
                  for d in ("30 MINUTE", "1 HOUR", "2 HOUR") for op in "+-"]  # fmt: skip
        test = f"{test} AND NOT ({' OR '.join(others)})"
    else:
        test = f"TRY_CAST({converted} AS {src}) = {raw}"
    return f"({raw} IS NULL OR ({converted} IS NOT NULL AND coalesce({test}, FALSE)))"


def _fraction(text: str) -> str:
    """Number text without trailing zeros after its decimal point ('12.50' -> '12.5')."""
    return f"(CASE WHEN contains({text}, '.') THEN rtrim(rtrim({text}, '0'), '.') ELSE {text} END)"
