"""Errors raised by dualrun's orchestration layer. All carry the CLI exit code."""

# A config error no restart mends (sysexits.h EX_CONFIG). Apart from 2 on purpose: 2 is every error
# root's default and click's usage error, and the stream supervisor must keep restarting those (a
# revoked ACL may be granted again); it stops for good only on this code.
PERMANENT_CONFIG_EXIT = 78


class DualrunError(Exception):
    """Root of every migrate error; a usage/config problem unless a subclass says otherwise."""

    exit_code = 2


class StackError(DualrunError):
    """A local service could not be started, stopped or checked."""


class PortInUse(StackError):
    """A port the stack needs is taken by something else."""


class MissingTool(StackError):
    """Java, Maven, MariaDB or PostgreSQL is not installed."""


class SpecError(DualrunError):
    """The pipeline spec is wrong; the message names the field path."""


class SourceUnavailable(DualrunError):
    """The source database cannot be reached (transient: retried where it makes sense)."""


class CheckUnavailable(DualrunError):
    """A cutover check could not reach the system it checks (Connect, Kafka or the source)."""


class StreamJobError(DualrunError):
    """The streaming job cannot continue (fenced, or Kafka refused it)."""

    exit_code = 1


class ChangelogError(DualrunError):
    """The changelog folder does not belong with the streaming job's committed progress."""


class TapError(DualrunError):
    """An output topic cannot be read into a changelog (missing, recreated, or records lost)."""


class KafkaUnavailable(TapError):
    """The broker did not answer a read's first queries within its wait (transient errors are retried
    until then): nothing was read. Exit 2, as the checklist's for a system it could not reach."""


class MissingTopics(DualrunError):
    """Topics a command reads do not exist on the broker (e.g. a connector that cannot create them):
    nothing could be read, so exit 2; whether the connector is stuck is `cdc status`'s finding (exit 1)."""
