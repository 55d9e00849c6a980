"""Keeping the C++ layers' chatter out of the user's terminal and out of ``--json`` output."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def silenced_fds(fds=(1, 2), noise: tuple[str, ...] | None = None):
    """Send whatever is written to these file descriptors to /dev/null for the block. LiteRT's
    "Created TensorFlow Lite XNNPACK delegate" line, libmpg123's complaint per damaged MP3 frame,
    the TFLite converter's MLIR diagnostics, TensorFlow's start-up logging and tflite-micro's
    allocation errors are written by C++ straight to fds 1 and 2, which Python's redirects do not
    catch. (Their content is not lost to us: the errors that matter come back as exceptions.)

    With ``noise`` (line prefixes) nothing is lost: the output goes to a temporary file, and every
    line that does not start with one of them is written to stderr after the block (PortAudio's
    ALSA chatter would otherwise bury ``listen``'s one-line error)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    sink = open(os.devnull, "wb") if noise is None else tempfile.TemporaryFile()
    kept = []
    try:
        for fd in fds:
            os.dup2(sink.fileno(), fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, old in zip(fds, saved):
            os.dup2(old, fd)
            os.close(old)
        if noise is not None:
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            kept = [line for line in text.splitlines() if line.strip() and not line.startswith(noise)]
        sink.close()
    if kept:
        print("\n".join(kept), file=sys.stderr, flush=True)
