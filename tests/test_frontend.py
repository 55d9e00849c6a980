import numpy as np
import pytest

from edge_sed.core.frontend import (
    FrontendConfig,
    StreamingLogMel,
    compress,
    log_mel,
    mel_energies,
    mel_filterbank,
)

PCEN = FrontendConfig(compression="pcen")


def audio(seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_streaming_in_random_blocks_equals_batch_exactly(seed):
    x = audio(seed=seed)
    rng = np.random.default_rng(100 + seed)
    stream, out, i = StreamingLogMel(), [], 0
    while i < len(x):
        n = int(rng.choice([1, 7, 160, 161, 399, 400, 1024, 4000]))
        out.append(stream.push(x[i : i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(out), log_mel(x))
    assert stream.frames_out == FrontendConfig().num_frames(len(x))


def test_reset_starts_a_new_stream():
    x = audio(1.0)
    s = StreamingLogMel()
    s.push(audio(0.37, seed=9))
    s.reset()
    np.testing.assert_array_equal(s.push(x), log_mel(x))


def test_shapes_and_frame_count():
    cfg = FrontendConfig()
    assert (cfg.window_samples, cfg.hop_samples) == (400, 160)
    assert log_mel(np.zeros(16000, np.float32)).shape == (98, 40)
    assert log_mel(np.zeros(399, np.float32)).shape == (0, 40)
    assert StreamingLogMel().push(np.zeros(399)).shape == (0, 40)


def test_tone_lands_in_the_right_mel_band():
    cfg = FrontendConfig()
    feats = log_mel(audio(1.0))
    fb = mel_filterbank(cfg)
    bin_440 = int(round(440 * cfg.n_fft / cfg.sample_rate))
    assert np.argmax(feats.mean(0)) == np.argmax(fb[:, bin_440])


def test_silence_is_the_log_floor_and_finite():
    feats = log_mel(np.zeros(16000, np.float32))
    np.testing.assert_allclose(feats, np.log(1e-6), rtol=1e-6)


def test_filterbank_covers_fmin_to_fmax():
    cfg = FrontendConfig(fmin_hz=100, fmax_hz=3800, n_mels=32)
    fb = mel_filterbank(cfg)
    hz = np.arange(cfg.n_fft // 2 + 1) * cfg.sample_rate / cfg.n_fft
    assert fb.shape == (32, 257)
    assert not fb[:, (hz < 100) | (hz > 3800)].any()
    assert (fb.max(0)[(hz > 200) & (hz < 3700)] > 0.4).all()  # no holes between bands


def test_config_round_trip_and_validation():
    cfg = FrontendConfig(n_mels=32, fmax_hz=3800)
    assert FrontendConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        FrontendConfig(fmax_hz=9000)
    with pytest.raises(ValueError):
        FrontendConfig.from_dict({**cfg.to_dict(), "nonsense": 1})


@pytest.mark.parametrize(
    "change, field",
    [
        ({"log_floor": -1}, "log_floor"),
        ({"log_floor": 0.0}, "log_floor"),
        ({"log_floor": float("nan")}, "log_floor"),
        ({"window_ms": 0}, "window_ms"),
        ({"window_ms": 40.0}, "window_ms"),  # 640 samples > n_fft 512
        ({"hop_ms": 1000}, "hop_ms"),
        ({"hop_ms": 0.01}, "hop_ms"),
        ({"hop_ms": float("inf")}, "hop_ms"),
        ({"fmin_hz": 3999.9}, "fmin_hz"),
        ({"fmin_hz": -1}, "fmin_hz"),
        ({"fmax_hz": 8000.5}, "fmax_hz"),
        ({"n_fft": 512.5}, "n_fft"),
        ({"n_fft": 16777216}, "n_fft"),
        ({"n_fft": 500}, "n_fft"),
        ({"n_fft": True}, "n_fft"),
        ({"n_mels": 0}, "n_mels"),
        ({"n_mels": 40.0}, "n_mels"),
        ({"n_mels": 1000}, "n_mels"),
        ({"sample_rate": 16000.0}, "sample_rate"),
        ({"sample_rate": 10**9}, "sample_rate"),
        ({"window_ms": "25"}, "window_ms"),
        ({"compression": "mfcc"}, "compression"),
        ({"compression": 1}, "compression"),
        ({"pcen_smooth": 0.0}, "pcen_smooth"),
        ({"pcen_smooth": 1.5}, "pcen_smooth"),
        ({"pcen_alpha": 1.2}, "pcen_alpha"),
        ({"pcen_delta": -1}, "pcen_delta"),
        ({"pcen_root": 0}, "pcen_root"),
        ({"pcen_eps": 0.0}, "pcen_eps"),
        ({"pcen_alpha": float("nan")}, "pcen_alpha"),
    ],
)
def test_every_field_is_bounded(change, field):
    """What a manifest can put in a front end: one ValueError naming the field, never a NaN
    feature, an empty mel band, a hang (a 16M-point FFT) or an internal error later."""
    with pytest.raises(ValueError) as err:
        FrontendConfig.from_dict({**FrontendConfig().to_dict(), **change})
    assert field in str(err.value) and "\n" not in str(err.value)


def test_bounds_keep_the_configs_in_use():
    for cfg in (
        FrontendConfig(),
        FrontendConfig(n_mels=32, fmax_hz=3800),
        FrontendConfig(fmin_hz=0, n_fft=1024),
    ):
        assert np.isfinite(log_mel(audio(0.5), cfg)).all()


@pytest.mark.parametrize("seed", range(3))
def test_pcen_streaming_in_random_blocks_equals_batch_exactly(seed):
    """The PCEN smoother's state is carried across blocks: the same features, bit for bit."""
    x = audio(seed=seed)
    rng = np.random.default_rng(200 + seed)
    stream, out, i = StreamingLogMel(PCEN), [], 0
    while i < len(x):
        n = int(rng.choice([1, 7, 160, 399, 1024, 4000]))
        out.append(stream.push(x[i : i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(out), log_mel(x, PCEN))
    stream.reset()
    np.testing.assert_array_equal(stream.push(x[:8000]), log_mel(x[:8000], PCEN))


def test_pcen_follows_the_formula_and_is_level_invariant():
    x = audio(2.0)
    mel = mel_energies(x, PCEN).astype(np.float64)
    m, want = mel[0], []
    for e in mel:  # the formula of Wang et al. 2017, written out
        m = 0.975 * m + 0.025 * e
        want.append(np.sqrt(e / (1e-6 + m) ** 0.98 + 2.0) - np.sqrt(2.0))
    np.testing.assert_allclose(log_mel(x, PCEN), np.asarray(want), rtol=1e-5, atol=1e-6)
    # a 20 dB quieter copy: log-mel moves by ln(100) in every band, PCEN by a few hundredths
    quiet = log_mel(x * 0.1, PCEN)
    assert np.abs(quiet - log_mel(x, PCEN)).mean() < 0.05
    assert np.abs(log_mel(x * 0.1) - log_mel(x)).mean() > 4.0
    # digital silence: zero features, finite; many clips at once = each from its start
    assert np.array_equal(log_mel(np.zeros(4000, np.float32), PCEN), np.zeros((23, 40), np.float32))
    both = compress(np.stack([mel_energies(x, PCEN), mel_energies(x * 0.5, PCEN)]), PCEN)
    np.testing.assert_array_equal(both[1], log_mel(x * 0.5, PCEN))


def test_the_silence_gate_sees_energy_not_features():
    """peaks: the loudest band's log energy of each frame, whatever the compression."""
    for cfg in (FrontendConfig(), PCEN):
        s = StreamingLogMel(cfg)
        s.push(np.zeros(16000, np.float32))
        assert len(s.peaks) == 98 and np.allclose(s.peaks, np.log(1e-6))
        s.reset()
        f = s.push(audio(0.5))
        assert len(f) == len(s.peaks) == 48
        np.testing.assert_allclose(s.peaks, np.log(mel_energies(audio(0.5), cfg).max(1) + 1e-6), rtol=1e-5)
