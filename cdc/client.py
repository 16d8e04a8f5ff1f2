"""Kafka client settings: the one place every consumer, producer and admin client is built.

A secured cluster needs the same librdkafka properties (`security.protocol`, `sasl.mechanism`,
`sasl.username`, `sasl.password`, `ssl.ca.location`, ...) on every client. `KafkaSettings` carries
them with the bootstrap servers; `consumer`, `producer` and `admin` build clients from it (or from a
bare bootstrap string, for the plaintext local stack and the tests). Secret values are held apart
from the other properties, never printed by `repr`/`to_dict`, and `scrub` masks them in any text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from cdc.errors import CdcError

MASK = "********"

# librdkafka properties whose value is a credential (CONFIGURATION.md). Any other property whose
# name says password or secret counts too (see is_secret).
SECRET_PROPERTIES = frozenset(
    {
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "ssl_key",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
    }
)


def is_secret(name: str) -> bool:
    """True for a librdkafka property that holds a credential (`sasl.password`, `ssl.key.pem`, ...)."""
    return name in SECRET_PROPERTIES or "password" in name or "secret" in name


def quiet_logger() -> logging.Logger:
    """librdkafka's connection chatter goes here, visible only when DEBUG logging is on."""
    logger = logging.getLogger("dualrun.librdkafka")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger


@dataclass(frozen=True)
class KafkaSettings:
    """Bootstrap servers plus librdkafka client properties; `secrets` hold the credential values.

    `str()` is the bootstrap list (for messages); `repr` and `to_dict` mask every secret.
    """

    bootstrap_servers: str
    properties: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        literal = sorted(k for k in self.properties if is_secret(k))
        if literal:
            raise CdcError(f"Kafka property {literal[0]} is a secret: pass it as a secret, not a property")

    def __str__(self) -> str:
        return self.bootstrap_servers

    @property
    def secured(self) -> bool:
        """True unless the client talks PLAINTEXT (librdkafka's default security.protocol)."""
        return self.properties.get("security.protocol", "plaintext").lower() != "plaintext"

    def config(self, **extra: Any) -> dict[str, Any]:
        """The librdkafka configuration, credentials included: hand it to a client, never print it."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.properties, **self.secrets, **extra}

    def java_properties(self) -> dict[str, str]:
        """The same settings for a Java Kafka client (Debezium's schema history, Kafka Streams, Connect),
        credentials included: SCRAM/PLAIN user and password become `sasl.jaas.config`, a PEM CA file
        `ssl.truststore.type=PEM`. Raises CdcError for a property with no Java counterpart here.
        """
        out: dict[str, str] = {}
        for key, value in self.properties.items():
            if key in ("security.protocol", "sasl.mechanism", "sasl.mechanisms"):
                out[key.rstrip("s") if key.endswith("mechanisms") else key] = value.upper()
            elif key == "ssl.endpoint.identification.algorithm":
                # librdkafka says `none`, Java an empty string, to turn hostname verification off.
                out[key] = "" if value.lower() == "none" else value
            elif key == "ssl.ca.location":
                out.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": value})
            elif key != "sasl.username":
                raise CdcError(f"Kafka property {key} has no Java client counterpart in dualrun yet")
        user = self.properties.get("sasl.username")
        if user is not None:
            mechanism = out.get("sasl.mechanism", "PLAIN").upper()
            module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
            password = self.secrets.get("sasl.password", "")
            out["sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.{module} required "
                f'username="{_jaas_quote(user)}" password="{_jaas_quote(password)}";'
            )
        return out

    def masked_config(self, **extra: Any) -> dict[str, str]:
        """`config(**extra)` as text with every secret masked: safe to print or write to a status file."""
        shown = {**self.config(**extra), **{k: MASK for k in self.secrets if k not in extra}}
        return {key: str(value) for key, value in shown.items()}

    def scrub(self, text: str) -> str:
        """`text` with every secret value masked."""
        for value in self.secrets.values():
            if value:
                text = text.replace(value, MASK)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "properties": {**self.properties, **{k: MASK for k in self.secrets}},
        }


Kafka = str | KafkaSettings  # what every function that reaches Kafka takes: bootstrap servers or settings


def _jaas_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def settings(kafka: Kafka) -> KafkaSettings:
    """`kafka` as settings: a bare bootstrap string is a plaintext cluster."""
    return kafka if isinstance(kafka, KafkaSettings) else KafkaSettings(kafka)


def consumer(kafka: Kafka, extra: Mapping[str, Any] | None = None) -> Consumer:
    """A Consumer for `kafka` with the client's own librdkafka properties `extra` (group.id, ...)."""
    return Consumer(settings(kafka).config(**(extra or {})), logger=quiet_logger())


def producer(kafka: Kafka, extra: Mapping[str, Any] | None = None) -> Producer:
    """A Producer for `kafka`; `extra` as for `consumer`."""
    return Producer(settings(kafka).config(**(extra or {})), logger=quiet_logger())


def admin(kafka: Kafka, extra: Mapping[str, Any] | None = None) -> AdminClient:
    """An AdminClient for `kafka`; `extra` as for `consumer`."""
    return AdminClient(settings(kafka).config(**(extra or {})), logger=quiet_logger())
