"""PNG figures: the report's plots (``draw_plots``) and the log-mel examples of the data. matplotlib
(the ``report`` extra) is imported only when a figure is drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_sed.core.atomic import atomic_path
from edge_sed.core.errors import EdgeSedError, install_extra
from edge_sed.core.settings import LABELS
from edge_sed.report.collect import LEVEL_ORDER


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


# ------------------------------------------------------------------ the report's plots


def draw_plots(report: dict, out: Path) -> dict:
    """Every PNG of the report that its data allows; {name: path}."""
    pngs = {}
    for name, fn in (
        ("accuracy_vs_latency", plot_accuracy_vs_latency),
        ("accuracy_vs_cycles", plot_size_curve),
        ("per_class_error", plot_per_class_error),
        ("confusion_fp32_vs_int8", plot_confusions),
        ("training", plot_training),
    ):
        path = out / f"{name}.png"
        if fn(report, path):
            pngs[name] = path
    return pngs


def _objectives(report):
    return list(dict.fromkeys(r["objective"] for r in report["summary"]))


def _latency_points(report: dict, d: dict, summary: dict) -> list[tuple]:
    """(objective, level, x = compute ms per second of audio, event F1 mean, sd) of one device."""
    pts = []
    for name, c in d.get("levels", {}).items():
        if c.get("status") != "ok":
            continue
        x = c.get("ms_per_s_audio")
        if x is None and c.get("duty_cycle") is not None:
            x = 1000 * c["duty_cycle"]
        if x is None:
            continue
        for objective in _objectives(report):
            r = summary.get((objective, name))
            if r and r["event_f1"]["mean"] is not None:
                pts.append((objective, name, x, r["event_f1"]["mean"], r["event_f1"]["sd"]))
    return pts


def _latency_panel(ax, d: dict, pts: list, markers: dict, colors: dict) -> None:
    import matplotlib.ticker

    for objective, name, x, y, sd in pts:
        ax.errorbar(
            x,
            y,
            yerr=sd or 0,
            fmt=markers[objective],
            color=colors.get(name, "k"),
            ms=7,
            capsize=3,
            label=name if objective == pts[0][0] else None,
        )
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # they overlap on a narrow range
    xs = [p[2] for p in pts]
    if max(xs) / min(xs) < 10:  # a narrow range has no decade tick: a few plain ones
        lo, hi = min(xs), max(xs)
        ax.set_xticks(
            sorted({float(f"{x:.3g}") for x in ((lo, (lo * hi) ** 0.5, hi) if hi > lo * 1.001 else (lo,))})
        )
    ax.set_xlabel(
        "compute per second of audio, ms (log)" + (" - ESTIMATE" if d["estimate"] else " - measured")
    )
    ax.set_ylabel("event F1 on the test stream")
    ax.set_ylim(0, 1.02)
    ax.set_title(d["profile"], fontsize=10)
    ax.grid(alpha=0.3)


def plot_accuracy_vs_latency(report: dict, png: Path) -> bool:
    """One panel per device with figures: x = compute per second of audio (ms, log), y = event F1
    on the test stream; one point per level (mean over seeds, one marker per objective)."""
    summary = {(r["objective"], r["level"]): r for r in report["summary"] if r["status"] == "ok"}
    panels = [(d, pts) for d in report["devices"] if (pts := _latency_points(report, d, summary))]
    if not panels:
        return False
    plt = _pyplot()
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    markers = dict(zip(_objectives(report), "os^Dv<>"))
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(LEVEL_ORDER)}
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    for ax, (d, pts) in zip(axes.ravel(), panels):
        _latency_panel(ax, d, pts, markers, colors)
    if len(markers) > 1:
        axes.ravel()[0].legend(
            handles=[plt.Line2D([], [], marker=m, ls="", color="gray", label=o) for o, m in markers.items()],
            fontsize=7,
            loc="best",
        )
    fig.suptitle(
        "event F1 (device loop on a test stream) vs compute per device, one point per bundle", fontsize=11
    )
    fig.tight_layout()
    save_figure(fig, png)
    return True


def plot_size_curve(report: dict, png: Path) -> bool:
    """The size curve: x = MCU duty cycle (estimate), y = event F1 on the test streams (mean ± sd
    over seeds); one panel per MCU profile, one point per network size x level."""
    curve = report.get("size_curve") or {}
    pts = [p for p in curve.get("points", []) if (p.get("event_f1") or {}).get("mean") is not None]
    profiles = [n for n in curve.get("profiles", []) if any(p["profile"] == n for p in pts)]
    if not profiles:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.6 * len(profiles), 4.6), squeeze=False, sharey=True)
    keys = list(dict.fromkeys((p["architecture"], p["level"]) for p in pts))
    style = {k: (plt.cm.tab10(i % 10), "os^Dv<>P"[i % 8]) for i, k in enumerate(keys)}
    for ax, name in zip(axes.ravel(), profiles):
        for p in (p for p in pts if p["profile"] == name):
            f1 = p["event_f1"]
            color, marker = style[(p["architecture"], p["level"])]
            ax.errorbar(
                100 * p["duty_cycle"],
                f1["mean"],
                yerr=f1["sd"] or 0,
                fmt=marker,
                color=color,
                ms=7,
                capsize=3,
            )
        ax.axvline(10, ls="--", c="grey", lw=0.8)
        ax.set_xlabel("duty cycle, % of the core (ESTIMATE)")
        ax.set_xlim(0, max(11.0, 1.1 * max(100 * p["duty_cycle"] for p in pts if p["profile"] == name)))
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("event F1 on the test streams (mean ± sd)")
    fig.legend(
        handles=[
            plt.Line2D([], [], marker=m, ls="", color=c, label=f"{a} ({lv})")
            for (a, lv), (c, m) in style.items()
        ],
        loc="lower center",
        ncol=min(3, len(style)),
        fontsize=8,
    )
    fig.suptitle(
        "accuracy against device cost, one point per network size (dashed: 10 % of the core)", fontsize=11
    )
    fig.tight_layout(rect=(0, 0.06 * (1 + (len(style) - 1) // 3), 1, 1))
    save_figure(fig, png)
    return True


def plot_per_class_error(report: dict, png: Path) -> bool:
    rows = [r for r in report["summary"] if r["status"] == "ok" and r["per_class_error"]]  # clip-level rows
    objectives = [o for o in _objectives(report) if any(r["objective"] == o for r in rows)]
    if not rows:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(len(objectives), 1, figsize=(11, 3.3 * len(objectives)), squeeze=False)
    for ax, objective in zip(axes[:, 0], objectives):
        rs = [r for r in rows if r["objective"] == objective]
        classes = [c for c in LABELS if c in rs[0]["per_class_error"]]
        x = np.arange(len(rs))
        width = 0.8 / len(classes)
        for k, c in enumerate(classes):
            means = [r["per_class_error"][c]["mean"] or 0 for r in rs]
            sds = [r["per_class_error"][c]["sd"] or 0 for r in rs]
            ax.bar(
                x + (k - (len(classes) - 1) / 2) * width,
                means,
                width,
                label=c,
                **({"yerr": sds, "capsize": 2} if any(sds) else {}),
            )
        ax.set_xticks(x, [r["level"] for r in rs], fontsize=8)
        ax.set_ylabel("error (1 - recall)")
        n = rs[0]["sets"]
        ax.set_title(
            f"{objective}: per-class test error per level" + (f" (mean ± sd, {n} seeds)" if n > 1 else ""),
            fontsize=10,
        )
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=len(classes))
    fig.tight_layout()
    save_figure(fig, png)
    return True


def _confusion_panels(report: dict) -> list[tuple]:
    """(objective, level, confusion matrix summed over seeds, seeds) for fp32 and int8."""
    panels = []
    for objective in _objectives(report):
        for level in ("fp32", "int8"):
            mats = [
                s["levels"][level]["clip"]["confusion_matrix"]
                for s in report["model_sets"]
                if s["objective"] == objective
                and s["levels"].get(level, {}).get("status") == "ok"
                and s["levels"][level]["clip"].get("confusion_matrix")
            ]
            if mats:
                panels.append((objective, level, np.sum(np.asarray(mats), axis=0), len(mats)))
    return panels


def plot_confusions(report: dict, png: Path) -> bool:
    """fp32 vs int8 confusion matrices (test split, summed over seeds), row-normalised colour,
    counts written in."""
    panels = _confusion_panels(report)
    if not panels:
        return False
    plt = _pyplot()
    labels = list(LABELS)
    cols = 2
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    for ax, (objective, level, cm, n) in zip(axes.ravel(), panels):
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{cm[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if norm[i, j] > 0.6 else "black",
                )
        ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{objective} {level}" + (f" ({n} seeds summed)" if n > 1 else ""), fontsize=9)
    fig.suptitle("confusion matrices, test split: fp32 vs int8", fontsize=10)
    fig.tight_layout()
    save_figure(fig, png)
    return True


def plot_training(report: dict, png: Path) -> bool:
    """Per-class test error of each objective (bars: mean over seeds, dots: single seeds)."""
    tr = report.get("training")
    if not tr or not tr["runs"]:
        return False
    plt = _pyplot()
    objectives = list(tr["by_objective"])
    classes = list(LABELS) + ["overall"]
    fig, ax = plt.subplots(figsize=(8.5, 3.6))
    width = 0.8 / len(objectives)
    x = np.arange(len(classes))
    for k, objective in enumerate(objectives):
        s = tr["by_objective"][objective]
        stats = [s["per_class_error"].get(c) for c in LABELS] + [s["overall_error"]]
        pos = x + (k - (len(objectives) - 1) / 2) * width
        ax.bar(
            pos,
            [(st or {}).get("mean") or 0 for st in stats],
            width,
            label=f"{objective} ({s['runs']} runs)",
            alpha=0.8,
        )
        for r in (r for r in tr["runs"] if r["objective"] == objective):
            vals = [r["per_class_error"].get(c) for c in LABELS] + [r["overall_error"]]
            ax.scatter(pos, [v if v is not None else np.nan for v in vals], s=10, color="k", zorder=3)
    ax.set_xticks(x, classes)
    ax.set_ylabel("test error (1 - recall)")
    ax.set_title("training objectives: per-class test error (bars: mean, dots: seeds)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, png)
    return True
