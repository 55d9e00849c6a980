"""What every command group of the CLI shares: the option types (FiniteFloat, SEED), the limits
of options, the progress bar, JSON output, importing an extra, and the audio and memory checks."""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager

import click

from edge_sed.core.errors import EdgeSedError, install_extra
from edge_sed.core.settings import MAX_SEED, SAMPLE_RATE

MAX_STREAM_S = 24 * 3600.0
"""A built stream is held in memory whole: a day at most (and what this machine's memory allows)."""
STREAM_BYTES_PER_SAMPLE = 16
"""Peak memory of building a stream, per sample (the float32 bed, its pieces and the events)."""
SEED = click.IntRange(0, MAX_SEED)
"""Every --seed (a negative one was an internal error in numpy)."""
MAX_EVENTS = 100_000
"""Most events one stream may be asked to hold (--min-gap 0 would place them all)."""


class FiniteFloat(click.FloatRange):
    """click.FloatRange without NaN and infinities (FloatRange lets "nan" through: every
    comparison with NaN is False). Every float option of the CLI uses it."""

    name = "finite float"

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return value


def _available_memory_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_stream_memory(duration_s: float, option: str = "--duration") -> None:
    """EdgeSedError when building a ``duration_s`` stream would not fit in the memory available."""
    need = duration_s * SAMPLE_RATE * STREAM_BYTES_PER_SAMPLE
    free = _available_memory_bytes()
    if free is not None and need > free:
        raise EdgeSedError(
            f"{option} {duration_s:g}: building the stream needs about {need / 1024**3:.1f} GB of "
            f"memory, {free / 1024**3:.1f} GB is available; make a shorter stream"
        )


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True):
    """A rich progress bar on stderr when it is a terminal; yields ``advance(n_done, n_total)``
    for the worker. Logs and pipes get no bar (the command's summary line says what it did)."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda done, total_: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done, total_: progress.update(task, completed=done, total=total_)


def _emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def check_audio_files(paths, progress: bool = True) -> None:
    """Decode every file; one AudioError naming how many are unusable and the first reason."""
    from edge_sed.core.audio_io import read_audio
    from edge_sed.core.errors import AudioError

    bad = []
    with progress_bar("checking audio", len(paths), enabled=progress) as advance:
        for i, path in enumerate(paths, 1):
            try:
                read_audio(path)
            except AudioError as exc:
                bad.append(str(exc))
            advance(i, len(paths))
    if bad:
        raise AudioError(f"{len(bad)} of {len(paths)} audio files are unusable; first: {bad[0]}")


def _import_extra(module: str, extra: str):
    """Import a heavy package for one subcommand, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EdgeSedError(
            f"this command needs the '{extra}' extra ({exc}): {install_extra(extra)}"
        ) from None
