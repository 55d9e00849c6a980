"""Where ``edge-sed listen`` sends what the loop does. :func:`edge_sed.listen.run.run_loop` calls
every sink's methods for every block, decision and event; :class:`Sink` does nothing in each, so a
sink overrides only what it uses. :class:`JsonlSink` appends one JSON object per event,
:class:`RecordSink` writes the audio heard to a WAV."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_sed.core.errors import EdgeSedError, printable
from edge_sed.core.settings import SAMPLE_RATE


class Sink:
    """What run_loop calls, in this order: ``audio`` with each 16 kHz block; ``block`` after the
    detector took it (samples, front-end frames, model invokes, decisions it caused); ``decision``
    per decision (with the block's level in dBFS); ``event`` per event (with the decision latency
    on this host); ``close`` once at the end, with the summary (a sink may add its figures)."""

    def audio(self, block: np.ndarray) -> None:
        pass

    def block(self, n_samples: int, frames: int, inferences: int, decisions) -> None:
        pass

    def decision(self, decision, level_db: float) -> None:
        pass

    def event(self, event, latency_s: float) -> None:
        pass

    def close(self, summary: dict) -> None:
        pass


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def warn(message: str) -> None:
    """One warning line on stderr (the detector goes on; a closed stderr does not stop it)."""
    try:
        print(f"warning: {printable(message)}", file=sys.stderr, flush=True)
    except OSError:
        pass


class JsonlSink(Sink):
    """Appends one JSON object per event and flushes it at once, so a crash or kill loses
    nothing already reported. A write that fails (a full disk) does not stop the detector:
    one warning line, the half-written line is cut off, and the events that could not be
    logged are counted in the summary (``events_not_logged``)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.error: str | None = None
        self.not_logged = 0
        self._f = None
        try:
            self._f = open(self.path, "ab", buffering=0)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise EdgeSedError(f"{self.path}: cannot open the event log ({exc.strerror})") from None
            self.error = exc.strerror
            warn(
                f"{self.path}: no event log ({self.error}); detection goes on, events not logged are counted "
                "in the summary"
            )

    def event(self, event, latency_s: float) -> None:
        if self.error is not None:
            self.not_logged += 1
            return
        record = {
            "time": _iso_now(),
            "stream_s": round(event.t_s, 4),
            "onset_s": round(event.estimated_onset_s, 4),
            "class": event.label,
            "score": round(float(event.score), 4),
            "decision_latency_ms": round(latency_s * 1000, 2),
        }
        line = (json.dumps(record) + "\n").encode()
        fd = self._f.fileno()
        start = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(line):
                written += self._f.write(line[written:])
            os.fsync(fd)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            self.not_logged += 1
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)  # no half line for the next reader
            warn(
                f"{self.path}: the event log is lost from {event.t_s:.2f} s on ({self.error}); "
                "detection goes on, events not logged are counted in the summary"
            )

    def close(self, summary) -> None:
        with contextlib.suppress(OSError):
            if self._f is not None:
                self._f.close()
        if self.error is not None:
            summary["log_error"] = f"{self.path}: {self.error}"
            summary["events_not_logged"] = self.not_logged


class RecordSink(Sink):
    """Writes the 16 kHz audio that went through the loop to a 16-bit WAV as it goes (what the
    microphone heard, for replay with --file); the header is final once closed. A full disk
    (at the start or later) loses the recording, with one warning line, not the detector."""

    FULL_BYTES = 64 * 1024
    """Less free space than this when soundfile fails: the disk is full (libsndfile says only
    "System error")."""

    def __init__(self, path):
        import soundfile as sf

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.error: str | None = None
        self.samples = 0
        self._f = None
        try:
            self._f = sf.SoundFile(str(self.path), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16")
        except Exception as exc:
            if not self._disk_full():
                raise EdgeSedError(f"{self.path}: cannot record here ({str(exc).splitlines()[0]})") from None
            self._lost(exc)

    def _disk_full(self) -> bool:
        try:
            return shutil.disk_usage(self.path.parent).free < self.FULL_BYTES
        except OSError:
            return False

    def _lost(self, exc) -> None:
        self.error = (
            "disk full"
            if self._disk_full()
            else str(exc).splitlines()[0]
            if str(exc).strip()
            else type(exc).__name__
        )
        warn(
            f"{self.path}: the recording is lost after {self.samples / SAMPLE_RATE:.2f} s ({self.error}); "
            "detection goes on"
        )

    def audio(self, block) -> None:
        if self.error is not None:
            return
        try:
            self._f.write(np.clip(block, -1.0, 1.0))
            self.samples += len(block)
        except (OSError, RuntimeError) as exc:  # soundfile's LibsndfileError is a RuntimeError
            self._lost(exc)

    def close(self, summary) -> None:
        try:
            if self._f is not None:
                self._f.close()
        except (OSError, RuntimeError) as exc:
            if self.error is None:
                self._lost(exc)
        if self.error is not None:
            summary["record_error"] = f"{self.path}: {self.error}"
