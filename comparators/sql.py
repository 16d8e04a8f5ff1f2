"""Quoting for the SQL the engine builds; user strings only ever enter SQL through here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def ident(name: str) -> str:
    """Quote an identifier for DuckDB.

    >>> ident('a"b c')
    '"a""b c"'
    """
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """Quote a string literal, for the few places DuckDB takes no parameter (ATTACH, views).

    >>> literal("it's")
    "'it''s'"
    """
    return "'" + text.replace("'", "''") + "'"


def idents(names: Iterable[str], prefix: str = "") -> str:
    """Comma-separated quoted identifiers, optionally qualified by an already-quoted alias."""
    return ", ".join(f"{prefix}{ident(n)}" for n in names)


class Params:
    """Collects bound values for one statement and hands out `$pN` placeholders.

    >>> p = Params(); p.bind(1), p.bind("x"), p.values
    ('$p0', '$p1', {'p0': 1, 'p1': 'x'})
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def one_row(con: Any, sql: str, params: Any = None) -> tuple[Any, ...]:
    """The single row of an aggregate query, fetched to the end so the connection is free."""
    rows = con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    return tuple(rows[0]) if rows else ()


def describe(con: Any, name: str) -> list[tuple[str, str]]:
    """Column names and DuckDB types of a registered relation, in order."""
    return [(str(r[0]), str(r[1])) for r in con.execute(f"DESCRIBE {ident(name)}").fetchall()]
