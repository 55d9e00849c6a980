"""Tests for edge_sed.data.datasets: readers, ratios, group-aware splits and the window policy.
Every data set here is fabricated in tmp_path (tiny WAVs), never the shared corpora."""

from __future__ import annotations

import errno
import os
import random
import shutil
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_synth import full_disk_after, needs_dev_full

from edge_sed.data import datasets
from edge_sed.core.audio_io import write_audio
from edge_sed.data.datasets import (
    Clip,
    class_stats,
    clip_to_window,
    group_from_name,
    load_clips,
    load_windows,
    parse_ratio,
    SPLITS,
    prepare_splits,
    read_esc50,
    read_folder_tree,
    read_metadata_csv,
    read_urbansound8k,
    split_by_group,
    subsample_to_ratio,
    write_split_csv,
    write_splits,
)
from edge_sed.core.errors import DatasetError
from edge_sed.core.settings import LABELS, SAMPLE_RATE

SR = SAMPLE_RATE


def wav(path: Path, seconds: float = 0.1, amp: float = 0.1, seed: int | None = None) -> Path:
    """Noise, different for every file name unless ``seed`` is given (identical files in two
    groups are refused as one recording in two splits)."""
    seed = zlib.crc32(path.name.encode()) if seed is None else seed
    audio = amp * np.random.default_rng(seed).uniform(-1, 1, int(seconds * SR))
    write_audio(path, audio.astype(np.float32), SR)
    return path


def fake_clips(counts: dict[str, int], group_size: int = 1, prefix: str = "") -> list[Clip]:
    """Clips without files (for subsampling and splitting), ``group_size`` clips per group."""
    return [
        Clip(Path(f"/data/{label}/{prefix}{i}.wav"), label, f"{prefix}{label}-g{i // group_size}", label)
        for label, n in counts.items()
        for i in range(n)
    ]


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


HEADER = "path,label,source_class,group,source,license,duration_s"


# ---------------------------------------------------------------- metadata csv


@pytest.fixture
def small_set(tmp_path):
    root = tmp_path / "set"
    wav(root / "audio" / "d1.wav", 0.2)
    wav(root / "audio" / "c1.wav", 0.1)
    wav(root / "audio" / "b1.flac", 0.3)
    write_csv(
        root / "metadata.csv",
        [
            HEADER + ",onset_s",  # an extra column, kept in Clip.extra
            "audio/d1.wav,dog,dog_bark,rec1,us8k,CC BY-NC 3.0,0.200,0.05",
            "audio/c1.wav,baby_cry,cry,dev2,donateacry,ODbL,,",
            "audio/b1.flac,background,siren,rec3,us8k,CC BY-NC 3.0,0.3,",
        ],
    )
    return root


def test_metadata_csv_fields(small_set):
    clips = read_metadata_csv(small_set / "metadata.csv")
    assert [c.label for c in clips] == ["dog", "baby_cry", "background"]
    d = clips[0]
    assert d.path == small_set / "audio" / "d1.wav" and d.path.is_absolute()
    assert (d.group, d.source_class, d.duration_s) == ("rec1", "dog_bark", 0.2)
    assert d.extra == {"source": "us8k", "license": "CC BY-NC 3.0", "onset_s": "0.05"}
    assert clips[1].duration_s is None
    assert read_metadata_csv(small_set) == clips  # the folder works too
    assert load_clips(small_set) == clips and load_clips(small_set / "metadata.csv") == clips


def test_metadata_csv_round_trip(small_set, tmp_path):
    clips = read_metadata_csv(small_set)
    beside = small_set / "train.csv"  # the audio is below the csv's folder: relative paths
    write_split_csv(clips, beside)
    assert "\naudio/d1.wav,dog,dog_bark,rec1,us8k,CC BY-NC 3.0,0.2,0.05" in beside.read_text()
    elsewhere = tmp_path / "splits" / "test.csv"  # not below: absolute paths
    write_split_csv(clips, elsewhere)
    assert f"\n{small_set / 'audio' / 'd1.wav'},dog" in elsewhere.read_text()
    for p in (beside, elsewhere):
        assert read_metadata_csv(p) == clips
    assert [p.name for p in elsewhere.parent.iterdir()] == ["test.csv"]  # no temp file left


