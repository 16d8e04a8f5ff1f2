"""Errors raised at the Debezium/Kafka edge. All carry the CLI exit code."""


class CdcError(Exception):
    """Root of every cdc error; a usage/config problem unless a subclass says otherwise."""

    exit_code = 2


class ConnectError(CdcError):
    """Kafka Connect refused a request or could not be reached."""


class ConnectUnreachable(ConnectError):
    """Kafka Connect did not answer at its REST URL."""


class ConnectAccessDenied(ConnectError):
    """Kafka Connect refused the credentials (HTTP 401/403)."""


class ConnectorNotFound(ConnectError):
    """No connector of that name is registered."""


class EnvelopeError(CdcError):
    """A change event that cannot be decoded (a poison event)."""


class PositionError(CdcError):
    """A source position that cannot be parsed or ordered."""


class TopicError(CdcError):
    """A topic admin request failed."""


class PartitionReadError(CdcError):
    """A consumer reported an error other than partition EOF while reading partitions to their end."""


class ReadDeadline(CdcError):
    """Partitions were not read to their end in time (deleted by retention, or the broker not answering);
    `pending` names the (topic, partition) pairs still open."""

    def __init__(self, message: str, pending: list[tuple[str, int]]) -> None:
        super().__init__(message)
        self.pending = pending


class KafkaUnreachable(CdcError):
    """No broker answered at the bootstrap servers (down, wrong host or port)."""


class KafkaAccessError(CdcError):
    """The broker refuses the client's settings: wrong credentials, an unverifiable certificate, or no
    TLS/SASL where the listener wants them. A configuration error (exit 2)."""

    exit_code = 2
