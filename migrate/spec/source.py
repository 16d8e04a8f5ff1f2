"""The spec's `source` section: the legacy OLTP database both pipelines read."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from migrate.spec.base import _Model, env_password, has_password, shown_url, sqlalchemy_url_problem

SUPPORTED_SOURCES = ("mariadb", "postgres")


class SourceSpec(_Model):
    """The legacy OLTP database both pipelines read."""

    kind: str = "mariadb"
    url: str
    password_env: str
    # Set only by `local: true` (the local stack's passwords) or by code; never read from YAML and
    # never dumped.
    default_password: str | None = Field(default=None, repr=False, exclude=True)

    @field_validator("kind")
    @classmethod
    def _supported(cls, kind: str) -> str:
        if kind not in SUPPORTED_SOURCES:
            raise ValueError(
                f"source kind {kind!r} is not supported yet: dualrun takes consistent snapshots of "
                f"{', '.join(SUPPORTED_SOURCES)} only"
            )
        return kind

    @field_validator("url")
    @classmethod
    def _url_has_no_password(cls, url: str) -> str:
        # The password first: a malformed URL's message must never echo it.
        if has_password(url):
            raise ValueError("put the password in the environment variable named by password_env, not in the URL")
        problem = sqlalchemy_url_problem(url, "mysql+pymysql://user@host:3306/db")
        if problem:
            raise ValueError(problem)
        if not urlsplit(url).hostname:
            raise ValueError(f"{shown_url(url)} names no host; give one like mysql+pymysql://user@host:3306/db")
        return url

    @property
    def database(self) -> str:
        return urlsplit(self.url).path.lstrip("/")

    def password(self) -> str:
        return env_password("source", self.password_env, self.default_password)
