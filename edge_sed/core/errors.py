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


def printable(text: str) -> str:
    """``text`` with every non-printable character (newline, ANSI escape, ...) written as its
    Python escape, so a name from a file or the command line cannot drive the terminal or
    start a fake line of output."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def install_extra(extra: str) -> str:
    """How to add an extra, for error messages. edge-sed is not on PyPI: it is installed from a
    checkout or a built wheel (README "Install"), so `pip install 'edge-sed[x]'` would fail."""
    return (
        f"install the '{extra}' extra: pip install -e '.[{extra}]' in a checkout, or "
        f"pip install 'edge_sed-VERSION-py3-none-any.whl[{extra}]'"
    )
