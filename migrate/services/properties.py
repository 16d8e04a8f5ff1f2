"""Java properties files the stack's JVMs and Connect's FileConfigProvider read: one escaper, one writer."""

from __future__ import annotations

import os
from pathlib import Path

# The characters `java.util.Properties.load` gives a meaning to: `\` escapes, `=`/`:` end a key,
# `#`/`!` start a comment at the start of a line. Escaping them everywhere is what `Properties.store`
# does; `load` reads `\=` back as `=`.
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f",
            "=": "\\=", ":": "\\:", "#": "\\#", "!": "\\!"}  # fmt: skip


def java_escape(value: object, *, key: bool = False) -> str:
    r"""`value` as a Java properties value (or key): read back by `Properties.load` exactly.

    Leading spaces (every space in a key) would be dropped or end the key: escaped. Non-ASCII is
    written `\uXXXX` (UTF-16 units): the worker's own properties are read as ISO-8859-1.

    >>> print(java_escape("a=b:c #d !e \\ f"))
    a\=b\:c \#d \!e \\ f
    >>> print(java_escape("  x y\nz"), java_escape("k y", key=True), java_escape("é€😀"))
    \ \ x y\nz k\ y \u00e9\u20ac\ud83d\ude00
    """
    text, out = str(value), []
    leading = True
    for char in text:
        if char == " ":
            out.append("\\ " if leading or key else " ")
            continue
        leading = False
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif " " <= char <= "~":
            out.append(char)
        else:
            units = char.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2))
    return "".join(out)


def write_properties(path: Path, settings: dict[str, object]) -> None:
    """Write a Java properties file readable by its owner only, from the first byte on (a secured
    stack's and the sink's hold passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{java_escape(key, key=True)}={java_escape(value)}\n" for key, value in settings.items()))
