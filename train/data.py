"""From a data set on disk to the tensors a trainer uses: train/val/test log-mel windows.

The data source is one of:
- a folder with ``train.csv``, ``val.csv``, ``test.csv`` (what ``edge-sed data prepare`` wrote):
  used as it is;
- anything ``edge_sed.data.datasets.load_clips`` reads (a metadata.csv, UrbanSound8K, ESC-50, class
  folders): split by group, the training split subsampled to the ratio, with the run's seed;
- ``synthetic``: the built-in generator, written once per (counts, seed) under
  ``~/.cache/edge-sed/synth`` (or $EDGE_SED_CACHE) and then read like any metadata.csv.

For one seed every objective sees the same split, the same subsample and the same windows:
that is what makes objective-vs-objective differences paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_sed.core.audio_io import read_audio
from edge_sed.core.errors import DatasetError
from edge_sed.data.datasets import (  # noqa: F401 (synthetic_source: train.stateful, experiments use it)
    data_source,
    locate_window,
    run_clip_splits,
    synthetic_source,
)
from edge_sed.core.frontend import FrontendConfig, log_mel
from edge_sed.core.settings import BACKGROUND, CLIP_WINDOW_S, LABELS, SAMPLE_RATE


@dataclass
class Split:
    x: np.ndarray  # (N, frames, n_mels) float32 log-mel of the policy window of every clip
    y: np.ndarray  # (N,) int64 label index
    groups: list
    paths: list
    clip_features: list | None = None  # per clip: log-mel of the whole (padded) clip
    anchors: np.ndarray | None = None  # per clip: frame where the policy window starts

    def counts(self) -> list[int]:
        return np.bincount(self.y, minlength=len(LABELS)).tolist()

    def random_crops(self, rng: np.random.Generator, jitter_frames: int) -> np.ndarray:
        """Training augmentation: a fresh window per clip. Event clips: the policy window
        shifted by up to +-jitter_frames (the event stays inside); background clips: anywhere in
        the clip. Without whole-clip features (e.g. splits built in memory) the policy windows."""
        if self.clip_features is None or jitter_frames <= 0:
            return self.x
        width = self.x.shape[1]
        out = np.empty_like(self.x)
        background = LABELS.index(BACKGROUND)
        for i, feats in enumerate(self.clip_features):
            last = len(feats) - width
            if self.y[i] == background:
                start = rng.integers(0, last + 1)
            else:
                start = int(
                    np.clip(self.anchors[i] + rng.integers(-jitter_frames, jitter_frames + 1), 0, last)
                )
            out[i] = feats[start : start + width]
        return out

    def mix_backgrounds(
        self,
        x: np.ndarray,
        rng: np.random.Generator,
        prob: float,
        ebr_db=(-3.0, 12.0),
        gain_db: float = 0.0,
        floor: float = 1e-6,
    ) -> np.ndarray:
        """Training augmentation for streams: each event window, with probability ``prob``, is
        laid over a random background window of the split at an event-to-background ratio drawn
        from ``ebr_db`` (dB, on mean mel power), as a stream puts an event on a new background;
        then every window gets a random gain of up to +-``gain_db``. Done on mel power (the log
        front end's exp), so it needs no audio: power of a sum ~ sum of powers (no cross term)."""
        if prob <= 0 and gain_db <= 0:
            return x
        out = x.copy()
        background = LABELS.index(BACKGROUND)
        bg = np.flatnonzero(self.y == background)
        events = np.flatnonzero(self.y != background)
        if prob > 0 and len(bg):
            chosen = events[rng.random(len(events)) < prob]
            under = x[rng.choice(bg, len(chosen))]
            p_ev, p_bg = np.exp(x[chosen]) - floor, np.exp(under) - floor
            ratio = 10 ** (rng.uniform(*ebr_db, len(chosen)) / 10)
            scale = ratio * p_bg.mean(axis=(1, 2)) / np.maximum(p_ev.mean(axis=(1, 2)), 1e-12)
            # the event is brought to the drawn ratio over the background; the sum keeps the
            # background's level, as a stream's bed does
            out[chosen] = np.log(np.maximum(p_ev * scale[:, None, None] + p_bg, 0) + floor)
        if gain_db > 0:
            g = 10 ** (rng.uniform(-gain_db, gain_db, len(out)) / 10)
            out = np.log(np.maximum(np.exp(out) - floor, 0) * g[:, None, None] + floor)
        return out.astype(np.float32)


def features(windows: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    return (
        np.stack([log_mel(w, cfg) for w in windows])
        if len(windows)
        else np.zeros((0, 0, cfg.n_mels), np.float32)
    )


def load_splits(
    data: str,
    ratio: str | None,
    seed: int,
    synth_counts: str | None = None,
    fractions=(0.7, 0.15, 0.15),
    ratio_splits=("train",),
) -> dict[str, Split]:
    """Train/val/test splits as log-mel windows (see the module doc for ``data``)."""
    source = data_source(data, seed, synth_counts)
    clip_splits = run_clip_splits(source, ratio, seed, fractions, ratio_splits)
    return {name: clips_to_split(clips, seed) for name, clips in clip_splits.items()}


_RUN_SPLITS: dict = {}


def run_test_split(provenance: dict, data: str | None = None) -> Split:
    """The test split of the run a bundle came from (its manifest's ``provenance``), rebuilt as the
    trainer built it: ``data`` (default: the run's own data set) with the run's ratio, seed and
    synthetic counts. Cached per process: verify and the Pi simulator ask for it bundle by bundle."""
    source = data or provenance.get("dataset")
    if not source:
        raise DatasetError("the bundle's manifest records no data set: give one (--data PATH)")
    key = (source, provenance.get("ratio"), provenance.get("seed") or 0, provenance.get("synth_counts"))
    if key not in _RUN_SPLITS:
        _RUN_SPLITS[key] = load_splits(*key)["test"]
    return _RUN_SPLITS[key]


def clips_to_split(clips, seed: int, cfg: FrontendConfig = FrontendConfig()) -> Split:
    """Policy windows (exactly ``clip_to_window``'s audio, then log-mel) plus each clip's
    whole log-mel and the frame where its policy window starts, for random crops."""
    n = int(round(CLIP_WINDOW_S * SAMPLE_RATE))
    windows, clip_features, anchors = [], [], []
    for clip in clips:
        audio, start = locate_window(read_audio(clip.path), clip.label, seed, clip.path.name)
        windows.append(log_mel(audio[start : start + n], cfg))
        clip_features.append(log_mel(audio, cfg))
        anchors.append(min(round(start / cfg.hop_samples), len(clip_features[-1]) - len(windows[-1])))
    x = np.stack(windows) if windows else np.zeros((0, cfg.num_frames(n), cfg.n_mels), np.float32)
    return Split(
        x,
        np.array([LABELS.index(c.label) for c in clips], np.int64),
        [c.group for c in clips],
        [str(c.path) for c in clips],
        clip_features,
        np.asarray(anchors, np.int64),
    )
