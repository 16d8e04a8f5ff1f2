"""Errors raised by the reconciliation engine. All carry the CLI exit code."""


class ComparatorError(Exception):
    """Root of every comparators error; a usage/config problem unless a subclass says otherwise."""

    exit_code = 2


class SourceError(ComparatorError):
    """A side could not be loaded (unreadable file, bad URL, missing table)."""


class SpecError(ComparatorError):
    """Keys, tolerances or column options that do not fit the data."""


class PositionError(ComparatorError):
    """A source position that cannot be parsed or ordered."""


class EmptySideError(SourceError):
    """A side has no rows, so there is nothing to reconcile against."""


class RuleError(SpecError):
    """A tolerance or normalisation rule that cannot be parsed or does not fit its column."""


class HistoryError(ComparatorError):
    """The run-history database cannot be opened or written."""
