"""Reading and writing audio files, with every conversion stated and every failure one line.

Conversions (documented, tested):
- any sample format libsndfile reads (8/16/24/32-bit int, float) -> float32 in [-1, 1];
- more than one channel -> the mean of the channels;
- any sample rate -> 16 kHz with a polyphase resampler (Kaiser-windowed sinc, the same design
  as scipy.signal.resample_poly, implemented here in numpy so a Pi needs nothing more);
- float samples beyond +-1 (float audio has headroom) up to ``MAX_FLOAT_PEAK`` -> clipped to
  [-1, 1], as a 16-bit recorder (or the device's microphone) would have clipped them.

Refusals (AudioError, one line, naming the file): missing file, directory, 0-byte file, a
character or block device, socket or other special file (a pipe too, except where audio is
streamed: :class:`AudioStream`), a file libsndfile cannot parse (e.g. text named .wav), a
sample rate outside ``MIN_SAMPLE_RATE`` .. ``MAX_SAMPLE_RATE`` (a corrupt header: 2^31 - 1 Hz
would ask the resampler for a filter of 40 billion taps), zero samples, a file shorter than its
header says (truncated), NaN or Inf samples, float samples beyond ``MAX_FLOAT_PEAK``, a
recording longer than ``max_duration_s`` (read long recordings with :func:`iter_audio_blocks`,
which never loads them whole), one too big for the memory there is.

The C decoders' own messages on stderr (libmpg123 prints one line per damaged MP3 frame) are
silenced while a file is opened and decoded: the AudioError is the one line a user sees.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from fractions import Fraction
from math import gcd
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from edge_sed.core.atomic import atomic_path
from edge_sed.core.errors import AudioError
from edge_sed.core.quiet import silenced_fds
from edge_sed.core.settings import SAMPLE_RATE

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")

MAX_READ_DURATION_S = 3600.0
"""read_audio refuses longer files: an hour of 16 kHz float32 is 230 MB already."""

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384_000
"""Sample rates (Hz) a file may have: from below telephone rates to the highest any audio
interface records. Outside them a header is corrupt, not a recording."""

MAX_FLOAT_PEAK = 1000.0
"""A float file's samples may exceed +-1 (they are clipped to it); beyond this (+60 dB over full
scale, e.g. 1e30, or samples in int16 units such as 32767) the file is not audio but a corrupt
or mis-scaled one, and is refused (the front end's powers of 1e30 overflow float32)."""

STDIN = "-"
"""The path that means standard input, for :class:`AudioStream` (``edge-sed listen --file -``)."""


def _short(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if first.startswith("Error opening") and ": " in first:  # libsndfile repeats the path (or fd)
        first = first.rsplit("': ", 1)[1] if "': " in first else first.split(": ", 1)[1]
    if "possibly a pipe?" in first:  # libsndfile's word when a decoder gives up on a file that exists
        first = "its decoder gave up on it"
    return first


def _kind(mode: int) -> str:
    """What a stat mode is, in words."""
    for test, kind in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISFIFO, "pipe"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "directory"),
    ):
        if test(mode):
            return kind
    return "special file"