def test_metadata_csv_minimal_columns(tmp_path):
    wav(tmp_path / "a.wav")
    write_csv(tmp_path / "m.csv", ["path,label,group", "a.wav,gunshot,g1"])
    (clip,) = read_metadata_csv(tmp_path / "m.csv")
    assert (clip.source_class, clip.duration_s, clip.group) == ("gunshot", None, "g1")


@pytest.mark.parametrize(
    "lines, message",
    [
        ([], "empty csv"),
        ([HEADER], "no rows"),
        (["path,label", "a.wav,dog"], "missing column(s) group"),
        (
            [HEADER, "a.wav,cat,cat,g1,x,y,1.0", "a.wav,cat,cat,g2,x,y,1.0"],
            "unknown label(s) 'cat' (2 clips)",
        ),
        ([HEADER, "a.wav,dog,dog,,x,y,1.0"], "row 2: empty group"),
        ([HEADER, "a.wav,dog,dog,g,x,y,long"], "row 2: duration_s 'long' is not a number"),
        ([HEADER, "a.wav,dog,dog,g1,,,", "./a.wav,dog,dog,g2,,,"], "a.wav are the same file (listed twice)"),
    ],
)
def test_metadata_csv_errors(tmp_path, lines, message):
    wav(tmp_path / "a.wav")
    (tmp_path / "metadata.csv").write_text("\n".join(lines))
    with pytest.raises(DatasetError) as err:
        read_metadata_csv(tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_metadata_csv_missing_files(tmp_path):
    wav(tmp_path / "a.wav")
    write_csv(
        tmp_path / "metadata.csv",
        [HEADER, "a.wav,dog,dog,g1,,,", "gone1.wav,dog,dog,g2,,,", "gone2.wav,dog,dog,g3,,,"],
    )
    with pytest.raises(DatasetError, match=r"2 of 3 audio files missing, first .*gone1\.wav"):
        read_metadata_csv(tmp_path)
    with pytest.raises(DatasetError, match="no such csv"):
        read_metadata_csv(tmp_path / "nope.csv")


# ---------------------------------------------------------------- folder tree, US8K, ESC-50


@pytest.mark.parametrize(
    "stem, group",
    [
        ("100032-3-0-0", "us8k-100032"),
        ("us8k-134717-0-0-12", "us8k-134717"),
        ("1-100038-A-14", "esc50-100038"),
        ("kitchen01__003", "kitchen01"),
        ("bark_7", "bark_7"),
    ],
)
def test_group_from_name(stem, group):
    assert group_from_name(stem) == group


def test_folder_tree(tmp_path):
    wav(tmp_path / "dog" / "100032-3-0-0.wav")
    wav(tmp_path / "dog" / "100032-3-0-1.wav")
    wav(tmp_path / "gunshot" / "night" / "shot1.flac")
    wav(tmp_path / "background" / "street__01.wav")
    (tmp_path / "background" / "notes.txt").write_text("not audio")
    (tmp_path / "empty_folder").mkdir()
    clips = read_folder_tree(tmp_path)
    assert Counter(c.label for c in clips) == {"dog": 2, "gunshot": 1, "background": 1}
    assert {c.group for c in clips} == {"us8k-100032", "shot1", "street"}
    assert load_clips(tmp_path) == clips


def splittable_tree(root: Path) -> Path:
    """A class-folder data set every split can be made from: 3 recordings of 2 clips per class."""
    for label in LABELS:
        for g in range(3):
            for i in range(2):
                wav(root / label / f"{label}-rec{g}__{i}.wav")
    return root


@pytest.mark.parametrize("how", ["symlink", "hard link"])
def test_the_same_file_under_another_recording_is_refused(tmp_path, capsys, how):
    """A clip reached again under another recording's name (a dog clip linked in as a 4th dog
    recording) was two clips to the split, which could put it on both sides: refused at load,
    by file identity, before any split is written."""
    from edge_sed.cli import main

    root = splittable_tree(tmp_path / "set")
    original, again = root / "dog" / "dog-rec0__0.wav", root / "dog" / "elsewhere__0.wav"
    rows = [f"{c.path},{c.label},{c.source_class},{c.group},,," for c in load_clips(root)]
    again.symlink_to(original) if how == "symlink" else os.link(original, again)
    with pytest.raises(DatasetError) as err:
        load_clips(root)
    message = str(err.value)
    assert (
        "dog-rec0__0.wav and " in message
        and "elsewhere__0.wav are the same file (one is a link to the other)" in message
        and "\n" not in message
    )
    code = main(["data", "prepare", str(root), "--out", str(tmp_path / "splits")])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert (
        code == 2
        and len(err_lines) == 1
        and err_lines[0].startswith("error: ")
        and "elsewhere__0.wav" in err_lines[0]
    )
    assert not (tmp_path / "splits").exists()
    # listed in a csv through the link: the same answer
    write_csv(tmp_path / "m.csv", [HEADER, *rows, f"{again},dog,dog,elsewhere,,,"])
    with pytest.raises(DatasetError, match="elsewhere__0.wav are the same file"):
        read_metadata_csv(tmp_path / "m.csv")


def test_a_copy_in_another_group_joins_that_group(tmp_path):
    """A byte-identical copy (or digital silence of the same length) under another recording
    is kept, and the two groups become one, so the copy can never be on the other side of a
    split, and neither can the rest of its new group's recording."""
    root = splittable_tree(tmp_path / "set")
    shutil.copyfile(root / "dog" / "dog-rec0__0.wav", root / "dog" / "elsewhere__0.wav")
    wav(root / "dog" / "elsewhere__1.wav")  # the same recording as the copy, different audio
    groups = {c.path.name: c.group for c in load_clips(root)}
    assert {n: g for n, g in groups.items() if g == "dog-rec0"} == dict.fromkeys(
        ["dog-rec0__0.wav", "dog-rec0__1.wav", "elsewhere__0.wav", "elsewhere__1.wav"], "dog-rec0"
    )
    assert "elsewhere" not in groups.values()
    for seed in range(5):
        splits = prepare_splits(load_clips(root), seed=seed)
        assert len({s for s, part in splits.items() for c in part if c.group == "dog-rec0"}) == 1


@needs_dev_full
@pytest.mark.parametrize("fails_at", SPLITS)
def test_splits_on_a_full_disk_are_written_all_or_none(tmp_path, monkeypatch, fails_at):
    """An older set of split csvs (seed 0) is being replaced by another (seed 1) when the disk
    fills: the ENOSPC comes out naming the csv, and the older set is left whole, never a new
    train.csv beside an old test.csv that may hold the same recordings."""
    clips = load_clips(splittable_tree(tmp_path / "set"))
    out = tmp_path / "splits"
    write_splits(prepare_splits(clips, seed=0), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == sorted(f"{s}.csv" for s in SPLITS)
    monkeypatch.setattr(datasets, "open", full_disk_after(SPLITS.index(fails_at)), raising=False)
    with pytest.raises(OSError) as err:
        write_splits(prepare_splits(clips, seed=1), out)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(out / f"{fails_at}.csv")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary file either
    new = prepare_splits(clips, seed=1)
    write_splits(new, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} != before  # seed 1 is another split
    for s in SPLITS:
        assert [(c.path, c.group) for c in read_metadata_csv(out / f"{s}.csv")] == [
            (c.path, c.group) for c in new[s]
        ]


def test_a_copy_within_its_own_group_is_kept(tmp_path):
    """Copies in one group move to one split together: no leak, nothing refused."""
    root = splittable_tree(tmp_path / "set")
    shutil.copyfile(root / "dog" / "dog-rec0__0.wav", root / "dog" / "dog-rec0__9.wav")
    clips = load_clips(root)
    splits = prepare_splits(clips)
    assert [s for s, part in splits.items() for c in part if c.group == "dog-rec0"] == ["train"] * 3


def test_folder_tree_label_map_and_errors(tmp_path):
    wav(tmp_path / "barks" / "a.wav")
    wav(tmp_path / "cats" / "b.wav")
    with pytest.raises(DatasetError, match="unknown label.*'barks'.*'cats'"):
        read_folder_tree(tmp_path)
    clips = read_folder_tree(tmp_path, label_map={"barks": "dog", "cats": None})
    assert [(c.label, c.source_class) for c in clips] == [("dog", "barks")]
    nothing = tmp_path / "nothing"
    (nothing / "dog").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no audio files found"):
        load_clips(nothing)
    wav(nothing / "loose.wav")
    with pytest.raises(DatasetError, match="one folder per label"):
        load_clips(nothing)
    with pytest.raises(DatasetError, match="no such"):
        load_clips(tmp_path / "missing")
    with pytest.raises(DatasetError, match="not a data set"):
        load_clips(nothing / "loose.wav")


def test_urbansound8k(tmp_path):
    rows = [
        ("100-3-0-0.wav", 100, 1, 3, "dog_bark"),
        ("100-3-0-1.wav", 100, 1, 3, "dog_bark"),
        ("200-6-0-0.wav", 200, 2, 6, "gun_shot"),
        ("300-0-0-0.wav", 300, 1, 0, "air_conditioner"),
        ("400-8-1-2.wav", 400, 3, 8, "siren"),
    ]
    lines = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for name, fsid, fold, cid, cls in rows:
        lines.append(f"{name},{fsid},0.0,0.1,1,{fold},{cid},{cls}")
        wav(tmp_path / "audio" / f"fold{fold}" / name)
    (tmp_path / "metadata").mkdir()
    write_csv(tmp_path / "metadata" / "UrbanSound8K.csv", lines)
    clips = read_urbansound8k(tmp_path)
    assert [c.label for c in clips] == ["dog", "dog", "gunshot", "background", "background"]
    assert [c.group for c in clips][:3] == ["us8k-100", "us8k-100", "us8k-200"]
    assert clips[3].source_class == "air_conditioner" and clips[3].extra["fold"] == "1"
    assert clips[2].path == tmp_path / "audio" / "fold2" / "200-6-0-0.wav"
    assert [c.path.name for c in read_urbansound8k(tmp_path, folds=[1])] == [
        "100-3-0-0.wav",
        "100-3-0-1.wav",
        "300-0-0-0.wav",
    ]
    assert load_clips(tmp_path) == clips
    only_dogs = read_urbansound8k(tmp_path, label_map={"dog_bark": "dog", "*": None})
    assert [c.label for c in only_dogs] == ["dog", "dog"]
    (tmp_path / "audio" / "fold3" / "400-8-1-2.wav").unlink()
    with pytest.raises(DatasetError, match=r"1 of 5 audio files missing, first .*400-8-1-2\.wav"):
        read_urbansound8k(tmp_path)


def test_esc50(tmp_path):
    rows = [
        ("1-100032-A-0.wav", 1, 0, "dog", 100032, "A"),
        ("1-17367-A-20.wav", 1, 20, "crying_baby", 17367, "A"),
        ("1-17367-B-20.wav", 1, 20, "crying_baby", 17367, "B"),
        ("2-100648-A-43.wav", 2, 43, "chirping_birds", 100648, "A"),
    ]
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for name, fold, target, cat, src, take in rows:
        lines.append(f"{name},{fold},{target},{cat},False,{src},{take}")
        wav(tmp_path / "audio" / name)
    (tmp_path / "meta").mkdir()
    write_csv(tmp_path / "meta" / "esc50.csv", lines)
    clips = read_esc50(tmp_path)
    assert [c.label for c in clips] == ["dog", "baby_cry", "baby_cry", "background"]
    assert [c.group for c in clips] == ["esc50-100032", "esc50-17367", "esc50-17367", "esc50-100648"]
    assert clips[3].source_class == "chirping_birds"
    assert load_clips(tmp_path) == clips
    with pytest.raises(DatasetError, match="unknown label.*'frog'"):
        read_esc50(tmp_path, label_map={"*": "frog"})


def test_class_stats(small_set):
    stats = class_stats(read_metadata_csv(small_set))
    assert list(stats) == list(LABELS)
    assert stats["dog"] == {"clips": 1, "groups": 1, "duration_s": 0.2}
    assert stats["baby_cry"]["duration_s"] == pytest.approx(0.1)  # not in the csv: from the file
    assert stats["gunshot"] == {"clips": 0, "groups": 0, "duration_s": 0.0}


# ---------------------------------------------------------------- ratios


def test_parse_ratio_forms():
    assert parse_ratio("2:2:1:26") == {"dog": 2, "baby_cry": 2, "gunshot": 1, "background": 26}
    assert parse_ratio(" 1 : 0.5 : 0 : 3 ") == {"dog": 1, "baby_cry": 0.5, "gunshot": 0, "background": 3}
    assert parse_ratio("dog=2, background=26") == {"dog": 2, "baby_cry": 0, "gunshot": 0, "background": 26}
    assert parse_ratio("a=1,b=2", labels=("a", "b")) == {"a": 1, "b": 2}
    assert isinstance(parse_ratio("2:2:1:26")["dog"], int)


@pytest.mark.parametrize(
    "text, message",
    [
        ("2:2:1", "3 numbers for 4 labels"),
        ("2:2:1:26:1", "5 numbers for 4 labels"),
        ("", "1 numbers for 4 labels"),
        ("dog=2,cat=1", "unknown label 'cat'"),
        ("dog=1,dog=2", "given twice"),
        ("dog=1,background", "not label=number"),
        ("2:x:1:26", "'x' is not a number"),
        ("2:-1:1:26", "'-1' must be a finite number >= 0"),
        ("nan:1:1:1", "must be a finite number"),
        ("0:0:0:0", "all values are zero"),
        ("dog=0", "all values are zero"),
    ],
)
def test_parse_ratio_errors(text, message):
    with pytest.raises(DatasetError) as err:
        parse_ratio(text)
    assert message in str(err.value)


def test_subsample_exact_and_maximal():
    clips = fake_clips({"dog": 10, "baby_cry": 7, "gunshot": 3, "background": 100})
    out = subsample_to_ratio(clips, "2:2:1:26")
    counts = Counter(c.label for c in out)
    assert counts == {"dog": 6, "baby_cry": 6, "gunshot": 3, "background": 78}  # k = 3
    have = Counter(c.label for c in clips)
    r = parse_ratio("2:2:1:26")
    assert any(have[lab] < 4 * r[lab] for lab in LABELS)  # k = 4 would not fit: maximal
    assert set(out) <= set(clips) and len(set(out)) == len(out)
    # equal ratios give equal subsets: floats, unreduced integers, dicts
    for same in ("0.5:0.5:0.25:6.5", "4:4:2:52", {"dog": 2, "baby_cry": 2, "gunshot": 1, "background": 26}):
        assert subsample_to_ratio(clips, same) == out
    assert Counter(c.label for c in subsample_to_ratio(clips, "2:2:1:26", max_per_unit=1)) == {
        "dog": 2,
        "baby_cry": 2,
        "gunshot": 1,
        "background": 26,
    }
    assert Counter(c.label for c in subsample_to_ratio(clips, "dog=1,gunshot=1")) == {"dog": 3, "gunshot": 3}


def test_subsample_deterministic_by_seed():
    clips = fake_clips({"dog": 50, "baby_cry": 50, "gunshot": 50, "background": 500})
    a = subsample_to_ratio(clips, "1:1:1:4", seed=0)
    assert subsample_to_ratio(clips, "1:1:1:4", seed=0) == a
    shuffled = clips[:]
    random.Random(1).shuffle(shuffled)
    assert set(subsample_to_ratio(shuffled, "1:1:1:4", seed=0)) == set(a)  # input order does not matter
    b = subsample_to_ratio(clips, "1:1:1:4", seed=1)
    assert Counter(c.label for c in b) == Counter(c.label for c in a)
    assert {c for c in a if c.label == "background"} != {c for c in b if c.label == "background"}


def test_subsample_errors():
    clips = fake_clips({"dog": 10, "baby_cry": 10, "gunshot": 10, "background": 10})
    with pytest.raises(DatasetError, match="ratio 2:2:1:26 needs at least 26 background clips, found 10"):
        subsample_to_ratio(clips, "2:2:1:26")
    with pytest.raises(DatasetError, match="needs gunshot clips, found none"):
        subsample_to_ratio([c for c in clips if c.label != "gunshot"], "1:1:1:1")
    with pytest.raises(DatasetError, match="unknown label 'cat'"):
        subsample_to_ratio(clips, {"cat": 1})


# ---------------------------------------------------------------- group-aware splits


def random_structure(rng: random.Random) -> list[Clip]:
    """Random groups of 1-6 clips, 3-15 groups per class, and a few groups holding two classes."""
    clips = []
    for label in LABELS:
        for g in range(rng.randint(3, 15)):
            clips += [
                Clip(Path(f"/d/{label}/{g}-{i}.wav"), label, f"{label}-{g}", label)
                for i in range(rng.randint(1, 6))
            ]
    for g in range(rng.randint(0, 3)):  # a recording with a dog barking over background
        clips += [
            Clip(Path(f"/d/mixed/{g}-{lab}.wav"), lab, f"mixed-{g}", lab) for lab in ("dog", "background")
        ]
    return clips


@pytest.mark.parametrize("structure_seed", range(8))
def test_split_no_group_leaks(structure_seed):
    clips = random_structure(random.Random(structure_seed))
    for seed in range(4):
        splits = split_by_group(clips, seed=seed)
        assert list(splits) == ["train", "val", "test"]
        assert sorted(map(str, (c.path for s in splits.values() for c in s))) == sorted(
            str(c.path) for c in clips
        )
        groups = {name: {c.group for c in s} for name, s in splits.items()}
        assert not groups["train"] & groups["val"] and not groups["train"] & groups["test"]
        assert not groups["val"] & groups["test"]
        for s in splits.values():
            assert {c.label for c in s} == set(LABELS)  # every class has >= 3 groups here
        assert split_by_group(clips, seed=seed) == splits


def test_split_fractions_and_seeds():
    rng = random.Random(0)
    clips = [
        Clip(Path(f"/d/{lab}/{g}-{i}.wav"), lab, f"{lab}-{g}", lab)
        for lab in LABELS
        for g in range(60)
        for i in range(rng.randint(1, 3))
    ]
    a = split_by_group(clips, seed=0)
    total = Counter(c.label for c in clips)
    for name, frac in zip(a, (0.7, 0.15, 0.15)):
        for lab, n in Counter(c.label for c in a[name]).items():
            assert abs(n / total[lab] - frac) < 0.05, (name, lab)
    assert split_by_group(clips, seed=1) != a
    b = split_by_group(clips, fractions=(0.8, 0.2, 0.0))
    assert b["test"] == [] and len(b["train"]) > len(b["val"]) > 0


def test_split_too_few_groups():
    clips = fake_clips({"dog": 6, "baby_cry": 6, "gunshot": 2, "background": 6}, group_size=1)
    with pytest.raises(DatasetError, match="class gunshot has clips from only 2 group"):
        split_by_group(clips)
    assert len(split_by_group(clips, fractions=(0.5, 0.5, 0))["val"]) > 0
    with pytest.raises(DatasetError, match="fractions"):
        split_by_group(clips, fractions=(0.5, 0.5))


def test_prepare_splits_keeps_ratio_in_every_split():
    clips = fake_clips({"dog": 120, "baby_cry": 120, "gunshot": 60, "background": 900}, group_size=3)
    r = parse_ratio("2:2:1:10")
    for seed in range(3):
        splits = prepare_splits(clips, "2:2:1:10", seed=seed, ratio_splits=SPLITS)
        raw = split_by_group(clips, seed=seed)
        default = prepare_splits(clips, "2:2:1:10", seed=seed)
        assert default["train"] == splits["train"]
        assert default["val"] == raw["val"] and default["test"] == raw["test"]
        for name, part in splits.items():
            counts = Counter(c.label for c in part)
            k = counts["gunshot"]
            assert k >= 1 and all(counts[lab] == k * r[lab] for lab in LABELS), (name, counts)
            assert set(part) <= set(raw[name])  # subsampled after splitting, not before
    # classes outside the ratio are dropped first, so their lack of groups does not matter
    few = fake_clips({"dog": 30, "gunshot": 1, "background": 90}, group_size=2)
    assert {c.label for s in prepare_splits(few, "dog=1,background=2").values() for c in s} == {
        "dog",
        "background",
    }
    small = fake_clips({"dog": 30, "baby_cry": 30, "gunshot": 30, "background": 40})
    with pytest.raises(DatasetError, match="^(val|test) split: ratio 1:1:1:26 needs at least 26 background"):
        prepare_splits(small, "1:1:1:26", ratio_splits=SPLITS)


# ---------------------------------------------------------------- window policy


def burst_clip(seconds: float, at_s: float, seed: int = 0) -> np.ndarray:
    audio = 0.01 * np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32)
    i = int(at_s * SR)
    audio[i : i + SR // 20] = 0.5  # a 50 ms bang
    return audio


def offset_of(window: np.ndarray, audio: np.ndarray) -> int:
    """Where ``window`` was cut from ``audio`` (the noise makes every 4-sample run unique)."""
    runs = np.lib.stride_tricks.sliding_window_view(audio, 4)
    (hits,) = np.nonzero((runs == window[:4]).all(axis=1))
    assert len(hits) == 1
    return int(hits[0])


@pytest.mark.parametrize("at_s", [0.02, 0.4, 1.3, 2.2, 2.94])
def test_event_window_holds_the_loudest_part(at_s):
    audio = burst_clip(3.0, at_s)
    w = clip_to_window(audio, "gunshot", seed=0, key="x.wav")
    assert w.shape == (16000,) and w.dtype == np.float32
    start = offset_of(w, audio)
    np.testing.assert_array_equal(audio[start : start + 16000], w)
    i = int(at_s * SR)
    assert start <= i and i + SR // 20 <= start + 16000
    if 0.6 < at_s < 2.4:  # away from the edges the bang sits in the middle
        assert abs((i + SR // 40) - (start + 8000)) < SR // 10


def test_background_crop_deterministic():
    audio = np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32)
    a = clip_to_window(audio, "background", seed=0, key="a.wav")
    assert a.shape == (16000,)
    np.testing.assert_array_equal(a, clip_to_window(audio, "background", seed=0, key="a.wav"))
    crops = {clip_to_window(audio, "background", seed=s, key="a.wav").tobytes() for s in range(5)}
    assert len(crops) == 5
    assert not np.array_equal(a, clip_to_window(audio, "background", seed=0, key="b.wav"))


def test_short_clips_are_padded():
    audio = np.full(SR // 2, 0.25, dtype=np.float32)
    ev = clip_to_window(audio, "dog", seed=0, key="d.wav")
    assert ev.shape == (16000,)
    assert not ev[:4000].any() and not ev[12000:].any() and (ev[4000:12000] == 0.25).all()
    bg = clip_to_window(audio, "background", seed=0, key="b.wav")
    np.testing.assert_array_equal(bg, ev)  # padding never depends on the label
    assert clip_to_window(audio, "dog", 0, "d.wav", window_s=0.25).shape == (4000,)
    with pytest.raises(DatasetError, match="unknown label"):
        clip_to_window(audio, "cat", 0, "c.wav")


def test_load_windows_same_for_any_workers(tmp_path):
    clips = []
    for i, label in enumerate(["dog", "background", "gunshot", "background", "baby_cry"]):
        path = wav(tmp_path / f"{label}{i}.wav", seconds=0.5 + 0.5 * i, seed=i)
        clips.append(Clip(path, label, f"g{i}", label))
    calls = []
    x1, y1, g1 = load_windows(clips, seed=3, workers=1, progress=lambda d, n: calls.append((d, n)))
    x2, y2, g2 = load_windows(clips, seed=3, workers=2)
    assert x1.shape == (5, 16000) and x1.dtype == np.float32
    np.testing.assert_array_equal(x1, x2)
    assert y1.tolist() == y2.tolist() == [0, 3, 2, 3, 1] and g1 == g2 == ["g0", "g1", "g2", "g3", "g4"]
    assert calls[-1] == (5, 5) and len(calls) == 5
    x, y, g = load_windows([])
    assert x.shape == (0, 16000) and y.shape == (0,) and g == []
