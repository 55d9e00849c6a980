"""Data sets: reading clip lists, controlling class imbalance, group-aware splits, and the one
clip-to-window policy every trainer uses.

Readers (each returns ``list[Clip]``; every problem is a one-line :class:`DatasetError`):
``read_metadata_csv`` (the project's own format), ``read_folder_tree``, ``read_urbansound8k``,
``read_esc50``, and ``load_clips`` which tells them apart.

Groups. A group is the recording a clip was cut from. Splits move whole groups, so no
recording leaks from train into test. ``read_folder_tree`` derives the group from the file
name: an UrbanSound8K slice ``{fsID}-{classID}-{occurrence}-{slice}`` (optionally behind a
``word-`` prefix, e.g. ``us8k-``) -> ``us8k-{fsID}``; an ESC-50 clip
``{fold}-{src_file}-{take}-{target}`` -> ``esc50-{src_file}``; a name with a ``__``
(``kitchen01__003.wav``) -> the part before the first ``__``; anything else -> the stem.
No recording may reach two splits: every reader refuses the same file listed twice by any
name (a repeated path, a symlink, a hard link), and joins the groups of files with identical
bytes (a copy) into one, named after the first in sort order.

Imbalance. A ratio such as ``2:2:1:26`` is in ``LABELS`` order; labels a ratio leaves out (or
gives 0) are dropped. ``prepare_splits`` splits by group FIRST and then subsamples the training
split to the ratio (or every split, with ``ratio_splits``); validation and test keep all their
clips by default, since the metrics are per class.

Clip-to-window policy (identical for every trainer): each clip becomes exactly one window of
``CLIP_WINDOW_S`` (16000 samples at 16 kHz).
- Event clips (every label but background): the window is centred on the clip's energy peak,
  the argmax of the signal energy summed over 100 ms boxes on a 10 ms grid (frame energy
  smoothed over ~100 ms, so one click does not outweigh a bark), then clamped to lie inside
  the clip. A silent clip peaks at its first box, so its window starts at 0.
- Background clips: a uniformly random crop, seeded by (seed, crc32 of the file name), so the
  crop is the same on every machine and run, whatever folder the data set lives in.
- Clips shorter than the window are zero-padded symmetrically (the clip in the middle), whatever
  the label: a padding side chosen by label would tell the model the label (an earlier version
  padded background at the end only, so "leading silence" meant "event").
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import os
import re
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from edge_sed.core.audio_io import audio_info, is_audio_file, read_audio
from edge_sed.core.atomic import atomic_path
from edge_sed.core.errors import DatasetError
from edge_sed.core.settings import BACKGROUND, CLIP_WINDOW_S, LABELS, SAMPLE_RATE, TRAIN_SYNTH_COUNTS

METADATA_COLUMNS = ("path", "label", "source_class", "group", "source", "license", "duration_s")
REQUIRED_COLUMNS = ("path", "label", "group")
"""A hand-written csv needs only these; source_class defaults to the label, duration_s to
unknown (read from the file when needed), source and license to empty."""

SPLITS = ("train", "val", "test")

# "*" maps every class not named; None drops the class.
US8K_LABEL_MAP: dict[str, str | None] = {"dog_bark": "dog", "gun_shot": "gunshot", "*": BACKGROUND}
ESC50_LABEL_MAP: dict[str, str | None] = {"dog": "dog", "crying_baby": "baby_cry", "*": BACKGROUND}


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    group: str
    source_class: str
    duration_s: float | None = None
    extra: dict = field(default_factory=dict, hash=False)  # other csv columns (source, onset_s, ...)


# ---------------------------------------------------------------- readers


def _read_csv(path: Path, required: Sequence[str]) -> list[dict]:
    if not path.is_file():
        raise DatasetError(f"{path}: no such csv file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets add a BOM
            reader = csv.DictReader(f)
            # None keys (extra fields) are dropped; None values (missing fields) become ""
            rows = [{k: (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read csv ({exc})") from None
    if not columns:
        raise DatasetError(f"{path}: empty csv (no header)")
    missing = [c for c in required if c not in columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(columns)})")
    if not rows:
        raise DatasetError(f"{path}: csv has a header but no rows")
    return rows


def _map_label(name: str, label_map: Mapping[str, str | None] | None) -> str | None:
    if not label_map:
        return name
    return label_map[name] if name in label_map else label_map.get("*", name)


def _check_clips(clips: list[Clip], source: Path, unknown: Counter) -> list[Clip]:
    """The checks every reader shares: known labels, existing files, not empty, no recording
    twice (see _one_recording_once)."""
    if unknown:
        names = ", ".join(repr(u) for u in sorted(unknown))
        raise DatasetError(
            f"{source}: unknown label(s) {names} ({sum(unknown.values())} clips); "
            f"labels are {', '.join(LABELS)}"
        )
    missing = [c.path for c in clips if not c.path.is_file()]
    if missing:
        raise DatasetError(
            f"{source}: {len(missing)} of {len(clips)} audio files missing, first {missing[0]}"
        )
    if not clips:
        raise DatasetError(f"{source}: no clips")
    return _one_recording_once(clips, source)


def _head_sha256(path: Path, limit: int | None = 1 << 14) -> str:
    """sha256 of the first ``limit`` bytes of a file (all of it for None)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20 if limit is None else limit):
            h.update(chunk)
            if limit is not None:
                break
    return h.hexdigest()