def _open(path: Path, pipes: bool = False) -> sf.SoundFile:
    """``path`` opened for reading, every refusal of the module doc checked first. With ``pipes``,
    a named pipe or standard input (``STDIN``) is opened too: libsndfile reads its header from
    the stream, nothing more (opening a pipe waits for its writer, as ``cat`` does)."""
    stdin = pipes and str(path) == STDIN
    if not stdin and not path.exists():
        raise AudioError(f"{path}: no such file")
    if not stdin and path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    st = os.fstat(0) if stdin else path.stat()
    kind = _kind(st.st_mode)
    name = "stdin" if stdin else str(path)
    if stdin and os.isatty(0):
        raise AudioError(
            "stdin is a terminal: pipe a WAV into it, e.g. arecord -f S16_LE -r 16000 -c 1 -t wav | "
            "edge-sed listen --file -"
        )
    if kind != "regular file" and not (pipes and kind == "pipe"):
        raise AudioError(f"{name}: not a regular file{' or pipe' if pipes else ''}: {kind}")
    if kind == "regular file" and st.st_size == 0:
        raise AudioError(f"{name}: empty file (0 bytes)")
    pipe_hint = "send WAV, AIFF, AU or Ogg through a pipe (libsndfile cannot read FLAC or MP3 from one)"
    try:
        with silenced_fds((2,)):
            f = sf.SoundFile(0, closefd=False) if stdin else sf.SoundFile(str(path))
    except Exception as exc:  # libsndfile says why in its message; soundfile raises several types
        raise AudioError(
            f"{name}: not a readable audio file ({_short(exc)})"
            + (f"; {pipe_hint}" if kind == "pipe" else "")
        ) from None
    if kind == "pipe" and f.format == "MP3":  # it opens, then fails seeking after the first blocks
        f.close()
        raise AudioError(f"{name}: MP3 cannot be streamed; {pipe_hint}")
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        f.close()
        raise AudioError(
            f"{name}: sample rate {f.samplerate} Hz in the header is outside "
            f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz (a corrupt header?)"
        )
    missing = _wav_data_bytes_missing(path) if kind == "regular file" and not stdin else 0
    if missing:
        f.close()
        raise AudioError(
            f"{name}: truncated (the WAV header promises {missing} more bytes than the file has)"
        )
    return f


