"""edge_sed.eval.scoring: the vectorised per-frame detector equals the device smoother fed one
decision at a time, and pooled stream scoring keeps streams apart."""

import numpy as np
import pytest

from edge_sed.core.events import Annotation
from edge_sed.core.frontend import FrontendConfig
from edge_sed.eval.scoring import detect, frame_end_times, score_streams
from edge_sed.core.settings import LABELS
from edge_sed.core.smoother import Smoother


def _bursty_scores(rng, frames):
    """Background most of the time, bursts of one event class: what a detector outputs."""
    logits = rng.normal(0, 1, (frames, len(LABELS)))
    logits[:, -1] += 2.5
    for start in rng.integers(0, frames - 60, frames // 150):
        logits[start : start + rng.integers(5, 60), rng.integers(0, 3)] += rng.uniform(2, 6)
    e = np.exp(logits)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    "kw",
    [
        dict(average_window_ms=200, minimum_count=3, suppression_ms=3000),
        dict(
            average_window_ms=750, minimum_count=2, suppression_ms=500, threshold={"dog": 0.4, "gunshot": 0.8}
        ),
        dict(average_window_ms=0, minimum_count=1, suppression_ms=0, threshold=0.3),
    ],
)
@pytest.mark.parametrize("every", [1, 3])
def test_detect_equals_the_smoother_one_decision_at_a_time(kw, every):
    rng = np.random.default_rng(every)
    scores = _bursty_scores(rng, 6000)
    cfg = FrontendConfig()
    smoother = Smoother(LABELS, **kw)
    slow = []
    for t, s in zip(frame_end_times(len(scores), cfg, every), scores[every - 1 :: every]):
        e = smoother.update(float(t), s)
        if e is not None:
            slow.append(e)
    fast = detect(scores, Smoother(LABELS, **kw), cfg, every)
    assert len(slow) > 5
    assert [(e.label, round(e.t_s, 6)) for e in fast] == [(e.label, round(e.t_s, 6)) for e in slow]
    assert np.allclose([e.score for e in fast], [e.score for e in slow], atol=1e-5)


def test_non_finite_scores_take_the_smoother_path_and_never_fire():
    scores = np.full((300, 4), np.nan, np.float32)
    assert detect(scores, Smoother(LABELS, threshold=0.1)) == []


def test_score_streams_matches_each_stream_with_its_own_references():
    cfg = FrontendConfig()
    frames = 1000  # 10 s
    scores = np.zeros((frames, 4), np.float32)
    scores[:, 3] = 1.0
    scores[300:340] = [1, 0, 0, 0]  # a dog at ~3 s
    onset = frame_end_times(frames, cfg)[300]
    hit = (scores, [Annotation(onset, onset + 0.5, "dog")], 10.0)
    miss = (scores, [Annotation(7.0, 7.5, "dog")], 10.0)  # same scores, reference elsewhere
    m = score_streams([hit, miss], Smoother(LABELS, average_window_ms=100, minimum_count=2))
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1)
    assert m["duration_s"] == 20.0
    assert m["false_alarms_per_hour"] == pytest.approx(1 / (20 / 3600))