def _one_recording_once(clips: list[Clip], source: Path) -> list[Clip]:
    """Keep one recording from being counted twice or reaching two splits. The same file by
    any name (a repeated path, a symlink, a hard link) is refused: a listing mistake. Files
    with identical bytes in different groups (a copy; digital silence of one length) are kept,
    their groups joined into one named after the first in sort order, so a split moves them
    together. Only files of equal size are read, their first 16 kB unless those match too."""
    seen: dict = {}
    for c in clips:
        st = c.path.stat()  # follows symlinks: the file itself
        if (st.st_dev, st.st_ino) in seen:
            other = seen[st.st_dev, st.st_ino][0]
            how = (
                "listed twice"
                if os.path.abspath(other.path) == os.path.abspath(c.path)
                else "one is a link to the other"
            )
            raise DatasetError(
                f"{source}: {other.path} and {c.path} are the same file ({how}); list each recording once"
            )
        seen[st.st_dev, st.st_ino] = (c, st.st_size)
    by_size = defaultdict(list)
    for c, size in seen.values():
        by_size[size].append(c)
    joined: dict[str, str] = {}  # group -> the group it joined (union-find)

    def root(group: str) -> str:
        while group in joined:
            group = joined[group]
        return group

    for same_size in (cs for cs in by_size.values() if len(cs) > 1):
        by_head = defaultdict(list)
        for c in same_size:
            by_head[_head_sha256(c.path)].append(c)
        for candidates in (cs for cs in by_head.values() if len({c.group for c in cs}) > 1):
            by_bytes = defaultdict(list)
            for c in candidates:
                by_bytes[_head_sha256(c.path, None)].append(c)
            for copies in by_bytes.values():
                roots = sorted({root(c.group) for c in copies})
                joined.update((r, roots[0]) for r in roots[1:])
    return [replace(c, group=root(c.group)) for c in clips] if joined else clips


