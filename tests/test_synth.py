"""The built-in synthetic data set: determinism, layout on disk, EBR, band limit, and that the
classes really differ (impulsive gunshots, long cries, short barks)."""

import csv
import errno
import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import welch

from edge_sed.core import audio_io
from edge_sed.data import synth
from edge_sed.core.audio_io import audio_info, read_audio
from edge_sed.core.errors import DatasetError
from edge_sed.core.settings import LABELS, SAMPLE_RATE
from edge_sed.data.synth import DEFAULT_COUNTS, make_clip, make_components, write_dataset

SR = SAMPLE_RATE
REAL_HEADER = ["path", "label", "source_class", "group", "source", "license", "duration_s"]


def _span(meta):
    return int(round(meta["onset_s"] * SR)), int(round(meta["offset_s"] * SR))


def _envelope(x, win_s=0.01):
    """RMS envelope over a sliding window (centred)."""
    w = int(win_s * SR)
    return np.sqrt(np.convolve(x**2, np.ones(w) / w, mode="same"))


def _runs_above(mask):
    """Lengths (samples) of the runs of True in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def _read_rows(csv_path):
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------ determinism


@pytest.mark.parametrize("label", LABELS)
def test_same_seed_same_clip_and_metadata(label):
    a, meta_a = make_clip(label, 7, seed=3)
    b, meta_b = make_clip(label, 7, seed=3)
    assert a.dtype == np.float32 and a.shape == (2 * SR,)
    assert np.array_equal(a, b)
    assert meta_a == meta_b


@pytest.mark.parametrize("label", LABELS)
def test_different_seed_or_index_gives_different_audio(label):
    a, _ = make_clip(label, 7, seed=3)
    b, _ = make_clip(label, 7, seed=4)
    c, _ = make_clip(label, 8, seed=3)
    assert not np.allclose(a, b)
    assert not np.allclose(a, c)


def test_clip_length_follows_clip_s():
    audio, meta = make_clip("dog", 0, seed=0, clip_s=3.0)
    assert len(audio) == 3 * SR and meta["duration_s"] == 3.0
    audio, meta = make_clip("baby_cry", 0, seed=0, clip_s=0.5)  # a cry phrase must shrink to fit
    assert len(audio) == SR // 2 and 0 <= meta["onset_s"] < meta["offset_s"] <= 0.5


def test_workers_1_and_2_write_byte_identical_files(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "PARALLEL_MIN_CLIPS", 0)  # use the process pool even for few clips
    counts = {"dog": 3, "baby_cry": 2, "gunshot": 3, "background": 4}
    calls = []
    one = write_dataset(tmp_path / "one", counts, seed=5, workers=1)
    two = write_dataset(
        tmp_path / "two", counts, seed=5, workers=2, progress=lambda d, t: calls.append((d, t))
    )
    files_one = sorted(p.relative_to(one.parent) for p in one.parent.rglob("*") if p.is_file())
    files_two = sorted(p.relative_to(two.parent) for p in two.parent.rglob("*") if p.is_file())
    assert files_one == files_two and len(files_one) == sum(counts.values()) + 1
    for rel in files_one:
        assert (one.parent / rel).read_bytes() == (two.parent / rel).read_bytes(), rel
    assert calls[-1] == (12, 12) and [d for d, _ in calls] == sorted(d for d, _ in calls)


# ------------------------------------------------------------ a full disk


def full_disk_after(n_files: int):
    """An ``open`` to monkeypatch into a module: the first ``n_files`` files it opens for
    writing are real; every later one is opened on /dev/full, so its name exists like a real
    file's but each write fails with the kernel's own ENOSPC, as on a disk that just filled."""
    opened = itertools.count()

    def _open(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wxa+") and next(opened) >= n_files:
            kwargs["opener"] = lambda path, flags: os.open("/dev/full", os.O_WRONLY)
        return open(file, mode, *args, **kwargs)

    return _open


needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")


@needs_dev_full
@pytest.mark.parametrize("format", ["flac", "wav"])
@pytest.mark.parametrize("fails_at", ["a clip", "metadata.csv"])
def test_a_full_disk_raises_enospc_and_leaves_no_data_set_that_looks_complete(
    tmp_path, monkeypatch, fails_at, format
):
    """Over an older data set (seed 0) a new one (seed 1) meets a full disk: ENOSPC comes out
    as itself (libsndfile alone says "System error."), no metadata.csv is left to describe
    clips that were not written (the old one described the old audio), no temporary file is
    left, and every audio file there is whole."""
    counts = {"dog": 2, "baby_cry": 2, "gunshot": 2, "background": 2}
    out = tmp_path / "set"
    write_dataset(out, counts, seed=0, fmt=format, workers=1)
    n = 5 if fails_at == "a clip" else sum(counts.values())  # clips are made in label order
    monkeypatch.setattr(audio_io, "open", full_disk_after(n), raising=False)
    monkeypatch.setattr(synth, "open", audio_io.open, raising=False)  # metadata.csv: the same disk
    with pytest.raises(OSError) as err:
        write_dataset(out, counts, seed=1, fmt=format, workers=1)
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == str(
        out / ("audio/gunshot/synth-gunshot-000001." + format if fails_at == "a clip" else "metadata.csv")
    )
    monkeypatch.undo()
    assert not (out / "metadata.csv").exists()
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert not [p for p in files if p.name.startswith(".")], "a temporary file was left"
    assert len(files) == sum(counts.values())  # the old clips, 5 (or all) of them rewritten
    for p in files:
        assert len(read_audio(p)) == 2 * SR  # whole: a cut clip would be shorter or unreadable
    write_dataset(out, counts, seed=1, fmt=format, workers=1)  # disk space back: it completes


@needs_dev_full
def test_a_full_disk_in_the_worker_processes_raises_enospc(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "PARALLEL_MIN_CLIPS", 0)
    monkeypatch.setattr(audio_io, "open", full_disk_after(0), raising=False)  # inherited by fork
    with pytest.raises(OSError) as err:
        write_dataset(tmp_path / "set", {"dog": 4, "background": 4}, seed=1, workers=2)
    assert err.value.errno == errno.ENOSPC
    assert [p.name for p in (tmp_path / "set").rglob("*") if p.is_file()] == []


@needs_dev_full
@pytest.mark.parametrize("fails_at", ["audio", "annotations"])
def test_a_stream_on_a_full_disk_keeps_the_older_stream_and_its_annotations(tmp_path, monkeypatch, fails_at):
    """`data stream` over an older stream: new audio beside the old annotations (or the other
    way round) would be a labelled stream with the wrong labels."""
    from edge_sed.core import events
    from edge_sed.data.streams import make_stream, write_stream

    data = write_dataset(
        tmp_path / "set", {"dog": 2, "baby_cry": 2, "gunshot": 2, "background": 4}, seed=1, workers=1
    )
    out = tmp_path / "stream.flac"
    write_stream(out, *make_stream(data, 20.0, 3, seed=0))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    monkeypatch.setattr(
        audio_io if fails_at == "audio" else events, "open", full_disk_after(0), raising=False
    )
    with pytest.raises(OSError) as err:
        write_stream(out, *make_stream(data, 20.0, 3, seed=1))
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == str(out if fails_at == "audio" else out.with_suffix(".csv"))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


# ------------------------------------------------------------ the data set on disk


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    counts = {"dog": 6, "baby_cry": 4, "gunshot": 5, "background": 11}
    return write_dataset(tmp_path_factory.mktemp("synth"), counts, seed=1, workers=1), counts


def test_counts_per_class_are_exact(small_set):
    csv_path, counts = small_set
    rows = _read_rows(csv_path)
    for label in LABELS:
        assert sum(r["label"] == label for r in rows) == counts[label]
        assert len(list((csv_path.parent / "audio" / label).glob("*.flac"))) == counts[label]


def test_metadata_columns_and_rows(small_set):
    csv_path, _ = small_set
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f))
    assert header[: len(REAL_HEADER)] == REAL_HEADER
    assert header[len(REAL_HEADER) :] == ["onset_s", "offset_s", "ebr_db", "background_kind", "seed"]
    rows = _read_rows(csv_path)
    keys = [(LABELS.index(r["label"]), int(Path(r["path"]).stem.rsplit("-", 1)[1])) for r in rows]
    assert keys == sorted(keys)  # label order, then index
    assert rows[0]["path"] == "audio/dog/synth-dog-000000.flac"
    for r in rows:
        assert (csv_path.parent / r["path"]).is_file()
        assert r["source"] == "synth" and r["license"] == "CC0-1.0 (generated by edge-sed)"
        assert r["duration_s"] == "2.000" and r["seed"] == "1"
        assert r["source_class"].startswith("synth_")
        assert r["group"].startswith(f"synth-{r['label']}-g")
        if r["label"] != "background":
            assert float(r["ebr_db"]) in (-6.0, 0.0, 6.0)
            assert 0 <= float(r["onset_s"]) < float(r["offset_s"]) <= 2.0


def test_files_read_back_as_16k_finite_and_in_range(small_set):
    csv_path, _ = small_set
    for r in _read_rows(csv_path)[::3]:
        path = csv_path.parent / r["path"]
        assert audio_info(path)["sample_rate"] == SR
        x = read_audio(path)
        assert len(x) == 2 * SR and np.isfinite(x).all() and np.abs(x).max() <= 1.0
        index = int(path.stem.rsplit("-", 1)[1])
        expected, _ = make_clip(r["label"], index, seed=1)
        assert np.abs(x - expected).max() < 2 / 32768  # only the 16-bit rounding differs


def test_bad_requests_raise_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="cat"):
        make_clip("cat", 0, seed=0)
    with pytest.raises(DatasetError, match="cat"):
        write_dataset(tmp_path, {"dog": 1, "cat": 1})
    with pytest.raises(DatasetError, match="dog"):
        write_dataset(tmp_path, {"dog": -1})
    with pytest.raises(DatasetError, match="mp3"):
        write_dataset(tmp_path, {"dog": 1}, fmt="mp3")
    with pytest.raises(DatasetError):
        make_clip("dog", 0, seed=0, clip_s=0.1)
    assert not (tmp_path / "metadata.csv").exists()


# ------------------------------------------------------------ mixing


@pytest.mark.parametrize("label", LABELS)
def test_realised_ebr_matches_requested(label):
    seen = set()
    for index in range(12):
        event, background, meta = make_components(label, index, seed=2)
        audio, _ = make_clip(label, index, seed=2)
        assert np.allclose(audio, event + background, atol=1e-6)  # the components are the clip
        assert np.abs(audio).max() <= 0.9 + 1e-6
        if meta["ebr_db"] is None:  # a background clip without a distractor
            assert label == "background" and not event.any()
            continue
        s, e = _span(meta)
        rms = lambda x: np.sqrt(np.mean(x[s:e] ** 2))  # noqa: E731
        assert 20 * np.log10(rms(event) / rms(background)) == pytest.approx(meta["ebr_db"], abs=0.5)
        # the event lives inside its span: almost nothing outside it
        outside = np.concatenate([event[: max(0, s - 80)], event[e + 80 :]])
        assert np.sum(outside**2) < 1e-4 * np.sum(event[s:e] ** 2)
        seen.add(meta["ebr_db"])
    assert seen == {-6.0, 0.0, 6.0}


@pytest.mark.parametrize("label", LABELS)
def test_almost_no_energy_above_4k(label):
    for index in range(4):
        audio, _ = make_clip(label, index, seed=0)
        f, p = welch(audio, fs=SR, nperseg=1024)
        assert p[f > 4000].sum() < 1e-4 * p.sum()


def test_groups_share_a_background_recording():
    metas = [make_clip("dog", i, seed=0)[1] for i in range(10)]
    assert {m["group"] for m in metas[:5]} == {"synth-dog-g00000"}
    assert {m["group"] for m in metas[5:]} == {"synth-dog-g00001"}
    assert len({m["background_kind"] for m in metas[:5]}) == 1
    kinds = {make_clip("gunshot", 5 * g, seed=0)[1]["background_kind"] for g in range(30)}
    assert len(kinds) >= 4  # backgrounds vary from group to group


def test_background_clips_hold_a_distractor_about_half_the_time():
    metas = [make_clip("background", i, seed=0)[1] for i in range(40)]
    with_distractor = [m for m in metas if m["onset_s"] is not None]
    assert 10 <= len(with_distractor) <= 30
    for m in metas:
        if m["onset_s"] is None:
            assert m["source_class"] == f"synth_{m['background_kind']}"
        else:
            assert m["source_class"] in ("synth_beep", "synth_knock", "synth_speech")


# ------------------------------------------------------------ the classes differ


def test_gunshot_onset_is_impulsive():
    for index in range(10):
        event, background, meta = make_components("gunshot", index, seed=0)
        s, _ = _span(meta)
        if s + int(0.32 * SR) > len(event):
            continue
        later = slice(s + int(0.3 * SR), s + int(0.32 * SR))
        env_event = _envelope(event)
        assert env_event[s : s + int(0.02 * SR)].max() > 10 * env_event[later].mean()  # > 20 dB
        env_mix = _envelope(event + background)  # still clear over the background at -6 dB
        assert env_mix[s : s + int(0.02 * SR)].max() > 2 * env_mix[later].mean()


def test_cries_are_long_and_barks_are_short_bursts():
    for index in range(10):
        bark_runs = _runs_above_threshold("dog", index)
        cry_runs = _runs_above_threshold("baby_cry", index)
        assert 1 <= len(bark_runs) <= 4 and bark_runs.max() < 0.3 * SR
        assert cry_runs.max() > 0.4 * SR


def _runs_above_threshold(label, index):
    """Runs of the event's envelope within 20 dB of its peak (samples), ignoring the slivers
    of < 30 ms where a decaying envelope wobbles across the threshold."""
    event, _, _ = make_components(label, index, seed=0)
    env = _envelope(event, 0.02)
    runs = _runs_above(env > 0.1 * env.max())
    return runs[runs >= 0.03 * SR]


def test_default_counts_are_a_few_hundred_clips():
    assert set(DEFAULT_COUNTS) == set(LABELS)
    assert 200 <= sum(DEFAULT_COUNTS.values()) <= 600


def test_every_generator_makes_sound_even_when_short():
    # regression: a 0.4 s speech distractor once fell entirely in a syllable pause (all zeros)
    event, _, meta = make_components("background", 1321, seed=0)
    assert meta["source_class"] == "synth_speech" and np.abs(event).max() > 0
    for kind, make in synth._GENERATORS.items():
        for s in range(30):
            rng = np.random.default_rng([99, s])
            group = synth._group_params(rng)
            x = make(rng, group, SR, int(0.49 * SR))  # the shortest clip allowed
            assert 0 < len(x) <= int(0.49 * SR) and np.isfinite(x).all() and np.abs(x).max() > 0, kind
