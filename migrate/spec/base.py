"""The spec's base model (frozen, and every unknown key refused) and how a section reads its password."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

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
