"""Atomic file writes: write beside the target, then rename. A kill or a full disk at any
moment leaves either the old file or the new one, never half of one (and no stray temp file
on errors: the OSError, e.g. ENOSPC, goes on to the caller)."""

from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it to ``path`` when the block ends
    without an exception, delete it otherwise. The file gets the usual permissions (0666 less
    the umask), not mkstemp's 0600: a data set or bundle written by one user is read by others
    (a service account, a trainer)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        # a write names no file, or the hidden temporary one: name the file being written
        if exc.errno is not None and (exc.filename is None or str(exc.filename) == str(tmp)):
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
