"""From a data set on disk to the tensors a trainer uses: train/val/test log-mel windows.

The data source is one of:
- a folder with ``train.csv``, ``val.csv``, ``test.csv`` (what ``edge-sed data prepare`` wrote):
  used as it is;
- anything ``edge_sed.datasets.load_clips`` reads (a metadata.csv, UrbanSound8K, ESC-50, class
  folders): split by group, the training split subsampled to the ratio, with the run's seed;
- ``synthetic``: the built-in generator, written once per (counts, seed) under
  ``~/.cache/edge-sed/synth`` (or $EDGE_SED_CACHE) and then read like any metadata.csv.

For one seed every objective sees the same split, the same subsample and the same windows:
that is what makes objective-vs-objective differences paired.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_sed.datasets import (SPLITS, load_clips, load_windows, parse_ratio, prepare_splits,
                               read_metadata_csv)
from edge_sed.frontend import FrontendConfig, log_mel
from edge_sed.settings import LABELS


@dataclass
class Split:
    x: np.ndarray  # (N, frames, n_mels) float32 log-mel
    y: np.ndarray  # (N,) int64 label index
    groups: list
    paths: list

    def counts(self) -> list[int]:
        return np.bincount(self.y, minlength=len(LABELS)).tolist()


def cache_dir() -> Path:
    return Path(os.environ.get("EDGE_SED_CACHE", Path.home() / ".cache" / "edge-sed"))


def synthetic_source(counts: str, seed: int) -> Path:
    """The metadata.csv of the synthetic set with these counts and this seed, made if missing."""
    from edge_sed.synth import write_dataset

    parsed = {k: int(v) for k, v in parse_ratio(counts).items()}
    folder = cache_dir() / "synth" / f"{'-'.join(str(parsed[l]) for l in LABELS)}-seed{seed}"
    csv_path = folder / "metadata.csv"
    if not csv_path.exists():  # written last and atomically, so its presence means complete
        write_dataset(folder, parsed, seed=seed)
    return csv_path


def features(windows: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    return np.stack([log_mel(w, cfg) for w in windows]) if len(windows) else np.zeros((0, 0, cfg.n_mels), np.float32)


def load_splits(data: str, ratio: str | None, seed: int, synth_counts: str = "120:120:60:1560",
                fractions=(0.7, 0.15, 0.15), ratio_splits=("train",)) -> dict[str, Split]:
    """Train/val/test splits as log-mel windows (see the module doc for ``data``)."""
    if data == "synthetic":
        source = synthetic_source(synth_counts, seed)
    else:
        source = Path(data)
    if source.is_dir() and all((source / f"{s}.csv").exists() for s in SPLITS):
        clip_splits = {s: read_metadata_csv(source / f"{s}.csv") for s in SPLITS}
    else:
        clip_splits = prepare_splits(load_clips(source), ratio=parse_ratio(ratio) if ratio else None,
                                     fractions=fractions, seed=seed, ratio_splits=ratio_splits)
    out = {}
    for name, clips in clip_splits.items():
        windows, y, groups = load_windows(clips, seed=seed)
        out[name] = Split(features(windows), np.asarray(y, np.int64), list(groups), [str(c.path) for c in clips])
    return out