def _wav_data_bytes_missing(path: Path) -> int:
    """For a RIFF/WAVE file: how many bytes the 'data' chunk's header promises beyond the end
    of the file (libsndfile silently shortens such files). 0 when complete or not a WAV."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return 0
            size = path.stat().st_size
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return 0
                cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"data":
                    if clen in (0, 0xFFFFFFFF):  # streamed WAV without a final length
                        return 0
                    return max(0, f.tell() + clen - size)
                f.seek(clen + (clen & 1), os.SEEK_CUR)
    except OSError:
        return 0


def audio_info(path: str | os.PathLike) -> dict:
    """Sample rate, channels, frames, duration and subtype, without decoding the samples."""
    path = Path(path)
    with _open(path) as f:
        return {
            "path": str(path),
            "sample_rate": f.samplerate,
            "channels": f.channels,
            "frames": f.frames,
            "duration_s": f.frames / f.samplerate if f.samplerate else 0.0,
            "format": f.format,
            "subtype": f.subtype,
        }


def _to_mono_checked(data: np.ndarray, path) -> np.ndarray:
    """(frames, channels) -> mono, refusing NaN/Inf and samples beyond ``MAX_FLOAT_PEAK`` (checked
    on the channels, before a mean of huge values could overflow), clipped to [-1, 1]."""
    if not data.size:
        return np.zeros(0, np.float32)
    hi, lo = float(data.max()), float(data.min())  # NaN if any is NaN; no copy of the samples
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise AudioError(f"{path}: contains NaN or Inf samples")
    peak = max(hi, -lo)
    if peak > MAX_FLOAT_PEAK:
        raise AudioError(
            f"{path}: samples reach {peak:.3g}, more than {MAX_FLOAT_PEAK:g} times full scale: not "
            "audio (a corrupt float file, or samples in integer units?)"
        )
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return np.clip(mono, -1.0, 1.0) if peak > 1.0 else mono


def read_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    *,
    max_duration_s: float = MAX_READ_DURATION_S,
) -> np.ndarray:
    """Read a whole file as mono float32 at ``sample_rate`` Hz (see the module doc for what
    is converted and what is refused)."""
    path = Path(path)
    with _open(path) as f:
        native_sr, frames, channels = f.samplerate, f.frames, f.channels
        if frames <= 0:
            raise AudioError(f"{path}: no audio samples (zero length)")
        if frames / native_sr > max_duration_s:
            raise AudioError(
                f"{path}: {frames / native_sr:.0f} s of audio is longer than the "
                f"{max_duration_s:.0f} s read whole; stream it instead"
            )
        too_big = AudioError(
            f"{path}: not enough memory to read {frames / native_sr:.0f} s of {channels}-channel audio at "
            f"{native_sr} Hz whole ({frames * channels * 4 / 1e6:.0f} MB as float32); convert it to "
            f"{sample_rate} Hz mono first (e.g. with sox)"
        )
        try:
            with silenced_fds((2,)):
                data = f.read(dtype="float32", always_2d=True)
        except MemoryError:
            raise too_big from None
        except Exception as exc:
            raise AudioError(f"{path}: corrupt audio data ({_short(exc)})") from None
    if len(data) < frames:
        raise AudioError(f"{path}: truncated (header promises {frames} frames, file holds {len(data)})")
    try:
        audio = _to_mono_checked(data, path)
        del data  # before the resampler's float64 copies
        if native_sr != sample_rate:
            audio = resample(audio, native_sr, sample_rate)
        return np.ascontiguousarray(audio, dtype=np.float32)
    except MemoryError:
        raise too_big from None


class AudioStream:
    """An audio file, a named pipe or standard input (``STDIN``) opened once and read in blocks,
    never whole (``edge-sed listen --file``). From a pipe only the header is read before the first
    block, and the audio ends where the pipe does: the length field of a WAV written to a pipe is
    a placeholder (the recorder cannot know the length), so a pipe is never called truncated."""

    def __init__(self, path):
        self.path = Path(path)
        self.name = "stdin" if str(path) == STDIN else str(self.path)
        self._f = _open(self.path, pipes=True)
        self.pipe = stat.S_ISFIFO((os.fstat(0) if self.name == "stdin" else self.path.stat()).st_mode)
        self.sample_rate, self.channels = self._f.samplerate, self._f.channels

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._f.close()

    def blocks(self, block_samples: int) -> Iterator[np.ndarray]:
        """Mono float32 blocks of ``block_samples`` at the stream's own rate (the last may be shorter)."""
        f, name = self._f, self.name
        if f.frames <= 0 and not self.pipe:
            raise AudioError(f"{name}: no audio samples (zero length)")
        read = 0
        while True:
            try:
                with silenced_fds((2,)):
                    data = f.read(block_samples, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(f"{name}: corrupt audio data ({_short(exc)})") from None
            if len(data) == 0:
                break
            read += len(data)
            yield _to_mono_checked(data, name)
        if read < f.frames and not self.pipe:
            raise AudioError(f"{name}: truncated (header promises {f.frames} frames, file holds {read})")
        if read == 0:
            raise AudioError(f"{name}: no audio samples (zero length)")


def iter_audio_blocks(
    path: str | os.PathLike, block_samples: int, sample_rate: int = SAMPLE_RATE
) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks of ``block_samples`` (the last may be shorter) without ever
    loading the file whole (an :class:`AudioStream`: a pipe or "-" too). The file must already
    be at ``sample_rate``: a streaming resampler belongs to the microphone path, and files are
    cheap to convert once."""
    with AudioStream(path) as stream:
        if stream.sample_rate != sample_rate:
            raise AudioError(
                f"{stream.name}: sample rate {stream.sample_rate} Hz, streaming needs {sample_rate} Hz "
                f"(convert the file once, e.g. with sox)"
            )
        yield from stream.blocks(block_samples)


class _KeepOSError:
    """The unbuffered file libsndfile writes through (soundfile's virtual I/O), keeping the
    first OSError: libsndfile itself reports a full disk as "System error." and loses the
    errno. (Unbuffered, so closing the file has nothing left to fail on.)"""

    def __init__(self, f):
        self.f, self.error = f, None

    def _call(self, name, *args):
        try:
            return getattr(self.f, name)(*args)
        except OSError as exc:  # never raise into the C callback: libsndfile sees a failure
            self.error = self.error or exc
            return 0 if name == "write" else -1

    def write(self, data):
        view = memoryview(data)
        while view:  # a raw write may be short (the disk filling up); the next one says why
            n = self._call("write", view)
            if not n:
                break
            view = view[n:]
        return len(data) - len(view)

    def seek(self, offset, whence=os.SEEK_SET):
        return self._call("seek", offset, whence)

    def tell(self):
        return self._call("tell")


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono audio as 16-bit PCM (WAV or FLAC by the suffix), atomically: a temporary
    file in the same folder renamed into place, so a kill or a full disk never leaves half a
    file. A full disk raises its OSError (ENOSPC) naming ``path``."""
    fmt = "FLAC" if Path(path).suffix.lower() == ".flac" else "WAV"
    with atomic_path(path) as tmp, open(tmp, "wb", buffering=0) as f:
        sink = _KeepOSError(f)
        try:
            sf.write(sink, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format=fmt)
        except Exception:
            if sink.error is None:
                raise
        if sink.error is not None:
            raise sink.error


def _kaiser_lowpass(num_taps: int, cutoff: float, beta: float = 5.0) -> np.ndarray:
    """Windowed-sinc low-pass, ``cutoff`` relative to Nyquist, unit DC gain (scipy's firwin)."""
    m = np.arange(num_taps) - (num_taps - 1) / 2.0
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(num_taps, beta)
    return h / h.sum()


class StreamingResampler:
    """Resampling block by block with a polyphase FIR filter, the one resampler here: the same
    filter and alignment as ``scipy.signal.resample_poly`` (Kaiser beta 5, half length
    10 * max(up, down)). The concatenated outputs equal :func:`resample_poly` of the concatenated
    input, except the last few, which need input that has not arrived yet (half the filter:
    < 1 ms). Only the outputs that are kept are computed, in chunks of at most ``chunk_values``
    products (16 MB) whatever the filter length."""

    def __init__(self, from_hz: int, to_hz: int = SAMPLE_RATE, chunk_values: int = 1 << 21):
        self._design(*resample_factors(from_hz, to_hz), chunk_values)  # bounded factors

    @classmethod
    def by_factors(cls, up: int, down: int, chunk_values: int = 1 << 21) -> StreamingResampler:
        """A resampler by the rational factor up/down (in lowest terms), exactly."""
        resampler = cls.__new__(cls)
        resampler._design(up, down, chunk_values)
        return resampler

    def _design(self, up: int, down: int, chunk_values: int) -> None:
        self.up, self.down, self.chunk_values = up, down, chunk_values
        self.half_len = 10 * max(up, down)
        h = _kaiser_lowpass(2 * self.half_len + 1, 1.0 / max(up, down)) * up
        self.taps = -(-len(h) // up)
        phases = np.zeros((up, self.taps))
        for p in range(up):
            sub = h[p::up]
            phases[p, : len(sub)] = sub
        self.phases = phases[:, ::-1]  # so a forward window of x lines up with the taps
        self._buf = np.zeros(self.taps - 1)  # padded input: buf[i] is x[i - (taps - 1) + offset]
        self._offset = 0  # x index of buf[taps - 1]
        self._n = 0  # next output index

    def push(self, block: np.ndarray) -> np.ndarray:
        """The float32 outputs that ``block`` (at the input rate) completes."""
        if self.up == self.down:
            return np.asarray(block, np.float32)
        return self.push64(block).astype(np.float32)

    def push64(self, block: np.ndarray) -> np.ndarray:
        """:meth:`push` in float64 (for :func:`resample_poly`)."""
        self._buf = np.concatenate([self._buf, np.asarray(block, np.float64).reshape(-1)])
        last_x = self._offset + len(self._buf) - self.taps  # last x index available
        # output n needs x up to (n * down + half_len) // up
        n_end = max(self._n, ((last_x + 1) * self.up - self.half_len + self.down - 1) // self.down)
        y = np.empty(n_end - self._n)
        if len(y):
            windows = np.lib.stride_tricks.sliding_window_view(self._buf, self.taps)
            chunk = max(1, self.chunk_values // self.taps)
            for start in range(self._n, n_end, chunk):
                s = np.arange(start, min(start + chunk, n_end)) * self.down + self.half_len  # upsampled time
                # output n = sum_i h[s%up + i*up] * x[s//up - i]; the window at buf index s//up - offset
                # covers x[s//up - taps + 1 .. s//up]
                centre = s // self.up - self._offset
                y[start - self._n : start - self._n + len(s)] = np.einsum(
                    "nk,nk->n", windows[centre], self.phases[s % self.up]
                )
        self._n = n_end
        # keep what the next output needs: from its first x minus taps - 1
        keep_from = (self._n * self.down + self.half_len) // self.up - self._offset
        keep_from = max(0, min(keep_from, len(self._buf) - self.taps + 1))
        self._buf = self._buf[keep_from:]
        self._offset += keep_from
        return y


def resample_poly(x: np.ndarray, up: int, down: int, chunk_values: int = 1 << 21) -> np.ndarray:
    """Resample by the rational factor up/down: a :class:`StreamingResampler` fed ``x`` (in
    pieces of ``chunk_values`` samples) and then the zeros after it; ``ceil(len(x) * up / down)``
    float64 samples, the same as ``scipy.signal.resample_poly(x, up, down)``."""
    x = np.asarray(x, dtype=np.float64)
    g = gcd(up, down)
    up, down = up // g, down // g
    if up == down == 1:
        return x.copy()
    resampler = StreamingResampler.by_factors(up, down, chunk_values)
    y = np.empty(-(-len(x) * up // down))
    pieces = [x[i : i + chunk_values] for i in range(0, len(x), chunk_values)]
    done = 0
    for piece in pieces + [np.zeros(resampler.taps + 1)]:
        out = resampler.push64(piece)[: len(y) - done]
        y[done : done + len(out)] = out
        done += len(out)
    return y


MAX_RESAMPLE_FACTOR = 16000
"""Largest up or down factor :func:`resample` filters with: the filter has 20 taps per unit
of it (2.6 MB of float64 at the limit). Every common rate to 16 kHz is exact (44.1 kHz is
160/441); a rate such as 383999 Hz (16000/383999, a 61 MB filter and ~800 MB of temporaries)
is resampled by the nearest ratio within the limit instead, a rate error below 0.01 %."""


def resample_factors(from_hz: int, to_hz: int) -> tuple[int, int]:
    """(up, down) for resampling ``from_hz`` to ``to_hz``: the exact ratio in lowest terms, or
    the closest ratio whose terms are at most ``MAX_RESAMPLE_FACTOR``."""
    if not all(MIN_SAMPLE_RATE <= hz <= MAX_SAMPLE_RATE for hz in (from_hz, to_hz)):
        raise AudioError(
            f"cannot resample from {from_hz} Hz to {to_hz} Hz "
            f"(rates must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz)"
        )
    ratio = Fraction(to_hz, from_hz)
    if ratio < 1:  # the denominator is the larger term
        ratio = ratio.limit_denominator(MAX_RESAMPLE_FACTOR)
    else:
        ratio = 1 / (1 / ratio).limit_denominator(MAX_RESAMPLE_FACTOR)
    return ratio.numerator, ratio.denominator


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample mono audio from ``from_hz`` to ``to_hz`` (float32 out; factors as
    :func:`resample_factors` gives them)."""
    if from_hz == to_hz:
        return np.asarray(audio, dtype=np.float32)
    return resample_poly(audio, *resample_factors(from_hz, to_hz)).astype(np.float32)


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES
