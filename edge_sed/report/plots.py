"""PNG figures. matplotlib (the ``report`` extra) is imported only when a figure is drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_sed.core.atomic import atomic_path
from edge_sed.core.errors import EdgeSedError, install_extra
from edge_sed.core.settings import LABELS


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgeSedError(f"drawing PNGs needs matplotlib: {install_extra('report')}") from None
    return plt


def save_figure(fig, path: Path) -> None:
    """Write a PNG atomically (temp file + rename) and close the figure."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def plot_log_mel_examples(clips, png: Path, examples_per_class: int = 3, seed: int = 0) -> Path:
    """A grid of log-mel spectrograms: one row per class, ``examples_per_class`` columns, each
    the 1 s training window of a randomly chosen clip (seeded)."""
    from edge_sed.core.audio_io import read_audio
    from edge_sed.data.datasets import clip_to_window
    from edge_sed.core.frontend import FrontendConfig, log_mel

    plt = _pyplot()
    cfg = FrontendConfig()
    rng = np.random.default_rng(seed)
    labels = [l for l in LABELS if any(c.label == l for c in clips)]
    if not labels:
        raise EdgeSedError("no clips to draw")
    fig, axes = plt.subplots(
        len(labels), examples_per_class, squeeze=False, figsize=(2.6 * examples_per_class, 1.9 * len(labels))
    )
    drawn = []  # (row, col, name, features): drawn after, on one shared colour scale
    for row, label in enumerate(labels):
        members = [c for c in clips if c.label == label]
        picks = rng.choice(len(members), size=min(examples_per_class, len(members)), replace=False)
        for col, pick in enumerate(picks):
            clip = members[pick]
            window = clip_to_window(read_audio(clip.path), clip.label, seed, clip.path.name)
            drawn.append((row, col, clip.path.name, log_mel(window, cfg)))
    everything = np.concatenate([f.ravel() for *_, f in drawn])
    vmin, vmax = np.percentile(everything, [2, 99.5])
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
        ax.axis("off")
    for row, col, name, feats in drawn:
        ax = axes[row, col]
        ax.axis("on")
        ax.imshow(feats.T, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax)
        ax.set_title(name[:28], fontsize=7)
        if col == 0:
            ax.set_ylabel(f"{labels[row]}\nmel 0-{cfg.n_mels - 1}", fontsize=8)
    fig.suptitle(
        f"log-mel windows (1 s, {cfg.n_mels} mels {cfg.fmin_hz:.0f}-{cfg.fmax_hz:.0f} Hz, "
        f"hop {cfg.hop_ms:.0f} ms)",
        fontsize=9,
    )
    save_figure(fig, png)
    return Path(png)
