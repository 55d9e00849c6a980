"""A run's figures: the confusion matrix and a PCA projection of the test embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_sed.report.plots import _pyplot, save_figure
from edge_sed.core.settings import LABELS


def plot_confusion(metrics: dict, png: Path, title: str = "") -> None:
    """Row-normalised confusion matrix (recall on the diagonal), with counts in the cells."""
    plt = _pyplot()
    cm = np.asarray(metrics["confusion_matrix"], float)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(
                j,
                i,
                f"{rates[i, j]:.2f}\n({int(cm[i, j])})",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if rates[i, j] > 0.6 else "black",
            )
    labels = metrics.get("labels", LABELS)
    ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    ax.set_title(
        f"{title}\noverall error {metrics['overall_error']:.3f}, macro-F1 {metrics['macro_f1']:.3f}",
        fontsize=9,
    )
    save_figure(fig, png)


def _pca_2d(x: np.ndarray):
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return lambda v: (v - mean) @ vt[:2].T


def plot_embeddings(embeddings: np.ndarray, y: np.ndarray, png: Path, embedding_loss=None) -> None:
    """PCA of the L2-normalised embeddings coloured by class; with a clustered-centroid loss a
    second panel colours them by their nearest centroid and marks the centroids."""
    plt = _pyplot()
    z = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    project = _pca_2d(z)
    p = project(z)
    panels = 2 if embedding_loss is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.4), squeeze=False)
    ax = axes[0, 0]
    for c, label in enumerate(LABELS):
        m = y == c
        ax.scatter(
            p[m, 0], p[m, 1], s=8 if label == "background" else 14, alpha=0.6, label=f"{label} ({m.sum()})"
        )
    ax.legend(fontsize=7), ax.set_title("test embeddings by class (PCA)", fontsize=9)
    if embedding_loss is not None:
        centroids = embedding_loss.centroids.detach().numpy()
        owner = embedding_loss.cluster_class.numpy()
        nearest = np.argmin(((z[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
        pc = project(centroids)
        ax = axes[0, 1]
        ax.scatter(p[:, 0], p[:, 1], c=nearest, cmap="tab20", s=8, alpha=0.6)
        for c, label in enumerate(LABELS):
            ax.scatter(
                pc[owner == c, 0],
                pc[owner == c, 1],
                marker="X",
                s=60,
                edgecolor="black",
                label=f"{label} centroids ({(owner == c).sum()})",
            )
        ax.legend(fontsize=7), ax.set_title("by nearest cluster centroid (X = centroids)", fontsize=9)
    save_figure(fig, png)
