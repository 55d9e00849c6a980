"""From per-frame scores to events and event metrics, without a runtime: what the device loop
does after the model, for scores computed elsewhere (a torch model during training, a batch of
LiteRT outputs). The smoother is the device's own (edge_sed.core.smoother), fed one decision per
frame at the frame's end time, so these events equal the device loop's for the same scores."""

from __future__ import annotations

import numpy as np

from edge_sed.core.events import Annotation, Event, event_metrics
from edge_sed.core.frontend import FrontendConfig
from edge_sed.core.smoother import Smoother, estimate_onset


def frame_end_times(n_frames: int, cfg: FrontendConfig = FrontendConfig(), every: int = 1) -> np.ndarray:
    """Stream time (s) at which frame i (0-based) is complete, for i = every-1, 2*every-1, ..."""
    idx = np.arange(every - 1, n_frames, every)
    return (idx * cfg.hop_samples + cfg.window_samples) / cfg.sample_rate


def detect(
    scores: np.ndarray, smoother: Smoother, cfg: FrontendConfig = FrontendConfig(), every: int = 1
) -> list:
    """Events from (frames, classes) per-frame probabilities, one smoother decision every
    ``every`` frames (that frame's own scores). Exactly what feeding ``smoother.update`` one
    decision at a time gives (tests/test_scoring.py checks it), but vectorised: the running
    averages come from a cumulative sum and only decisions above their threshold are visited,
    so calibrating thresholds over hours of stream takes seconds."""
    smoother.reset()
    times = frame_end_times(len(scores), cfg, every)
    s = np.asarray(scores, np.float32)[every - 1 :: every][: len(times)]
    if not len(s):
        return []
    if not np.isfinite(s).all():  # the smoother skips non-finite decisions: take the slow path
        return [e for t, x in zip(times, s) if (e := smoother.update(float(t), x)) is not None]
    first = np.searchsorted(times, times - smoother.average_window_s - 1e-9, side="right")
    csum = np.concatenate([np.zeros((1, s.shape[1])), np.cumsum(s, 0, dtype=np.float64)])
    count = np.arange(1, len(s) + 1) - first
    avg = (csum[1:] - csum[first]) / np.maximum(count, 1)[:, None]
    top = avg.argmax(1)
    best = avg[np.arange(len(s)), top]
    candidates = np.flatnonzero((count >= smoother.minimum_count) & (best > smoother._threshold[top]))
    events, previous, previous_t = [], smoother.background, None
    for i in candidates:
        label, t = smoother.labels[top[i]], float(times[i])
        since = np.inf if previous in (None, smoother.background) or previous_t is None else t - previous_t
        if label == previous and since <= smoother.suppression_s:
            continue
        previous, previous_t = label, t
        if label != smoother.background:
            lo = int(np.searchsorted(times, t - smoother.onset_lookback_s - 1e-9, side="left"))
            onset = estimate_onset(
                times[lo : i + 1], s[lo : i + 1], int(top[i]), lookback_s=smoother.onset_lookback_s
            )
            events.append(Event(label=label, score=float(best[i]), t_s=t, onset_s=onset))
    return events


def score_streams(
    streams,
    smoother: Smoother,
    cfg: FrontendConfig = FrontendConfig(),
    every: int = 1,
    collar_s: float = 0.5,
    delay_s: float = 1.0,
) -> dict:
    """Event metrics over several streams pooled: ``streams`` = [(scores, annotations,
    duration_s)]. Events of one stream are matched only with that stream's references."""
    ref_all, det_all, offset = [], [], 0.0
    for scores, refs, duration_s in streams:
        for e in detect(scores, smoother, cfg, every):
            det_all.append(e.shifted(offset))
        ref_all += [
            Annotation(a.onset_s + offset, a.offset_s + offset, a.label, a.ebr_db, a.bed_dbfs) for a in refs
        ]
        offset += duration_s + 10.0  # a gap wider than any match window keeps streams apart
    total = sum(d for _, _, d in streams)
    return event_metrics(
        ref_all,
        det_all,
        total,
        collar_s=collar_s,
        delay_s=delay_s,
        labels=[l for l in smoother.labels if l != smoother.background],
    )
