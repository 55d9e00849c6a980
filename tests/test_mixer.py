"""edge_sed.data.mixer: active spans, mixtures (levels, EBR, edges, determinism) and frame targets,
on real audio files written here (no data set needed)."""

import numpy as np
import pytest
import soundfile as sf

from edge_sed.data.datasets import Clip
from edge_sed.core.events import Annotation
from edge_sed.core.frontend import FrontendConfig, log_mel
from edge_sed.data.mixer import Banks, active_span, dbfs, evaluation_streams, frame_targets, mix, rms
from edge_sed.core.settings import LABELS, SAMPLE_RATE

SR = SAMPLE_RATE


def tone_burst(start_s, length_s, clip_s=3.0, freq=700.0, noise=0.003, seed=0):
    rng = np.random.default_rng(seed)
    x = noise * rng.standard_normal(int(clip_s * SR))
    a, b = int(start_s * SR), int((start_s + length_s) * SR)
    x[a:b] += 0.3 * np.sin(2 * np.pi * freq * np.arange(b - a) / SR)
    return x.astype(np.float32)


def test_active_span_finds_the_loud_part_and_merges_a_bark_train():
    on, off = active_span(tone_burst(1.2, 0.4))
    assert on == pytest.approx(1.2, abs=0.03) and off == pytest.approx(1.6, abs=0.03)
    train = tone_burst(0.5, 0.2) + tone_burst(0.9, 0.2, noise=0) + tone_burst(2.5, 0.1, noise=0)
    on, off = active_span(train)  # 0.2 s gap merges, the far burst (1.4 s away) stays out
    assert on == pytest.approx(0.5, abs=0.03) and off == pytest.approx(1.1, abs=0.03)


