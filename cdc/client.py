"""Kafka client settings: the one place every consumer, producer and admin client is built.

A secured cluster needs the same librdkafka properties (`security.protocol`, `sasl.mechanism`,
`sasl.username`, `sasl.password`, `ssl.ca.location`, ...) on every client. `KafkaSettings` carries
them with the bootstrap servers; `consumer`, `producer` and `admin` build clients from it (or from a
bare bootstrap string, for the plaintext local stack and the tests). Secret values are held apart
from the other properties, never printed by `repr`/`to_dict`, and `scrub` masks them in any text.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from cdc.errors import CdcError, KafkaAccessError, PartitionReadError, ReadDeadline

MASK = "********"

# The one rule for which setting holds a credential, shared by `redact` (what dualrun prints) and the
# checklist's `clear_secrets` (what Connect stores). A name counts by its ending, whatever prefix routes
# it (`producer.override.`, `consumer.override.`, `admin.`, `database.`, `schema.history.internal.`...):
# its last part names a password, secret, token or credentials, or it ends with one of SECRET_TAILS
# (the JAAS line carries the SASL password, `*.ssl.key.pem` a private key). A value counts too when it
# is a URL carrying a password (`jdbc:mysql://u:pw@h/db`, `...?user=u&password=pw`).
SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "credentials")
SECRET_TAILS = (
    "basic.auth.user.info",  # the schema registry's `user:password`
    "jaas.config",
    "sasl.oauthbearer.config",
    "ssl.key.pem",
    "ssl.keystore.key",
    "ssl_key",
    "secret.access.key",
    "secret.key",
    "private.key",
)
# A password in a URL: the userinfo's (scheme://user:PW@host) or a query/JDBC parameter's (password=PW).
# The userinfo's runs greedily to the LAST `@` of the word: a password may hold `@` or `/` unescaped
# (`u:p@ss@h`, `u:pa/ss@h`), and masking too much is safe where masking too little is a leak.
_URL_PASSWORDS = (
    re.compile(r"[a-z][a-z0-9+.-]*://[^/?#@\s:'\"]*:([^\s'\"]+)@", re.IGNORECASE),
    re.compile(r"[?&;]\s*(?:password|passwd|pwd)\s*=\s*([^&;\s]+)", re.IGNORECASE),
)


def is_secret(name: str) -> bool:
    """True for a librdkafka, Java client or connector setting whose name says it holds a credential
    (`sasl.password`, `producer.override.sasl.jaas.config`, `database.ssl.key.pem`, `aws.session.token`,
    ...). An address (`sasl.oauthbearer.token.endpoint.url`) or a name that merely starts with such a
    word (`password.encoder.note`) is not one.

    >>> [is_secret(n) for n in ("consumer.override.sasl.oauthbearer.config", "secret.manager.region")]
    [True, False]
    """
    lowered = name.lower()
    parts = lowered.split(".")
    # `credentials` names a credential wherever it stands (`gcp.credentials.json`), but a Java class
    # that fetches credentials (`s3.credentials.provider.class`) is no credential itself.
    credentials = any("credentials" in part for part in parts) and parts[-1] != "class"
    return (
        credentials
        or any(word in parts[-1] for word in SECRET_WORDS)
        or any(lowered == tail or lowered.endswith("." + tail) for tail in SECRET_TAILS)
    )


def is_reference(value: Any) -> bool:
    """A Connect config provider reference (`${provider:[path:]key}`), resolved by the worker.

    >>> is_reference("${file:/s.properties:k}"), is_reference("${nocolon}"), is_reference("pw${x:y}")
    (True, False, False)
    """
    return isinstance(value, str) and re.fullmatch(r"\$\{[A-Za-z0-9_.-]+:[^}]+\}", value) is not None


def holds_secret(name: str, value: Any) -> bool:
    """True when setting `name` = `value` holds a credential in clear: a secret name with a value that
    is neither empty nor a config provider reference, or any value that is a URL carrying a password.

    >>> holds_secret("connection.url", "jdbc:mysql://db:3306/app?user=app&password=pw"), holds_secret(
    ...     "database.password", "${file:/s:database.password}")
    (True, False)
    """
    if value in (None, "") or is_reference(value):
        return False
    return is_secret(name) or (isinstance(value, str) and any(p.search(value) for p in _URL_PASSWORDS))


def masked(name: str, value: Any) -> Any:
    """`value` safe to show: MASK for a secret name, the URL with its password masked, else as is.

    >>> masked("connection.url", "postgresql://app:pw@db/app"), masked("topic.prefix", "p")
    ('postgresql://app:********@db/app', 'p')
    """
    if not holds_secret(name, value):
        return value
    if is_secret(name) or not isinstance(value, str):
        return MASK
    return mask_url_passwords(value)


def mask_url_passwords(text: str) -> str:
    """`text` with the password of every URL in it masked (userinfo, or a password= parameter).

    >>> mask_url_passwords("cannot connect to postgresql://app:p@ss@db/app: refused")
    'cannot connect to postgresql://app:********@db/app: refused'
    """
    for pattern in _URL_PASSWORDS:
        text = pattern.sub(_mask_group, text)
    return text


def _mask_group(match: re.Match[str]) -> str:
    """The whole match with its group 1 (the password) masked."""
    head, tail = match.start(1) - match.start(0), match.end(1) - match.start(0)
    return match.group(0)[:head] + MASK + match.group(0)[tail:]


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


def reader(kafka: Kafka, purpose: str, isolation: str = "read_committed") -> Consumer:
    """A consumer for `PartitionReader`: partition EOF events on, never commits, and a fresh group id
    `dualrun-<purpose>-<hex>` (assign() without commits never joins or creates it on the broker).
    Records removed by retention while reading: it goes on from the new start, never the end."""
    return consumer(
        kafka,
        {
            "group.id": f"dualrun-{purpose}-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
            "isolation.level": isolation, "enable.partition.eof": True, "auto.offset.reset": "earliest",
        },
    )  # fmt: skip


Partition = tuple[str, int]  # (topic, partition)
READ_BATCH = 500  # messages per consume() call


class PartitionReader:
    """Reads assigned partitions to their end, once: iterate it for the messages.

    Each partition in `starts` is read from its start offset (or OFFSET_BEGINNING) until it
    reports EOF (the consumer needs `enable.partition.eof`; `reader` builds one), reaches its
    offset in `stops` (the first offset not wanted: a message at or past it is never yielded), or
    the caller calls `finish`. An EOF below the stop offset (the rest is not stable yet, or ends
    in transaction markers) ends the partition too, unless `wait_for_stop`: then only an EOF at
    or past `stop - 1` does (a trailing commit marker is never delivered).

    Raises PartitionReadError on any consumer error other than EOF, and ReadDeadline (with the
    partitions still open) when they are not all done within `timeout` s.
    """

    def __init__(
        self,
        consumer: Consumer,
        starts: Mapping[Partition, int],
        *,
        timeout: float,
        stops: Mapping[Partition, int] | None = None,
        wait_for_stop: bool = False,
        what: str = "",
    ) -> None:
        self.consumer = consumer
        self.starts = dict(starts)
        self.stops = dict(stops or {})
        self.timeout = timeout
        self.wait_for_stop = wait_for_stop
        self.what = what
        self.open: set[Partition] = set(self.starts)

    def finish(self, tp: Partition) -> None:
        """Stop reading `tp`: nothing more of it is yielded."""
        self.open.discard(tp)

    def _eof(self, tp: Partition, offset: int) -> None:
        stop = self.stops.get(tp)
        if not self.wait_for_stop or stop is None or offset >= stop - 1:
            self.open.discard(tp)

    def __iter__(self) -> Iterator[Message]:
        if not self.open:
            return
        self.consumer.assign([TopicPartition(t, p, self.starts[(t, p)]) for t, p in sorted(self.open)])
        deadline = time.monotonic() + self.timeout
        while self.open:
            if time.monotonic() >= deadline:
                raise ReadDeadline(self._late(), sorted(self.open))
            for msg in self.consumer.consume(READ_BATCH, 0.5):
                tp = (msg.topic() or "", msg.partition() or 0)
                offset = msg.offset() or 0
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self._eof(tp, offset)
                        continue
                    raise PartitionReadError(f"reading {tp[0]}[{tp[1]}]: {error.str()}")
                stop = self.stops.get(tp)
                if tp not in self.open or offset < self.starts[tp]:
                    continue
                if stop is not None and offset >= stop:
                    self.open.discard(tp)
                    continue
                yield msg
                if stop is not None and offset >= stop - 1:
                    self.open.discard(tp)

    def _late(self) -> str:
        ends = {tp: f" to {stop}" for tp, stop in self.stops.items()}
        where = ", ".join(
            f"{t}[{p}] from {self.starts[(t, p)]}{ends.get((t, p), '')}" for t, p in sorted(self.open)[:3]
        )
        return f"reading {self.what or 'the topic'} timed out after {self.timeout:.0f}s at {where}"


class _Recorder(logging.Handler):
    """Keeps librdkafka's log lines and error callbacks of one probe, to name why a connection failed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def access_problem(kafka: Kafka, timeout: float = 5.0) -> str | None:
    """Why the broker refuses these settings, in one line; None when it accepts them or does not
    answer at all (an unreachable broker is the caller's to wait out, not a settings problem).

    Distinguishes wrong credentials (SASL authentication failed), an unverifiable broker
    certificate (no or wrong ssl.ca.location), and a PLAINTEXT client on a TLS listener.
    """
    target = settings(kafka)
    recorder = _Recorder()
    logger = logging.getLogger(f"dualrun.librdkafka.probe.{id(recorder)}")
    logger.addHandler(recorder)
    logger.setLevel(logging.DEBUG)  # librdkafka logs connection failures at INFO
    logger.propagate = False
    config = target.config(**{"error_cb": lambda error: recorder.lines.append(error.str())})
    try:
        probe = AdminClient(config, logger=logger)
    except KafkaException as exc:
        return target.scrub(f"Kafka client settings for {target.bootstrap_servers}: {exc.args[0].str()}")
    try:
        probe.list_topics(timeout=timeout)
        return None
    except KafkaException:
        probe.poll(0.2)  # serve the error callbacks
    finally:
        logger.removeHandler(recorder)
    seen = " ".join(recorder.lines)
    where = f"Kafka at {target.bootstrap_servers}"
    if "SASL authentication error" in seen or "Authentication failed" in seen:
        user = target.properties.get("sasl.username", "?")
        return (
            f"{where} refused the credentials of user {user!r} (SASL authentication failed); check "
            "sasl.username and the password in the variable named by sasl.password_env"
        )
    if "certificate verify failed" in seen:
        return (
            f"{where}: TLS handshake failed, the broker's certificate could not be verified; set "
            "ssl.ca.location to the CA that signed it"
        )
    if not target.secured and "APIVERSION_QUERY" in seen and "closed by peer" in seen:
        return (
            f"{where} closed the connection of a client without credentials (PLAINTEXT): the listener "
            "wants TLS and SASL; set kafka.properties security.protocol, sasl.* and ssl.ca.location"
        )
    return None


# The errors of a broker that does not answer at all, as opposed to one that refuses or fails a request.
UNREACHABLE = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE})


def unreachable(kafka: Kafka, error: Any) -> str | None:
    """The one wording of "no broker answers" (what, where, what to do); None for any other error.

    >>> print(unreachable("127.0.0.1:1", KafkaError(KafkaError._TRANSPORT, "Local: Broker transport failure")))
    Kafka is not reachable at 127.0.0.1:1 (Local: Broker transport failure); start the broker or correct ...
    """
    if not isinstance(error, KafkaError) or error.code() not in UNREACHABLE:
        return None
    return (
        f"Kafka is not reachable at {settings(kafka).bootstrap_servers} ({error.str()}); "
        "start the broker or correct kafka.bootstrap_servers"
    )


def check_access(kafka: Kafka, timeout: float = 5.0) -> None:
    """Raise KafkaAccessError when the broker refuses these settings (see `access_problem`)."""
    problem = access_problem(kafka, timeout)
    if problem is not None:
        raise KafkaAccessError(problem)
