"""Errors a user can act on. The CLI prints them as one line and exits non-zero; anything
else escaping is a bug in edge-sed."""


class EdgeSedError(Exception):
    """Base class: the message is one line, says what is wrong and with which file or option."""

    exit_code = 2


class AudioError(EdgeSedError):
    """An audio file that cannot be used: missing, empty, corrupt, truncated, NaN/Inf, ..."""


class DatasetError(EdgeSedError):
    """A data set that cannot be used: unknown label, unsatisfiable ratio, empty class, ..."""


class BundleError(EdgeSedError):
    """A model bundle that fails verification."""


class ConvertError(EdgeSedError):
    """A run that cannot be converted faithfully (e.g. the port does not match the trained model)."""


class NotBuiltError(EdgeSedError):
    """A pipeline stage that does not exist yet. Exit code 3 so scripts can tell it apart."""

    exit_code = 3
