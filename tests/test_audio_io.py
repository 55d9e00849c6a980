"""Audio files in, every conversion checked against a reference and every refusal one line."""

import errno
import os
import stat
import struct

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from test_synth import full_disk_after, needs_dev_full

from edge_sed.core import audio_io
from edge_sed.core.audio_io import (
    MAX_RESAMPLE_FACTOR,
    audio_info,
    iter_audio_blocks,
    read_audio,
    resample_factors,
    resample_poly,
    write_audio,
)
from edge_sed.core.errors import AudioError


def noise(seconds=1.0, sr=16000, seed=0):
    return (np.random.default_rng(seed).standard_normal(int(seconds * sr)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("up,down", [(160, 441), (1, 3), (2, 1), (320, 441), (11, 40), (1, 1)])
def test_resample_poly_matches_scipy(up, down):
    x = noise(0.7, seed=up)
    ours = resample_poly(x, up, down)
    ref = scipy.signal.resample_poly(x.astype(np.float64), up, down)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 47952, 383999, 11003])
def test_other_rates_are_resampled_to_16k(tmp_path, sr):
    """383999 Hz (16000/383999 in lowest terms) is resampled by the nearest ratio with terms
    <= MAX_RESAMPLE_FACTOR: one sample more or less, the tone's frequency within 5 Hz."""
    t = np.arange(int(0.5 * sr)) / sr
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    sf.write(tmp_path / "a.wav", tone, sr, subtype="FLOAT")
    audio = read_audio(tmp_path / "a.wav")
    assert abs(len(audio) - int(np.ceil(len(tone) * 16000 / sr))) <= (
        0 if max(resample_factors(sr, 16000)) < 16000 else 1
    )
    # the 1 kHz tone survives: its spectral peak is at 1 kHz and its level is kept
    spectrum = np.abs(np.fft.rfft(audio[200:-200] * np.hanning(len(audio) - 400)))
    assert abs(np.argmax(spectrum) * 16000 / (len(audio) - 400) - 1000) < 5
    assert abs(np.sqrt(np.mean(audio[200:-200] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


@pytest.mark.parametrize(
    "subtype,tol", [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("FLOAT", 0)]
)
def test_sample_formats_read_as_float(tmp_path, subtype, tol):
    x = noise()
    sf.write(tmp_path / "a.wav", x, 16000, subtype=subtype)
    y = read_audio(tmp_path / "a.wav")
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() <= tol


def test_stereo_becomes_the_mean_of_channels(tmp_path):
    left, right = noise(seed=1), noise(seed=2)
    sf.write(tmp_path / "s.flac", np.stack([left, right], 1), 16000)
    np.testing.assert_allclose(read_audio(tmp_path / "s.flac"), (left + right) / 2, atol=1e-4)


def test_silence_and_clipped_audio_are_valid(tmp_path):
    write_audio(tmp_path / "zero.wav", np.zeros(16000))
    write_audio(tmp_path / "clip.wav", np.full(16000, 3.0))
    assert not read_audio(tmp_path / "zero.wav").any()
    assert np.all(read_audio(tmp_path / "clip.wav") > 0.99)


def _truncated(tmp_path, ext):
    sf.write(tmp_path / f"full.{ext}", noise(2), 16000, subtype="PCM_16")
    data = (tmp_path / f"full.{ext}").read_bytes()
    (tmp_path / f"t.{ext}").write_bytes(data[: len(data) // 2])
    return tmp_path / f"t.{ext}"


BAD_FILES = {
    "missing": (lambda d: d / "nope.wav", "no such file"),
    "directory": (lambda d: d, "is a directory"),
    "empty": (lambda d: (d / "e.wav").write_bytes(b"") or d / "e.wav", "empty file"),
    "not audio": (
        lambda d: (d / "t.wav").write_text("hello, I am text") and d / "t.wav",
        "not a readable audio file",
    ),
    "zero length": (
        lambda d: sf.write(d / "z.wav", np.zeros(0, np.float32), 16000) or d / "z.wav",
        "zero length",
    ),
    "truncated wav": (lambda d: _truncated(d, "wav"), "truncated"),
    "truncated flac": (lambda d: _truncated(d, "flac"), "corrupt audio data"),
    "nan": (
        lambda d: (
            sf.write(d / "n.wav", np.array([0, np.nan, 0], np.float32), 16000, subtype="FLOAT") or d / "n.wav"
        ),
        "NaN or Inf",
    ),
    "inf": (
        lambda d: (
            sf.write(d / "i.wav", np.array([0, np.inf, 0], np.float32), 16000, subtype="FLOAT") or d / "i.wav"
        ),
        "NaN or Inf",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_give_one_line_errors(tmp_path, case):
    make, message = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(AudioError) as err:
        read_audio(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    if case not in ("missing", "directory", "empty", "not audio", "zero length"):
        with pytest.raises(AudioError, match=message):
            for _ in iter_audio_blocks(path, 1000):
                pass


def _with_sample_rate(path, rate):
    """``path`` as a valid 16-bit WAV written by libsndfile, then its header's sample-rate field
    (bytes 24-27) overwritten with ``rate``."""
    sf.write(path, noise(0.1), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[24:28] == struct.pack("<I", 16000)
    data[24:28] = struct.pack("<I", rate)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("rate", [2**31 - 1, 384001, 999, 1])
def test_absurd_sample_rate_in_the_header_is_refused_naming_the_file(tmp_path, rate):
    """2^31 - 1 Hz once asked the resampler for a 43-billion-tap filter (a MemoryError naming
    nothing)."""
    path = _with_sample_rate(tmp_path / "odd rate.wav", rate)
    assert sf.info(str(path)).samplerate == rate  # libsndfile itself takes the header at its word
    for call in (
        lambda: read_audio(path),
        lambda: audio_info(path),
        lambda: list(iter_audio_blocks(path, 1000, sample_rate=rate)),
    ):
        with pytest.raises(AudioError) as err:
            call()
        message = str(err.value)
        assert message.startswith(str(path)) and f"sample rate {rate} Hz" in message and "\n" not in message


def test_resample_factors_are_bounded():
    assert resample_factors(44100, 16000) == (160, 441)
    for rate in (383999, 100003, 200003, 1009, 16001):
        up, down = resample_factors(rate, 16000)
        assert max(up, down) <= MAX_RESAMPLE_FACTOR
        assert abs(up / down * rate / 16000 - 1) < 1e-4, rate
    with pytest.raises(AudioError, match="cannot resample from 2147483647 Hz"):
        resample_factors(2**31 - 1, 16000)


def test_too_long_for_a_whole_read(tmp_path):
    write_audio(tmp_path / "long.wav", noise(3))
    with pytest.raises(AudioError, match="stream it instead"):
        read_audio(tmp_path / "long.wav", max_duration_s=2)


def test_blocks_equal_whole_read_and_unicode_paths(tmp_path):
    path = tmp_path / "dir with spaces" / "ünïcødé bark.flac"
    write_audio(path, noise(1.3))
    blocks = list(iter_audio_blocks(path, 1000))
    assert [len(b) for b in blocks[:-1]] == [1000] * (len(blocks) - 1)
    np.testing.assert_array_equal(np.concatenate(blocks), read_audio(path))
    assert audio_info(path)["frames"] == 20800


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    write_audio(tmp_path / "a.flac", noise())
    assert [p.name for p in tmp_path.iterdir()] == ["a.flac"]


@needs_dev_full
@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_a_full_disk_is_enospc_naming_the_file_and_keeps_the_old_one(tmp_path, monkeypatch, suffix):
    """libsndfile alone would say "System error." (an internal error, no errno)."""
    path = tmp_path / f"a{suffix}"
    write_audio(path, noise(seed=1))
    before = path.read_bytes()
    monkeypatch.setattr(audio_io, "open", full_disk_after(0), raising=False)
    with pytest.raises(OSError) as err:
        write_audio(path, noise(seed=2))
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name] and path.read_bytes() == before


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_umask_permissions(tmp_path, umask):
    """Not the temporary file's 0600 (a data set made by one user is read by another)."""
    old = os.umask(umask)
    try:
        write_audio(tmp_path / "a.wav", noise())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.wav").stat().st_mode) == 0o666 & ~umask