def _duration(text: str, where: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: duration_s {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise DatasetError(f"{where}: duration_s {text!r} is not a valid duration")
    return value


def read_metadata_csv(path: str | os.PathLike) -> list[Clip]:
    """The project's own format (see METADATA_COLUMNS); ``path`` is the csv or its folder.
    Clip paths in the csv are relative to the csv's folder (absolute paths also work)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metadata.csv"
    path = Path(os.path.abspath(path))
    clips, unknown = [], Counter()
    for i, row in enumerate(_read_csv(path, REQUIRED_COLUMNS), start=2):  # row 1 is the header
        where = f"{path} row {i}"
        rel, label, group = row["path"], row["label"], row["group"]
        if not rel or not group:
            raise DatasetError(f"{where}: empty {'path' if not rel else 'group'}")
        if label not in LABELS:
            unknown[label] += 1
        clips.append(
            Clip(
                path=Path(os.path.abspath(path.parent / rel)),
                label=label,
                group=group,
                source_class=row.get("source_class") or label,
                duration_s=_duration(row.get("duration_s", ""), where),
                extra={
                    k: v
                    for k, v in row.items()
                    if k not in ("path", "label", "group", "source_class", "duration_s")
                },
            )
        )
    return _check_clips(clips, path, unknown)


_US8K_NAME = re.compile(r"^(?:[A-Za-z]\w*-)?(\d+)-\d+-\d+-\d+$")
_ESC50_NAME = re.compile(r"^\d+-(\d+)-[A-Z]-\d+$")


def group_from_name(stem: str) -> str:
    """The recording a file came from, by its name (rule in the module docstring)."""
    if m := _ESC50_NAME.match(stem):
        return f"esc50-{m.group(1)}"
    if m := _US8K_NAME.match(stem):
        return f"us8k-{m.group(1)}"
    return stem.split("__", 1)[0] if "__" in stem else stem


def read_folder_tree(
    root: str | os.PathLike, label_map: Mapping[str, str | None] | None = None
) -> list[Clip]:
    """``root/<label>/**/<audio file>``; folder names are labels, or mapped by ``label_map``."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    clips, unknown = [], Counter()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p for p in folder.rglob("*") if is_audio_file(p) and not p.name.startswith(".") and p.is_file()
        )
        label = _map_label(folder.name, label_map)
        if not files or label is None:
            continue
        if label not in LABELS:
            unknown[folder.name] += len(files)
        clips += [Clip(f, label, group_from_name(f.stem), folder.name) for f in files]
    if not clips and not unknown:
        loose = any(is_audio_file(p) for p in root.iterdir() if p.is_file())
        raise DatasetError(
            f"{root}: audio files must be in one folder per label ({', '.join(LABELS)})"
            if loose
            else f"{root}: no audio files found"
        )
    return _check_clips(clips, root, unknown)


def _public_clips(meta, rows, label_map, class_column, path_of, group_of, source, license_) -> list[Clip]:
    clips, unknown = [], Counter()
    for row in rows:
        label = _map_label(row[class_column], label_map)
        if label is None:
            continue
        if label not in LABELS:
            unknown[label] += 1
        clips.append(
            Clip(
                path_of(row),
                label,
                group_of(row),
                row[class_column],
                extra={**row, "source": source, "license": license_},
            )
        )
    return _check_clips(clips, meta, unknown)


def read_urbansound8k(
    root: str | os.PathLike,
    label_map: Mapping[str, str | None] = US8K_LABEL_MAP,
    folds: Iterable[int] | None = None,
) -> list[Clip]:
    """UrbanSound8K as distributed: metadata/UrbanSound8K.csv and audio/fold{n}/. ``extra``
    keeps the csv row (fold, salience, ...); ``folds`` keeps only those folds."""
    root = Path(os.path.abspath(root))
    meta = root / "metadata" / "UrbanSound8K.csv"
    rows = _read_csv(meta, ("slice_file_name", "fsID", "fold", "class"))
    if folds is not None:
        wanted = {str(int(f)) for f in folds}
        rows = [r for r in rows if r["fold"].strip() in wanted]
    return _public_clips(
        meta,
        rows,
        label_map,
        "class",
        lambda r: root / "audio" / f"fold{r['fold']}" / r["slice_file_name"],
        lambda r: f"us8k-{r['fsID']}",
        "us8k",
        "CC BY-NC 3.0 (UrbanSound8K)",
    )


def read_esc50(root: str | os.PathLike, label_map: Mapping[str, str | None] = ESC50_LABEL_MAP) -> list[Clip]:
    """ESC-50 as distributed: meta/esc50.csv and audio/ (it has no gunshot class)."""
    root = Path(os.path.abspath(root))
    meta = root / "meta" / "esc50.csv"
    return _public_clips(
        meta,
        _read_csv(meta, ("filename", "category", "src_file")),
        label_map,
        "category",
        lambda r: root / "audio" / r["filename"],
        lambda r: f"esc50-{r['src_file']}",
        "esc50",
        "CC BY-NC 3.0 (ESC-50)",
    )


def load_clips(path: str | os.PathLike) -> list[Clip]:
    """Any supported data set: a metadata csv (or a folder holding metadata.csv), an
    UrbanSound8K root, an ESC-50 root, or a tree of one folder per label."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DatasetError(f"{path}: not a data set (expected a .csv file or a folder)")
        return read_metadata_csv(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    if (path / "metadata.csv").is_file():
        return read_metadata_csv(path)
    if (path / "metadata" / "UrbanSound8K.csv").is_file():
        return read_urbansound8k(path)
    if (path / "meta" / "esc50.csv").is_file():
        return read_esc50(path)
    return read_folder_tree(path)


def write_split_csv(clips: Iterable[Clip], path: str | os.PathLike) -> None:
    """Write clips in the metadata.csv format, atomically. Paths are relative to the csv's
    folder when below it, else absolute. Extra columns follow, in first-seen order."""
    path = Path(os.path.abspath(path))
    with atomic_path(path) as tmp:
        _write_clips_csv(clips, tmp, path.parent)


def write_splits(splits: Mapping[str, Iterable[Clip]], out_dir: str | os.PathLike) -> list[Path]:
    """Write each split as ``out_dir/<name>.csv`` (as :func:`write_split_csv`), all or none:
    every csv is written to its temporary file before any is renamed into place, so a failure
    (a full disk: its OSError goes on) leaves an older set whole, never a new train.csv beside
    an old test.csv made from another split."""
    out_dir = Path(os.path.abspath(out_dir))
    paths = [out_dir / f"{name}.csv" for name in splits]
    with contextlib.ExitStack() as renames:
        for clips, path in zip(splits.values(), paths):
            _write_clips_csv(clips, renames.enter_context(atomic_path(path)), out_dir)
    return paths


def _write_clips_csv(clips: Iterable[Clip], tmp: Path, folder: Path) -> None:
    """The csv for :func:`write_split_csv` at ``tmp``, clip paths relative to ``folder``."""
    clips = list(clips)
    columns = list(METADATA_COLUMNS)
    for c in clips:
        columns += [k for k in c.extra if k not in columns]
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        for c in clips:
            try:
                rel = c.path.relative_to(folder).as_posix()
            except ValueError:
                rel = str(c.path)
            duration = "" if c.duration_s is None else repr(float(c.duration_s))
            writer.writerow(
                {
                    **c.extra,
                    "path": rel,
                    "label": c.label,
                    "group": c.group,
                    "source_class": c.source_class,
                    "duration_s": duration,
                }
            )


def class_stats(clips: Iterable[Clip]) -> dict[str, dict]:
    """Clips, groups and total duration per label (durations from the csv, else the file header)."""
    stats = {label: {"clips": 0, "groups": set(), "duration_s": 0.0} for label in LABELS}
    for c in clips:
        s = stats.setdefault(c.label, {"clips": 0, "groups": set(), "duration_s": 0.0})
        s["clips"] += 1
        s["groups"].add(c.group)
        s["duration_s"] += c.duration_s if c.duration_s is not None else audio_info(c.path)["duration_s"]
    return {k: {**s, "groups": len(s["groups"])} for k, s in stats.items()}


# ---------------------------------------------------------------- imbalance and splits


def _number(text: str, where: str) -> int | float:
    try:
        value = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    except ValueError:
        raise DatasetError(f"ratio {where}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise DatasetError(f"ratio {where}: {text!r} must be a finite number >= 0")
    return value


def parse_ratio(text: str, labels: Sequence[str] = LABELS) -> dict[str, int | float]:
    """``2:2:1:26`` (one number per label, in ``labels`` order) or ``dog=2,background=26``
    (labels not named get 0, i.e. are excluded). Returns a value for every label."""
    text = text.strip()
    if "=" in text:
        ratio = dict.fromkeys(labels, 0)
        seen = set()
        for part in text.split(","):
            name, sep, value = (s.strip() for s in part.partition("="))
            if not sep:
                raise DatasetError(f"ratio {text!r}: {part.strip()!r} is not label=number")
            if name not in labels:
                raise DatasetError(f"ratio {text!r}: unknown label {name!r} (labels are {', '.join(labels)})")
            if name in seen:
                raise DatasetError(f"ratio {text!r}: label {name!r} given twice")
            seen.add(name)
            ratio[name] = _number(value, repr(text))
    else:
        parts = [p.strip() for p in text.split(":")]
        if len(parts) != len(labels):
            raise DatasetError(
                f"ratio {text!r}: {len(parts)} numbers for {len(labels)} labels ({':'.join(labels)})"
            )
        ratio = {name: _number(p, repr(text)) for name, p in zip(labels, parts)}
    if not any(ratio.values()):
        raise DatasetError(f"ratio {text!r}: all values are zero")
    return ratio


def _integer_ratio(ratio: Mapping[str, int | float] | str) -> dict[str, int]:
    """The smallest integer ratio equal to ``ratio``, zeros dropped (0.5:1 -> 1:2, 4:2 -> 2:1)."""
    if isinstance(ratio, str):
        ratio = parse_ratio(ratio)
    for name, v in ratio.items():
        if name not in LABELS:
            raise DatasetError(f"ratio: unknown label {name!r} (labels are {', '.join(LABELS)})")
        _number(str(v), repr(name))  # the same checks a parsed ratio had
    # repr: 0.1 -> 1/10, not the binary float; limit: 0.333... -> 1/3 (exact to 1/1000)
    fracs = {k: Fraction(repr(float(v))).limit_denominator(1000) for k, v in ratio.items() if v}
    if not fracs:
        raise DatasetError("ratio: all values are zero")
    scale = math.lcm(*(f.denominator for f in fracs.values()))
    ints = {k: int(f * scale) for k, f in fracs.items()}
    g = math.gcd(*ints.values())
    return {k: v // g for k, v in ints.items()}


def _format_ratio(r: Mapping[str, int]) -> str:
    return ":".join(str(r.get(label, 0)) for label in LABELS)


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def subsample_to_ratio(
    clips: Sequence[Clip],
    ratio: Mapping[str, int | float] | str,
    seed: int = 0,
    max_per_unit: int | None = None,
) -> list[Clip]:
    """The largest subset whose class counts are exactly k * r_c (k = min_c n_c // r_c, capped
    at ``max_per_unit``). Which clips are kept depends only on ``seed`` and the clip paths;
    classes with ratio 0 are dropped. Input order is kept."""
    r = _integer_ratio(ratio)
    by_label = defaultdict(list)  # label -> indices into clips
    for i, c in enumerate(clips):
        by_label[c.label].append(i)
    for label in r:
        if not by_label[label]:
            raise DatasetError(f"ratio {_format_ratio(r)} needs {label} clips, found none")
    k = min(len(by_label[label]) // n for label, n in r.items())
    if max_per_unit is not None:
        k = min(k, max_per_unit)
    if k == 0:
        label = min(r, key=lambda lab: len(by_label[lab]) // r[lab])
        raise DatasetError(
            f"ratio {_format_ratio(r)} needs at least {r[label]} {label} clips, found {len(by_label[label])}"
        )
    keep = set()
    for label, n in r.items():
        # sorted so the choice does not depend on input order; a per-label generator so
        # changing one class's count does not reshuffle the others
        pool = sorted(by_label[label], key=lambda i: str(clips[i].path))
        keep.update(pool[j] for j in _rng(seed, label).permutation(len(pool))[: k * n])
    return [c for i, c in enumerate(clips) if i in keep]


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    fractions = [float(f) for f in fractions]
    if (
        len(fractions) != len(SPLITS)
        or any(not math.isfinite(f) or f < 0 for f in fractions)
        or not fractions[0]
    ):
        raise DatasetError(f"split fractions {fractions}: need 3 numbers >= 0 (train, val, test), train > 0")
    total = sum(fractions)
    return [f / total for f in fractions]  # normalised, so 70:15:15 works too


def split_by_group(
    clips: Sequence[Clip], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, list[Clip]]:
    """Split into train/val/test moving whole groups, stratified by class.

    Groups are placed one at a time, the rarest class's groups first (a group counts as its
    rarest class), in a seeded random order; each goes to the split whose share of that class
    is furthest below its fraction. Every split with a fraction > 0 therefore gets a group of
    each class before any split gets a second one. A class with fewer groups than such splits
    is a DatasetError. Deterministic for a given seed and set of clips."""
    fr = dict(zip(SPLITS, _check_fractions(fractions)))
    if not clips:
        raise DatasetError("no clips to split")
    active = [s for s in SPLITS if fr[s] > 0]
    members = defaultdict(Counter)  # group -> label -> clips
    for c in clips:
        members[c.group][c.label] += 1
    n_clips = Counter(c.label for c in clips)
    n_groups = Counter(label for m in members.values() for label in m)
    for label, n in sorted(n_groups.items()):
        if n < len(active):
            raise DatasetError(
                f"class {label} has clips from only {n} group(s) (recordings); a split into "
                f"{'/'.join(active)} needs at least {len(active)}, one per split"
            )
    rarity = {label: (n, label) for label, n in n_groups.items()}
    order = sorted(members)
    rng = np.random.default_rng(seed)
    shuffle = dict(zip(order, rng.permutation(len(order))))
    primary = {g: min(m, key=rarity.get) for g, m in members.items()}
    order.sort(key=lambda g: (rarity[primary[g]], shuffle[g]))
    have = {s: Counter() for s in active}
    where = {}
    for g in order:
        c = primary[g]
        s = min(active, key=lambda s: have[s][c] / (fr[s] * n_clips[c]))  # ties -> first: train
        where[g] = s
        have[s].update(members[g])
    return {s: [c for c in clips if where.get(c.group) == s] for s in SPLITS}


def prepare_splits(
    clips: Sequence[Clip],
    ratio: Mapping[str, int | float] | str | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    max_per_unit: int | None = None,
    ratio_splits: Sequence[str] = ("train",),
) -> dict[str, list[Clip]]:
    """Split by group, then subsample the splits named in ``ratio_splits`` to ``ratio``.

    By default only train is subsampled: the imbalance is a property of the training data,
    and every metric we report (per-class error, their mean, macro-F1) is per class, so
    validation and test keep all their clips, which makes early stopping and the test
    estimate less noisy. ``ratio_splits=SPLITS`` imposes the ratio everywhere. Classes with
    ratio 0 are dropped before splitting."""
    if ratio is None:
        return split_by_group(clips, fractions, seed)
    r = _integer_ratio(ratio)
    splits = split_by_group([c for c in clips if c.label in r], fractions, seed)
    out = {}
    for name, part in splits.items():
        if not part or name not in ratio_splits:  # a split with fraction 0, or kept whole
            out[name] = part
            continue
        try:
            out[name] = subsample_to_ratio(part, r, seed, max_per_unit)
        except DatasetError as exc:
            raise DatasetError(f"{name} split: {exc}") from None
    return out


# ---------------------------------------------------------------- a run's splits, rebuilt


def cache_dir() -> Path:
    """Where edge-sed keeps what it can rebuild: $EDGE_SED_CACHE, else ~/.cache/edge-sed."""
    return Path(os.environ.get("EDGE_SED_CACHE", Path.home() / ".cache" / "edge-sed"))


def synthetic_source(counts: str, seed: int, make: bool = True) -> Path:
    """The metadata.csv of the cached synthetic set with these counts and this seed (a run's
    ``data="synthetic"``), made if missing and ``make``."""
    parsed = {k: int(v) for k, v in parse_ratio(counts).items()}
    folder = cache_dir() / "synth" / f"{'-'.join(str(parsed[l]) for l in LABELS)}-seed{seed}"
    csv_path = folder / "metadata.csv"
    if make and not csv_path.exists():  # written last and atomically, so its presence means complete
        from edge_sed.data.synth import write_dataset

        write_dataset(folder, parsed, seed=seed)
    return csv_path


def data_source(data, seed: int, synth_counts: str | None = None, make: bool = True) -> Path:
    """A run's ``data`` as a path: ``synthetic`` is the cached synthetic set of the run's counts
    (TRAIN_SYNTH_COUNTS when it records none) and seed; anything else is a path as it is."""
    if str(data) == "synthetic":
        return synthetic_source(synth_counts or TRAIN_SYNTH_COUNTS, seed, make)
    return Path(data)


def is_prepared_splits(source: Path) -> bool:
    """A folder with train.csv, val.csv and test.csv (what ``edge-sed data prepare`` writes)."""
    return source.is_dir() and all((source / f"{s}.csv").exists() for s in SPLITS)


def run_clip_splits(
    source: Path,
    ratio: str | None,
    seed: int,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    ratio_splits: Sequence[str] = ("train",),
    names: Sequence[str] = SPLITS,
) -> dict[str, list[Clip]]:
    """The clip-level splits ``names`` a run trained on, rebuilt as the trainer built them: a
    prepared-splits folder's CSVs as they are, anything else split by group with ``prepare_splits``
    (the run's ratio, fractions and seed)."""
    if is_prepared_splits(source):
        return {s: read_metadata_csv(source / f"{s}.csv") for s in names}
    splits = prepare_splits(
        load_clips(source),
        ratio=parse_ratio(ratio) if ratio else None,
        fractions=fractions,
        seed=seed,
        ratio_splits=ratio_splits,
    )
    return {s: splits[s] for s in names}


# ---------------------------------------------------------------- clip-to-window policy


def locate_window(
    audio: np.ndarray,
    label: str,
    seed: int,
    key: str,
    window_s: float = CLIP_WINDOW_S,
    sample_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, int]:
    """The clip, zero-padded to one window if shorter, and the sample where the policy's window
    starts in it (policy in the module docstring). Trainers that crop around the policy window
    (augmentation) start from here."""
    if label not in LABELS:
        raise DatasetError(f"{key}: unknown label {label!r}")
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    n = int(round(window_s * sample_rate))
    event = label != BACKGROUND
    if len(audio) <= n:
        left = (n - len(audio)) // 2  # never by label: the padding must not carry the label
        return np.pad(audio, (left, n - len(audio) - left)), 0
    if event:
        hop, box = max(1, sample_rate // 100), max(1, sample_rate // 10)
        energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
        starts = np.arange(0, max(1, len(audio) - box + 1), hop)
        ends = np.minimum(starts + box, len(audio))
        peak = int(starts[np.argmax(energy[ends] - energy[starts])]) + box // 2
        start = min(max(peak - n // 2, 0), len(audio) - n)
    else:
        start = int(_rng(seed, str(key)).integers(0, len(audio) - n + 1))
    return audio, start


def clip_to_window(
    audio: np.ndarray,
    label: str,
    seed: int,
    key: str,
    window_s: float = CLIP_WINDOW_S,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """One window of ``window_s`` from a clip (policy in the module docstring). ``key`` names
    the clip for the background crop's seed (load_windows passes the file name)."""
    audio, start = locate_window(audio, label, seed, key, window_s, sample_rate)
    return audio[start : start + int(round(window_s * sample_rate))].copy()


def _load_window(job: tuple) -> np.ndarray:
    path, label, seed, window_s = job
    return clip_to_window(read_audio(path), label, seed, Path(path).name, window_s)


def load_windows(
    clips: Sequence[Clip],
    seed: int = 0,
    window_s: float = CLIP_WINDOW_S,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read every clip and cut its window: (N, window) float32, (N,) label indices into
    LABELS, N groups. ``workers`` > 1 reads in that many processes, with the same output;
    the default is 1 because decoding 16 kHz FLAC (~1 ms a clip) is cheaper than shipping
    the windows between processes, and a pool needs a ``__main__`` guard where processes
    are spawned. ``progress(done, total)`` is called after each clip."""
    n = int(round(window_s * SAMPLE_RATE))
    x = np.zeros((len(clips), n), dtype=np.float32)
    for c in clips:
        if c.label not in LABELS:
            raise DatasetError(f"{c.path}: unknown label {c.label!r}")
    jobs = [(str(c.path), c.label, seed, window_s) for c in clips]
    workers = min(workers or 1, len(jobs))
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        # map keeps the input order, so the pool cannot change the result
        results = (
            pool.map(_load_window, jobs, chunksize=max(1, min(32, len(jobs) // (4 * workers))))
            if pool
            else map(_load_window, jobs)
        )
        for i, window in enumerate(results):
            x[i] = window
            if progress:
                progress(i + 1, len(jobs))
    y = np.array([LABELS.index(c.label) for c in clips], dtype=np.int64)
    return x, y, [c.group for c in clips]
