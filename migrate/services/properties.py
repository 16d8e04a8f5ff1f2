"""Java properties files the stack's JVMs and Connect's FileConfigProvider read: one escaper, one writer."""

from __future__ import annotations

import os
import re
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


def read_properties(path: Path) -> dict[str, str]:
    r"""A Java properties file as `Properties.load` reads it: comments, `k=v`, `k: v`, `k v`,
    continuation lines, escapes and `\uXXXX` (UTF-8 text, as FileConfigProvider reads it).

    Raises OSError when the file cannot be read."""
    entries: dict[str, str] = {}
    pending = ""
    for natural in path.read_text(encoding="utf-8").splitlines():
        line = natural.lstrip(" \t\f")  # also a continuation's leading whitespace
        if not pending and (not line or line[0] in "#!"):
            continue
        if (len(line) - len(line.rstrip("\\"))) % 2:  # an odd number of trailing backslashes continues
            pending += line[:-1]
            continue
        key, value = _split(pending + line)
        entries[key] = value
        pending = ""
    if pending:
        key, value = _split(pending)
        entries[key] = value
    return entries


def _split(line: str) -> tuple[str, str]:
    end = 0
    while end < len(line) and line[end] not in "=: \t\f":
        end += 2 if line[end] == "\\" else 1
    rest = line[end:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return _unescape(line[:end]), _unescape(rest)


_UNESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if len(code) == 5 else _UNESCAPES.get(code, code)

    joined = re.sub(r"\\(u[0-9a-fA-F]{4}|.?)", one, text)
    return joined.encode("utf-16-le", "surrogatepass").decode("utf-16-le")  # pairs of \u units: one character
