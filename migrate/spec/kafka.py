"""Kafka client settings in the spec: `kafka.properties` and the per-principal `kafka_properties`
of `cdc` and `stream`, one validated type (`KafkaProperties`), and how they become `KafkaSettings`."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from cdc.client import KafkaSettings, is_secret
from migrate.errors import SpecError
from migrate.spec.base import _Model

ENV_SUFFIX = "_env"


def _property_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ValueError(f"expected a string, number or boolean, got {type(value).__name__}")


def _checked_properties(properties: dict[str, str]) -> dict[str, str]:
    for key, value in properties.items():
        if key == "bootstrap.servers":
            raise ValueError("bootstrap.servers: set kafka.bootstrap_servers instead")
        if key.endswith(ENV_SUFFIX):
            if not value.strip():
                raise ValueError(f"{key}: name the environment variable that holds {key[: -len(ENV_SUFFIX)]}")
        elif is_secret(key):
            raise ValueError(
                f"{key}: secrets never live in the spec; name the environment variable that holds it "
                f"with `{key}{ENV_SUFFIX}: NAME`"
            )
    return properties


def _texts(properties: Any) -> Any:
    if not isinstance(properties, dict):
        return properties
    return {str(key): _property_text(value) for key, value in properties.items()}


# librdkafka client properties as the spec gives them: values as text (YAML numbers and booleans
# too), `<p>_env: NAME` for a credential, a literal secret or bootstrap.servers refused.
KafkaProperties = Annotated[dict[str, str], BeforeValidator(_texts), AfterValidator(_checked_properties)]


def client_settings(
    bootstrap_servers: str, properties: dict[str, str], defaults: dict[str, str], where: str
) -> KafkaSettings:
    """Settings from spec properties: each `<p>_env: NAME` becomes property p read from variable NAME
    (else from `defaults`, the local stack's); SpecError naming `where` when it is not set."""
    plain: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for key, value in properties.items():
        if not key.endswith(ENV_SUFFIX):
            plain[key] = value
            continue
        name = key[: -len(ENV_SUFFIX)]
        found = os.environ.get(value) or defaults.get(name)
        if found is None:
            raise SpecError(
                f"{where}.{key}: environment variable {value} is not set; export it with the "
                f"{name} (secrets never live in the spec)"
            )
        (secrets if is_secret(name) else plain)[name] = found
    for name, found in defaults.items():
        if name not in plain and name not in secrets:
            secrets[name] = found
    return KafkaSettings(bootstrap_servers, plain, secrets)


class KafkaSpec(_Model):
    """The Kafka cluster every client dualrun creates connects to (stream job, output reader,
    checklist, tail, admin, progress fences).

    `properties` are librdkafka client properties (security.protocol, sasl.mechanism, sasl.username,
    ssl.ca.location, ...). A credential never lives in the file: `<property>_env: NAME` reads the
    property from environment variable NAME (`sasl.password_env: KAFKA_PASSWORD`), like
    `password_env` elsewhere in the spec; a literal secret (`sasl.password: ...`) is refused.
    """

    bootstrap_servers: str
    properties: KafkaProperties = Field(default_factory=dict)
    # Set only by `local: true` on a `stack up --secure` stack (its dualrun user); never dumped.
    default_secrets: dict[str, str] = Field(default_factory=dict, repr=False, exclude=True)

    def client(self) -> KafkaSettings:
        """The settings dualrun's own Kafka clients are built from (reader, checklist, fences, tail,
        admin), `*_env` properties read from the environment. SpecError naming the property when its
        variable is not set."""
        return client_settings(self.bootstrap_servers, self.properties, self.default_secrets, "kafka.properties")