@pytest.fixture(scope="module")
def banks(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    clips = []
    rng = np.random.default_rng(1)
    for g in range(4):  # backgrounds: 4 recordings (groups) of 2 clips each, different noise colours
        for i in range(2):
            x = (
                np.cumsum(rng.standard_normal(4 * SR)) * 0.001
                if g % 2
                else rng.standard_normal(4 * SR) * 0.05
            )
            p = root / f"bg{g}-{i}.wav"
            sf.write(p, (x - x.mean()).astype(np.float32), SR)
            clips.append(Clip(p, "background", f"bg{g}", "brown" if g % 2 else "white"))
    for k, label in enumerate(LABELS[:3]):
        for i in range(3):
            p = root / f"{label}{i}.wav"
            sf.write(p, tone_burst(1.0, 0.3 + 0.2 * k, freq=400 + 300 * k, seed=i), SR)
            clips.append(Clip(p, label, f"{label}{i}", label))
    return Banks(clips)


def test_mixtures_are_deterministic_and_keep_levels_and_ratios(banks):
    a1, ann1 = mix(
        banks,
        20.0,
        np.random.default_rng(3),
        events_per_min=9,
        ebr_db=[0.0],
        bed_dbfs=(-30, -30),
        cut_edges=False,
        event_free_prob=0.0,
    )
    a2, ann2 = mix(
        banks,
        20.0,
        np.random.default_rng(3),
        events_per_min=9,
        ebr_db=[0.0],
        bed_dbfs=(-30, -30),
        cut_edges=False,
        event_free_prob=0.0,
    )
    assert np.array_equal(a1, a2) and ann1 == ann2
    assert len(a1) == 20 * SR and len(ann1) >= 1
    for a in ann1:
        assert a.ebr_db == pytest.approx(0.0, abs=0.01)
        assert -40 < a.bed_dbfs < -20
    bed_only, none = mix(banks, 20.0, np.random.default_rng(4), event_free_prob=1.0, bed_dbfs=(-30, -30))
    assert none == [] and dbfs(bed_only) == pytest.approx(-30, abs=1.5)
    for prev, nxt in zip(ann1, ann1[1:]):
        assert nxt.onset_s >= prev.offset_s  # events never overlap


def test_ebr_is_met_on_the_event_span(banks):
    audio, ann = mix(
        banks,
        30.0,
        np.random.default_rng(5),
        events_per_min=6,
        ebr_db=[6.0],
        bed_dbfs=(-30, -30),
        cut_edges=False,
        event_free_prob=0.0,
    )
    bed, _ = mix(
        banks,
        30.0,
        np.random.default_rng(5),
        events_per_min=0,
        bed_dbfs=(-30, -30),
        cut_edges=False,
        event_free_prob=0.0,
    )  # same rng draws for the bed: the same bed without events
    for a in ann:
        s = slice(int(a.onset_s * SR), int(a.offset_s * SR))
        event = audio[s] - bed[s]
        assert 20 * np.log10(rms(event) / rms(bed[s])) == pytest.approx(6.0, abs=0.5)


def test_cut_edges_gives_events_cut_by_the_sequence_edges(banks):
    rng = np.random.default_rng(7)
    cut = 0
    for _ in range(60):
        _, ann = mix(banks, 4.0, rng, events_per_min=30, event_free_prob=0.0)
        cut += sum(a.onset_s == 0.0 or a.offset_s == 4.0 for a in ann)
    assert cut > 0


def test_frame_targets_follow_the_span():
    cfg = FrontendConfig()
    y = frame_targets([Annotation(1.0, 1.5, "gunshot")], 300, cfg)
    centre = (np.arange(300) * cfg.hop_samples + cfg.window_samples / 2) / SR
    inside = (centre >= 1.0) & (centre < 1.5)
    assert (y[inside] == LABELS.index("gunshot")).all() and (y[~inside] == LABELS.index("background")).all()
    assert inside.sum() == 50


def test_evaluation_streams_write_and_feature_like_a_microphone(banks):
    ((audio, ann, seconds),) = evaluation_streams(banks, seed=0, count=1, seconds=30.0)
    assert seconds == 30.0 and len(audio) == 30 * SR and all(a.onset_s >= 2.0 for a in ann)
    assert {a.ebr_db for a in ann} <= {-6.0, 0.0, 6.0}
    assert np.isfinite(log_mel(audio)).all()


def test_an_event_that_cannot_fit_under_full_scale_is_left_out():
    """A loud burst on a loud bed: turned down to fit, it is added while its EBR stays >= -15 dB
    (its annotation says the EBR it got); below that, it is left out, annotation and all, and the
    audio is untouched."""
    from edge_sed.data.mixer import EventSound, add_event

    rng = np.random.default_rng(0)
    click = np.zeros(3200, np.float32)
    click[1600:2080] = rng.uniform(-1, 1, 480).astype(np.float32)  # a 30 ms burst
    ev = EventSound("gunshot", click, 0.1, 0.13, "g0")
    for bed_amp, ebr, added in (
        (0.05, 0.0, True),
        (0.3, 9.0, True),
        (0.3, 12.0, True),
        (0.9, 0.0, False),
        (0.97, -6.0, False),
    ):  # effective EBR: 0, 5.6, 5.6, -21.6, -35.3 dB
        bed = (bed_amp * np.sin(np.arange(16000) * 0.05)).astype(np.float32)
        before = bed.copy()
        ann = add_event(bed, ev, 4000, ebr)
        assert (ann is not None) == added, (bed_amp, ebr)
        if added:
            assert np.abs(bed).max() <= 0.99 + 1e-6 and -15.0 <= ann.ebr_db <= ebr
        else:
            assert np.array_equal(bed, before)


def test_bed_weights_choose_the_recordings_a_bed_is_made_of(banks):
    """Hard-negative mining draws beds by ``Banks.bed_weights``: all weight on one recording gives
    a bed of that recording only (white noise: bg0/bg2; brown: bg1/bg3)."""
    from edge_sed.data.mixer import make_bed

    def roughness(x):  # ~2 for white noise, ~0 for brown
        return float(np.var(np.diff(x)) / np.var(x))

    try:
        for g, white in (("bg0", True), ("bg1", False)):
            banks.bed_weights = np.array([float(n == g) for n in banks.groups])
            beds = [make_bed(banks, 12 * SR, np.random.default_rng(s)) for s in range(3)]
            assert all((roughness(b) > 1.5) == white for b in beds), g
    finally:
        banks.bed_weights = None
    # uniform (no weights): a minute of bed joins recordings of both kinds
    assert 0.2 < roughness(make_bed(banks, 60 * SR, np.random.default_rng(0))) < 1.8


def test_segments_name_the_recording_under_every_sample(banks):
    """``mix(..., segments=[])`` gives (first sample, group) of each recording of the bed, in the
    mixture's own samples (after the cut of the edges): each stretch sounds like its group (white
    noise bg0/bg2, brown bg1/bg3), and ``mixture_batch`` turns them into per-frame source classes."""
    for cut in (False, True):
        segments = []
        audio, _ = mix(
            banks, 30.0, np.random.default_rng(7), event_free_prob=1.0, cut_edges=cut, segments=segments
        )
        starts = [s for s, _ in segments]
        assert starts[0] == 0 and starts == sorted(starts) and starts[-1] < len(audio) and len(segments) >= 3
        fade = int(0.25 * SR)
        for (s, g), nxt in zip(segments, starts[1:] + [len(audio)]):
            x = audio[s + fade : nxt - fade]
            if len(x) > SR:
                white = float(np.var(np.diff(x)) / np.var(x)) > 1.5
                assert white == (int(g[-1]) % 2 == 0), (cut, s, g)
    from train.stateful import mixture_batch

    x, y, anns, beds = mixture_batch(
        banks, np.random.default_rng(0), 2, 10.0, FrontendConfig(), bed_targets=True
    )
    assert banks.bed_classes == ["brown", "white"]
    assert beds.shape == y.shape and set(np.unique(beds)) == {0, 1}  # 10 s of bed: both kinds
