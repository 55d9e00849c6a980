"""From per-frame scores to events and event metrics, without a runtime: what the device loop
does after the model, for scores computed elsewhere (a torch model during training, a batch of
LiteRT outputs). The smoother is the device's own (edge_sed.smoother), fed one decision per
frame at the frame's end time, so these events equal the device loop's for the same scores."""

from __future__ import annotations

import numpy as np

from .events import Annotation, Event, event_metrics
from .frontend import FrontendConfig
from .smoother import Smoother


def frame_end_times(n_frames: int, cfg: FrontendConfig = FrontendConfig(), every: int = 1) -> np.ndarray:
    """Stream time (s) at which frame i (0-based) is complete, for i = every-1, 2*every-1, ..."""
    idx = np.arange(every - 1, n_frames, every)
    return (idx * cfg.hop_samples + cfg.window_samples) / cfg.sample_rate


def detect(scores: np.ndarray, smoother: Smoother, cfg: FrontendConfig = FrontendConfig(), every: int = 1) -> list:
    """Events from (frames, classes) per-frame probabilities, one smoother decision every
    ``every`` frames (the frame's own scores)."""
    smoother.reset()
    times = frame_end_times(len(scores), cfg, every)
    events = []
    for t, s in zip(times, scores[every - 1::every]):
        ev = smoother.update(float(t), s)
        if ev is not None:
            events.append(ev)
    return events


def score_streams(streams, smoother: Smoother, cfg: FrontendConfig = FrontendConfig(), every: int = 1,
                  collar_s: float = 0.5, delay_s: float = 1.0) -> dict:
    """Event metrics over several streams pooled: ``streams`` = [(scores, annotations,
    duration_s)]. Events of one stream are matched only with that stream's references."""
    ref_all, det_all, offset = [], [], 0.0
    for scores, annotations, duration_s in streams:
        for e in detect(scores, smoother, cfg, every):
            det_all.append(Event(e.label, e.score, e.t_s + offset))
        ref_all += [Annotation(a.onset_s + offset, a.offset_s + offset, a.label) for a in annotations]
        offset += duration_s + 10.0  # a gap wider than any match window keeps streams apart
    total = sum(d for _, _, d in streams)
    return event_metrics(ref_all, det_all, total, collar_s=collar_s, delay_s=delay_s,
                         labels=[l for l in smoother.labels if l != smoother.background])
