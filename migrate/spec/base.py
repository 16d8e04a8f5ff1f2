"""The spec's base model (frozen, and every unknown key refused) and how a section reads its password."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from cdc.client import masked
from migrate.errors import SpecError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def env_password(section: str, env: str, default: str | None) -> str:
    """The password in environment variable `env`, else `default` (local stack only); SpecError naming
    `section` when neither is set."""
    value = os.environ.get(env) or default
    if value is None:
        raise SpecError(
            f"{section}.password_env: environment variable {env} is not set; export it with the password "
            f"(passwords never live in the spec)"
        )
    return value


def shown_url(url: str) -> str:
    """`url` quoted and safe to put in a message: any password in it masked (a malformed URL too).

    >>> shown_url("mysql+pymysql://app:hunter2@db:33o6/shop")
    "'mysql+pymysql://app:********@db:33o6/shop'"
    """
    return repr(masked("url", url))


def has_password(url: str) -> bool:
    """True when `url` carries a password (userinfo or query parameter), even when it is malformed:
    checked before anything parses it, so no parser's message can echo the password."""
    return masked("url", url) != url


def http_url_problem(url: str) -> str | None:
    """Why `url` is no http(s) URL with a host and a valid port (None: it is one): Connect's REST API.
    The URL is shown with its password masked.

    >>> http_url_problem("htp:/127.0.0.1:8083")
    "'htp:/127.0.0.1:8083' is not an http(s) URL; give one like http://127.0.0.1:8083"
    >>> http_url_problem("https://connect.example:8443") is None
    True
    """
    parts = urlsplit(url)
    try:
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:  # a port that is no number or out of range
        ok = False
    return None if ok else f"{shown_url(url)} is not an http(s) URL; give one like http://127.0.0.1:8083"


def sqlalchemy_url_problem(url: str, example: str) -> str | None:
    """Why SQLAlchemy cannot parse `url` (None: it can), naming an `example` of the expected form; the
    URL is shown with its password masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a port that is no number fails only when read
    except (ArgumentError, ValueError):
        return f"{shown_url(url)} is not a SQLAlchemy URL; give one like {example}"
    return None
