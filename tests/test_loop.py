import numpy as np
import pytest

from edge_sed.core.bundle import BundleRunner, load_bundle
from edge_sed.core.frontend import log_mel
from edge_sed.core.loop import Detector
from edge_sed.core.smoother import Smoother
from edge_sed.data.synth import make_clip


@pytest.fixture(scope="module")
def audio():
    parts = [
        make_clip(l, i, seed=9, clip_s=2.0)[0]
        for i, l in enumerate(["background", "dog", "gunshot", "baby_cry"])
    ]
    return np.concatenate(parts)


def decisions(det, audio, block):
    det.reset()
    out = []
    for i in range(0, len(audio), block):
        out += det.push(audio[i : i + block])
    return out


def test_windowed_decisions_are_the_model_on_the_last_window(tiny_bundles, audio):
    bundle = load_bundle(tiny_bundles[0] / "int8")
    det = Detector(bundle, hop_frames=25)
    ds = decisions(det, audio, 160)
    feats = log_mel(audio, bundle.frontend)
    W = bundle.window_frames
    n_frames = len(feats)
    assert len(ds) == 1 + (n_frames - W) // 25
    runner = BundleRunner(bundle)
    for k, d in enumerate(ds):
        end = W + 25 * k
        assert d.t_s == pytest.approx(((end - 1) * 160 + 400) / 16000)
        np.testing.assert_array_equal(d.scores, runner.predict(feats[end - W : end]))
        assert d.inferences == 1 and d.frames == (W if k == 0 else 25)
    # block size does not matter
    for block in (37, 320, 16000, len(audio)):
        other = decisions(det, audio, block)
        assert [d.t_s for d in other] == [d.t_s for d in ds]
        assert all(np.array_equal(a.scores, b.scores) for a, b in zip(ds, other))


@pytest.mark.parametrize(
    "windowed,streaming,tol", [("fp32", "fp32-streaming", 1e-4), ("int8", "int16x8-streaming", 0.08)]
)
def test_streaming_bundle_gives_the_windowed_decisions(tiny_bundles, audio, windowed, streaming, tol):
    hop = 25
    a = Detector(load_bundle(tiny_bundles[0] / windowed), hop_frames=hop)
    b = Detector(load_bundle(tiny_bundles[0] / streaming), hop_frames=hop)
    da, db = decisions(a, audio, 320), decisions(b, audio, 320)
    assert [d.t_s for d in da] == [d.t_s for d in db]
    diff = max(float(np.abs(x.scores - y.scores).max()) for x, y in zip(da, db))
    assert diff <= tol
    # the streaming detector keeps ceil(window / hop) staggered states: that many invokes a frame
    W = b.window_frames
    assert b.inferences == sum(min(W, len(log_mel(audio)) - s) for s in range(0, len(log_mel(audio)), hop))
    if tol < 1e-3:  # fp32: the same events, to the float
        assert [(e.label, e.t_s) for e in (d.event for d in da) if e] == [
            (e.label, e.t_s) for e in (d.event for d in db) if e
        ]


def test_smoother_is_fed_every_decision(tiny_bundles, audio):
    bundle = load_bundle(tiny_bundles[0] / "fp32")
    sm = Smoother(bundle.labels, threshold=0.0, average_window_ms=0, minimum_count=1, suppression_ms=0)
    ds = decisions(Detector(bundle, hop_frames=50, smoother=sm), audio, 160)
    # threshold 0, no suppression: every decision whose top class is not background is an event
    tops = [bundle.labels[int(np.argmax(d.scores))] for d in ds]
    assert [d.event.label if d.event else "background" for d in ds] == tops


class _Says:
    """A runner stand-in that calls every window a gunshot, whatever it hears."""

    streaming = False

    def __init__(self, labels):
        self.scores = np.array([0.98 if l == "gunshot" else 0.02 / 3 for l in labels], np.float32)

    def predict(self, window):
        return self.scores


def test_silence_gate_keeps_digital_silence_from_firing(tiny_bundles):
    """All-zero input (a muted microphone) is background for the smoother even if the model
    says otherwise; the decision still carries the model's scores; sound re-opens the gate."""
    bundle = load_bundle(tiny_bundles[0] / "fp32")
    silence = np.zeros(16000 * 4, np.float32)
    noise = np.random.default_rng(0).normal(0, 0.03, 16000 * 4).astype(np.float32)
    gated = Detector(bundle, runner=_Says(bundle.labels))
    ds = decisions(gated, np.concatenate([silence, noise]), 1600)
    quiet = [d for d in ds if d.t_s <= 4.0]
    assert quiet and all(d.silent and d.event is None for d in quiet)
    assert all(d.scores.argmax() == bundle.labels.index("gunshot") for d in quiet)
    fired = [d.event for d in ds if d.event is not None]
    assert fired and fired[0].label == "gunshot" and all(d.t_s > 4.0 for d in ds if d.event is not None)
    ungated = Detector(bundle, runner=_Says(bundle.labels), silence_power=None)
    assert any(d.event is not None for d in decisions(ungated, silence, 1600))
