"""The front end: 16 kHz mono audio -> log-mel frames, in batch and streaming modes that agree
bit for bit.

Defaults (FrontendConfig), chosen for 16 kHz audio band-limited to about 4 kHz:
- window 25 ms (400 samples), periodic Hann, zero-padded to a 512-point FFT;
- hop 10 ms (160 samples); the first frame starts at sample 0 and there is no centre padding,
  so a frame exists only once all its samples have arrived (what a microphone allows);
- 40 triangular mel bands (HTK mel scale, unit peak, no area normalisation) from 50 Hz to
  4000 Hz, on the power spectrum |FFT|^2;
- natural log of (mel energy + 1e-6): the floor keeps digital silence finite; or, with
  ``compression="pcen"``, per-channel energy normalization (Wang et al. 2017, "Trainable
  frontend for robust and far-field keyword spotting"): each band's energy E over a smoothed
  energy M (M_t = (1 - s) M_{t-1} + s E_t, M_0 = E_0; s = 0.025 per 10 ms frame, a ~0.4 s time
  constant) to the power alpha — an automatic gain per band that follows the background — then
  root compression: (E / (eps + M)^alpha + delta)^r - delta^r. It is causal and carries M from
  the first frame of a stream, in both modes.

A clip of N samples gives 1 + (N - 400) // 160 frames (98 for one second), 0 if N < 400.
Every number needed to recompute the features exactly is in FrontendConfig.to_dict(), which
the model bundle's manifest stores.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from edge_sed.core.settings import SAMPLE_RATE

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 48_000
FFT_SIZES = tuple(2**k for k in range(5, 14))
"""32..8192 points: beyond that a frame is longer than half a second of 16 kHz audio."""
MAX_MELS = 256
COMPRESSIONS = ("log", "pcen")
MIN_LOG_FLOOR, MAX_LOG_FLOOR = 1e-12, 1e-2
"""The floor keeps silence finite; above 1e-2 it would bury every sound quieter than speech."""


@dataclass(frozen=True)
class FrontendConfig:
    sample_rate: int = SAMPLE_RATE
    window_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 40
    fmin_hz: float = 50.0
    fmax_hz: float = 4000.0
    log_floor: float = 1e-6
    compression: str = "log"  # log | pcen
    pcen_smooth: float = 0.025  # s: the smoother's weight of the new frame
    pcen_alpha: float = 0.98  # gain normalization strength (1: fully level-invariant)
    pcen_delta: float = 2.0  # bias before the root
    pcen_root: float = 0.5  # r
    pcen_eps: float = 1e-6  # keeps 1 / M finite in digital silence

    def __post_init__(self):
        """ValueError naming the first field outside what the front end can compute (and what a
        model could have been trained on): a bundle's manifest is parsed through here."""
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression={self.compression!r} must be one of {', '.join(COMPRESSIONS)}")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "compression":
                continue
            if isinstance(f.default, int):
                if not isinstance(v, int) or isinstance(v, bool):
                    raise ValueError(f"{f.name}={v!r} must be a whole number")
            elif not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{f.name}={v!r} must be a finite number")
        nyquist = self.sample_rate / 2
        checks = [
            (
                MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE,
                "sample_rate",
                f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
            ),
            (self.n_fft in FFT_SIZES, "n_fft", f"a power of two, {FFT_SIZES[0]}..{FFT_SIZES[-1]}"),
            (self.window_ms > 0 and self.window_samples >= 2, "window_ms", "at least 2 samples"),
            (self.window_samples <= self.n_fft, "window_ms", f"at most n_fft={self.n_fft} samples"),
            (self.hop_ms > 0 and self.hop_samples >= 1, "hop_ms", "at least 1 sample"),
            (self.hop_samples <= self.window_samples, "hop_ms", f"at most window_ms={self.window_ms:g}"),
            (
                1 <= self.n_mels <= min(MAX_MELS, self.n_fft // 2 + 1),
                "n_mels",
                f"1..{min(MAX_MELS, self.n_fft // 2 + 1)}",
            ),
            (0 <= self.fmin_hz < self.fmax_hz, "fmin_hz", f"0 <= fmin_hz < fmax_hz={self.fmax_hz:g}"),
            (self.fmax_hz <= nyquist, "fmax_hz", f"at most sample_rate / 2 = {nyquist:g}"),
            (
                MIN_LOG_FLOOR <= self.log_floor <= MAX_LOG_FLOOR,
                "log_floor",
                f"{MIN_LOG_FLOOR:g}..{MAX_LOG_FLOOR:g}",
            ),
            (0 < self.pcen_smooth <= 1, "pcen_smooth", "in (0, 1]"),
            (0 <= self.pcen_alpha <= 1, "pcen_alpha", "in [0, 1]"),
            (0 <= self.pcen_delta <= 100, "pcen_delta", "in [0, 100]"),
            (0 < self.pcen_root <= 1, "pcen_root", "in (0, 1]"),
            (
                MIN_LOG_FLOOR <= self.pcen_eps <= MAX_LOG_FLOOR,
                "pcen_eps",
                f"{MIN_LOG_FLOOR:g}..{MAX_LOG_FLOOR:g}",
            ),
        ]
        for ok, name, want in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} must be {want}")
        empty = np.flatnonzero(mel_filterbank(self).max(axis=1) <= 0)
        if len(empty):
            raise ValueError(
                f"{self.n_mels} mel bands from fmin_hz={self.fmin_hz:g} to fmax_hz={self.fmax_hz:g} "
                f"leave band {int(empty[0])} with no FFT bin (n_fft={self.n_fft}): "
                "the band range is too narrow"
            )

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def hop_samples(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    def num_frames(self, num_samples: int) -> int:
        """Frames produced by ``num_samples`` of audio."""
        if num_samples < self.window_samples:
            return 0
        return 1 + (num_samples - self.window_samples) // self.hop_samples

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FrontendConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown front-end parameters: {sorted(unknown)}")
        return cls(**d)


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(cfg: FrontendConfig) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, HTK mel scale, peak 1."""
    bins_hz = np.arange(cfg.n_fft // 2 + 1) * cfg.sample_rate / cfg.n_fft
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin_hz), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2))
    lo, mid, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz - lo) / (mid - lo)
    falling = (hi - bins_hz) / (hi - mid)
    return np.maximum(0.0, np.minimum(rising, falling))


class _Kernel:
    """The per-frame arithmetic shared by both modes, so they cannot drift apart."""

    def __init__(self, cfg: FrontendConfig):
        self.cfg = cfg
        n = cfg.window_samples
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)
        self.filterbank_t = np.ascontiguousarray(mel_filterbank(cfg).T.astype(np.float32))

    def frames_to_mel(self, frames: np.ndarray) -> np.ndarray:
        """(F, window_samples) float32 frames -> (F, n_mels) float32 mel energies."""
        spectrum = np.fft.rfft(frames * self.window, n=self.cfg.n_fft, axis=1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        # einsum without BLAS: each output is the same sum in the same order whatever F is,
        # which is what makes streaming (small F) and batch (large F) agree bit for bit.
        return np.einsum("fk,km->fm", power, self.filterbank_t, optimize=False)

    def compress(self, mel: np.ndarray, m: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(..., F, n_mels) mel energies -> (features float32, the PCEN smoother's state after the
        last frame). ``m``: that state before the first frame (None: the start of a stream)."""
        cfg = self.cfg
        if cfg.compression == "log":
            return np.log(mel + np.float32(cfg.log_floor)).astype(np.float32), None
        e = np.moveaxis(np.asarray(mel, np.float64), -2, 0)
        out = np.empty_like(e)
        s, a, d, r, eps = cfg.pcen_smooth, cfg.pcen_alpha, cfg.pcen_delta, cfg.pcen_root, cfg.pcen_eps
        d_r = d**r
        for t in range(len(e)):  # frame by frame: the same arithmetic for one frame or a whole clip
            m = e[t].copy() if m is None else (1.0 - s) * m + s * e[t]
            out[t] = (e[t] / (eps + m) ** a + d) ** r - d_r
        return np.moveaxis(out, 0, -2).astype(np.float32), m

    def frames_to_log_mel(self, frames: np.ndarray) -> np.ndarray:
        """(F, window_samples) float32 frames -> (F, n_mels) float32 features of a clip from its start."""
        return self.compress(self.frames_to_mel(frames))[0]


def _frame(audio: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    n = cfg.num_frames(len(audio))
    if n == 0:
        return np.zeros((0, cfg.window_samples), np.float32)
    view = np.lib.stride_tricks.sliding_window_view(audio, cfg.window_samples)
    return view[:: cfg.hop_samples][:n]


_kernels: dict[FrontendConfig, _Kernel] = {}


def _kernel(cfg: FrontendConfig) -> _Kernel:
    if cfg not in _kernels:
        _kernels[cfg] = _Kernel(cfg)
    return _kernels[cfg]


def mel_energies(audio: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Batch mode, before compression: (frames, n_mels) float32 mel energies of a clip."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
    return _kernel(cfg).frames_to_mel(_frame(audio, cfg))


def compress(mel: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """``mel_energies`` of one clip (frames, n_mels), or of many clips of equal length
    (clips, frames, n_mels), -> features, each clip from its start (what ``log_mel`` gives)."""
    return _kernel(cfg).compress(mel)[0]


def log_mel(audio: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Batch mode: a whole clip (float32, ``cfg.sample_rate`` Hz) -> (frames, n_mels) features
    (log-mel, or PCEN-mel with ``cfg.compression="pcen"``)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
    return _kernel(cfg).frames_to_log_mel(_frame(audio, cfg))


class StreamingLogMel:
    """Streaming mode: push blocks of any size as a microphone delivers them; get back the
    frames that became complete. The concatenation of all outputs equals ``log_mel`` of the
    concatenated input, bit for bit. Holds at most window_samples - 1 + block samples."""

    def __init__(self, cfg: FrontendConfig = FrontendConfig()):
        self.cfg = cfg
        self._kernel = _kernel(cfg)
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, np.float32)
        self._m = None  # the PCEN smoother's state, carried from the first frame
        self.samples_in = self.frames_out = 0
        self.peaks = np.zeros(0, np.float32)

    def push(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self.samples_in += len(block)
        pending = np.concatenate([self._pending, block]) if len(self._pending) else block
        frames = _frame(pending, self.cfg)
        self._pending = pending[len(frames) * self.cfg.hop_samples :].copy()
        self.frames_out += len(frames)
        mel = self._kernel.frames_to_mel(frames)
        if not len(frames):
            self.peaks = np.zeros(0, np.float32)
            return np.zeros((0, self.cfg.n_mels), np.float32)
        features, self._m = self._kernel.compress(mel, self._m)
        # the loudest band of each frame returned, as log(energy + floor) whatever the
        # compression: what a silence gate compares with a power (log features already are that)
        self.peaks = (
            features.max(1)
            if self.cfg.compression == "log"
            else np.log(mel.max(1) + np.float32(self.cfg.log_floor)).astype(np.float32)
        )
        return features
