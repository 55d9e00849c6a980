"""Keeping the C++ layers' chatter out of the user's terminal and out of ``--json`` output."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def silenced_fds(fds=(1, 2)):
    """Send whatever is written to these file descriptors to /dev/null for the block. LiteRT's
    "Created TensorFlow Lite XNNPACK delegate" line, libmpg123's complaint per damaged MP3 frame,
    the TFLite converter's MLIR diagnostics, TensorFlow's start-up logging and tflite-micro's
    allocation errors are written by C++ straight to fds 1 and 2, which Python's redirects do not
    catch. (Their content is not lost to us: the errors that matter come back as exceptions.)"""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(null, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, old in zip(fds, saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(null)
