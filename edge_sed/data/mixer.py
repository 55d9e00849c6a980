"""Mixtures: event sounds laid on background beds in the audio domain, DCASE 2017 task 2 style.
One mixer makes both the training sequences (fresh every epoch) and the evaluation streams, so
training sees exactly what a microphone gives: an event at another level, on another
background, cut by an edge, between long stretches of nothing.

- An event is the **active span** of an event clip: annotated (``onset_s``/``offset_s`` columns,
  as the synthetic set has) or located by energy (``active_span``), plus a short pad.
- The **bed** is background recordings joined group by group (a group is one recording: one
  room, one noise) with equal-power cross-fades; each group gets one level, drawn in dBFS RMS
  from ``bed_dbfs`` (so level changes happen where recordings change, as they would).
- Each event is scaled to an event-to-background ratio drawn from ``ebr_db`` (RMS of the span
  vs RMS of the bed under it), faded in/out over 5 ms and added at a random onset; with
  ``cut_edges`` an event may start before the sequence or end after it.
- Annotations give the span where it lands; ``frame_targets`` turns them into one class index
  per front-end frame (the frame's centre inside a span).

Deterministic by the ``rng`` passed in. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_sed.core.audio_io import read_audio
from edge_sed.data.datasets import Clip
from edge_sed.core.errors import DatasetError
from edge_sed.core.events import Annotation
from edge_sed.core.frontend import FrontendConfig
from edge_sed.core.settings import BACKGROUND, LABELS, SAMPLE_RATE

CROSSFADE_S = 0.25
EDGE_FADE_S = 0.005
PEAK = 0.99
MIN_EVENT_EBR_DB = -15.0
"""An event that would end up below this EBR once turned down to fit under full scale (a loud
impulse on a loud bed) is left out, annotation and all: a label must name a sound one can hear.
(Turned down less, it is kept, and its annotation gives the EBR it got.)"""
SPAN_BLOCK_S = 0.01


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-12


def dbfs(x: np.ndarray) -> float:
    """RMS level in dB relative to a full-scale square wave (1.0 RMS)."""
    return 20.0 * np.log10(rms(x))


def active_blocks(
    audio: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    below_peak_db: float = 20.0,
    above_floor_db: float = 6.0,
) -> tuple[np.ndarray, int]:
    """(active, peak): which 10 ms blocks of ``audio`` are loud (energy smoothed over 30 ms within
    ``below_peak_db`` of the loudest block and ``above_floor_db`` over the 10th percentile), and
    the loudest block's index."""
    x = np.asarray(audio, np.float64).reshape(-1)
    block = max(1, int(round(SPAN_BLOCK_S * sample_rate)))
    n = len(x) // block
    if n == 0:
        return np.zeros(0, bool), 0
    energy = np.square(x[: n * block]).reshape(n, block).mean(1) + 1e-12
    energy = np.convolve(energy, np.ones(3) / 3, mode="same")
    db = 10 * np.log10(energy)
    peak = int(np.argmax(db))
    return db >= max(db[peak] - below_peak_db, np.percentile(db, 10) + above_floor_db), peak


def active_span(
    audio: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    below_peak_db: float = 20.0,
    above_floor_db: float = 6.0,
    max_gap_s: float = 0.5,
    min_len_s: float = 0.05,
) -> tuple[float, float]:
    """(onset_s, offset_s) of the loud part of an event clip, by energy in 10 ms blocks.

    A block is active when its energy (smoothed over 30 ms) is within ``below_peak_db`` of the
    clip's loudest block and ``above_floor_db`` over its floor (10th percentile); active runs
    closer than ``max_gap_s`` merge (a bark train is one event), and the run holding the peak is
    the span. Why not the whole clip: recorded clips carry seconds of their own room noise
    around the sound, which would teach the model that room, not the sound."""
    x = np.asarray(audio, np.float64).reshape(-1)
    block = max(1, int(round(SPAN_BLOCK_S * sample_rate)))
    n = len(x) // block
    if n < 3:
        return 0.0, len(x) / sample_rate
    active, peak = active_blocks(x, sample_rate, below_peak_db, above_floor_db)
    if not active.any():
        return 0.0, n * block / sample_rate
    gap = int(round(max_gap_s / SPAN_BLOCK_S))
    # runs of active blocks, merged across short gaps; keep the run that holds the peak
    idx = np.flatnonzero(active)
    breaks = np.flatnonzero(np.diff(idx) > gap + 1)
    starts, ends = np.r_[idx[0], idx[breaks + 1]], np.r_[idx[breaks], idx[-1]] + 1
    k = int(np.searchsorted(ends, peak, side="right"))
    k = min(k, len(starts) - 1)
    a, b = int(starts[k]), int(ends[k])
    b = max(b, a + int(np.ceil(min_len_s / SPAN_BLOCK_S)))
    return a * block / sample_rate, min(b * block, len(x)) / sample_rate


@dataclass
class EventSound:
    label: str
    audio: np.ndarray  # float32, span plus pad
    onset_s: float  # span within audio
    offset_s: float
    group: str
    active: np.ndarray | None = None  # loud 10 ms blocks of audio (within the span), for frame targets


def _annotated_span(clip: Clip) -> tuple[float, float] | None:
    try:
        onset, offset = float(clip.extra.get("onset_s")), float(clip.extra.get("offset_s"))
    except (TypeError, ValueError):
        return None
    return (onset, offset) if offset > onset >= 0 else None


def event_sound(
    clip: Clip, audio: np.ndarray | None = None, pad_s: float = 0.05, max_len_s: float = 6.0
) -> EventSound:
    """The clip's active span (annotated, else ``active_span``) with ``pad_s`` either side,
    at most ``max_len_s`` long."""
    audio = read_audio(clip.path) if audio is None else audio
    span = _annotated_span(clip) or active_span(audio)
    onset, offset = span[0], min(span[1], span[0] + max_len_s)
    a = max(0, int(round((onset - pad_s) * SAMPLE_RATE)))
    b = min(len(audio), int(round((offset + pad_s) * SAMPLE_RATE)))
    seg = np.asarray(audio[a:b], np.float32)
    on, off = onset - a / SAMPLE_RATE, min(offset, b / SAMPLE_RATE) - a / SAMPLE_RATE
    active, _ = active_blocks(seg)
    t = (np.arange(len(active)) + 0.5) * SPAN_BLOCK_S
    active &= (t >= on) & (t < off)
    # dilate by 50 ms each side: a bark's decay and the frame's 25 ms window
    k = int(round(0.05 / SPAN_BLOCK_S))
    active = np.convolve(active.astype(float), np.ones(2 * k + 1), mode="same") > 0
    return EventSound(clip.label, seg, on, off, clip.group, active & (t >= on) & (t < off))


class Banks:
    """The audio a mixer draws from: event sounds by class and background recordings by group,
    read once (a split of real-dev is ~50 MB of float32)."""

    def __init__(self, clips, labels=LABELS):
        self.labels = list(labels)
        self.events: dict[str, list[EventSound]] = {}
        self.backgrounds: dict[str, list[np.ndarray]] = {}
        self.bed_sources: dict[str, str] = {}  # group -> its recording's source class (siren, drilling, ...)
        for c in clips:
            audio = read_audio(c.path).astype(np.float32)
            if c.label == BACKGROUND:
                if len(audio) > 2 * int(CROSSFADE_S * SAMPLE_RATE):
                    self.backgrounds.setdefault(c.group, []).append(audio)
                    self.bed_sources.setdefault(c.group, c.source_class)
            elif c.label in self.labels:
                self.events.setdefault(c.label, []).append(event_sound(c, audio))
        if not self.backgrounds:
            raise DatasetError("mixtures need background recordings; the split has none")
        if not self.events:
            raise DatasetError("mixtures need event clips; the split has none")
        self.groups = sorted(self.backgrounds)
        self.bed_classes = sorted(set(self.bed_sources.values()))
        self.event_labels = [l for l in self.labels if l in self.events]
        self.bed_weights: np.ndarray | None = None
        """How often ``make_bed`` draws each group of ``groups`` (None: uniformly); training's
        hard-negative mining sets it (train.stateful.bed_weights)."""


def tilt(x: np.ndarray, b: float) -> np.ndarray:
    """A first-order spectral tilt, y[n] = x[n] - b x[n-1] (b > 0 brightens, b < 0 darkens), at
    the input's RMS: another microphone or room, roughly."""
    y = x.astype(np.float32).copy()
    y[1:] -= np.float32(b) * x[:-1]
    return y * np.float32(rms(x) / rms(y))


def perturb(ev: EventSound, rng: np.random.Generator, speed=(0.9, 1.1), tilt_b=(-0.5, 0.5)) -> EventSound:
    """Augmentation: the event played at a random speed (pitch and length together, by linear
    interpolation: the audio is band-limited to half the sample rate's band) through a random
    spectral tilt."""
    r = rng.uniform(*speed)
    n = len(ev.audio)
    m = max(2, int(round(n / r)))
    audio = np.interp(np.arange(m) * r, np.arange(n), ev.audio).astype(np.float32)
    audio = tilt(audio, rng.uniform(*tilt_b))
    active = None
    if ev.active is not None and len(ev.active):
        idx = np.minimum(
            (np.arange(int(np.ceil(m / (SPAN_BLOCK_S * SAMPLE_RATE)))) * r).astype(int), len(ev.active) - 1
        )
        active = ev.active[idx]
    return EventSound(ev.label, audio, ev.onset_s / r, ev.offset_s / r, ev.group, active)


def append_crossfaded(pieces: list, x: np.ndarray) -> int:
    """Append ``x`` to ``pieces`` with an equal-power cross-fade of CROSSFADE_S over the end of
    the last piece (``x``'s head is overwritten); returns how many samples the joined whole grew."""
    fade = int(CROSSFADE_S * SAMPLE_RATE)
    if pieces:
        theta = np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)
        prev = pieces[-1]
        x[:fade] = prev[-fade:] * np.cos(theta) + x[:fade] * np.sin(theta)
        pieces[-1] = prev[:-fade]
        pieces.append(x)
        return len(x) - fade
    pieces.append(x)
    return len(x)


def make_bed(
    banks: Banks, n: int, rng: np.random.Generator, bed_dbfs=(-45.0, -25.0), segments: list | None = None
) -> np.ndarray:
    """``n`` samples of background: groups in random order, a random start in the first clip of
    each (groups drawn by ``banks.bed_weights`` when set), one level per group drawn uniformly from
    ``bed_dbfs`` (a fixed level if one number). ``segments``, if a list, gets (first sample, group)
    of every recording as it enters the bed (a cross-fade counts to the recording it leaves)."""
    fade = int(CROSSFADE_S * SAMPLE_RATE)
    lo, hi = (bed_dbfs, bed_dbfs) if np.isscalar(bed_dbfs) else bed_dbfs
    pieces, have = [], 0
    while have < n + fade:
        g = (
            rng.integers(len(banks.groups))
            if banks.bed_weights is None
            else rng.choice(len(banks.groups), p=banks.bed_weights)
        )
        group = banks.backgrounds[banks.groups[g]]
        if segments is not None:
            segments.append((have, banks.groups[g]))
        level = 10 ** (rng.uniform(lo, hi) / 20)
        order = rng.permutation(len(group))
        first = True
        for i in order:
            x = group[i]
            if first:  # start anywhere in the group's first clip
                x = x[rng.integers(0, max(1, len(x) - 2 * fade)) :]
                first = False
            if len(x) <= 2 * fade:
                continue
            have += append_crossfaded(pieces, x * np.float32(level / rms(x)))
            if have >= n + fade:
                break
    return np.concatenate(pieces)[:n].astype(np.float32)


def add_event(audio: np.ndarray, ev: EventSound, start: int, ebr_db: float) -> Annotation | None:
    """Add ``ev`` (scaled to ``ebr_db`` over the bed under its span) with its first sample at
    ``start`` (may be negative, or run past the end: the event is cut). Returns the annotation
    of the part of the span inside ``audio``, None if none of it is or if the event could only be
    added without clipping below ``MIN_EVENT_EBR_DB`` (then nothing is added)."""
    n = len(audio)
    seg = ev.audio.astype(np.float32).copy()
    fade = int(EDGE_FADE_S * SAMPLE_RATE)
    if len(seg) > 2 * fade:
        seg[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)
        seg[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    a, b = (
        int(ev.onset_s * SAMPLE_RATE),
        max(int(ev.onset_s * SAMPLE_RATE) + 1, int(ev.offset_s * SAMPLE_RATE)),
    )
    lo, hi = max(0, start + a), min(n, start + b)
    if hi - lo < int(0.02 * SAMPLE_RATE):
        return None
    under = audio[lo:hi]
    seg *= np.float32(10 ** (ebr_db / 20) * rms(under) / rms(seg[a:b]))
    s0, s1 = max(0, -start), min(len(seg), n - start)
    part = seg[s0:s1]
    under_all = audio[start + s0 : start + s1]
    headroom = (PEAK - float(np.abs(under_all).max())) / (float(np.abs(part).max()) + 1e-12)
    gain = 1.0
    if headroom < 1.0:  # never clip: a loud impulse gets less EBR
        if ebr_db + 20 * np.log10(max(headroom, 1e-12)) < MIN_EVENT_EBR_DB:
            return None
        gain = headroom
        part = part * np.float32(gain)
    audio[start + s0 : start + s1] += part
    return Annotation(
        round(lo / SAMPLE_RATE, 4),
        round(hi / SAMPLE_RATE, 4),
        ev.label,
        ebr_db=round(ebr_db + 20 * np.log10(gain), 2),
        bed_dbfs=round(dbfs(under), 2),
    )


def mix(
    banks: Banks,
    duration_s: float,
    rng: np.random.Generator,
    events_per_min: float = 12.0,
    ebr_db=(-9.0, 9.0),
    bed_dbfs=(-45.0, -25.0),
    min_gap_s: float = 1.0,
    cut_edges: bool = True,
    event_free_prob: float = 0.2,
    lead_in_s: float = 0.0,
    activity: bool = False,
    augment: bool = False,
    segments: list | None = None,
):
    """One mixture of ``duration_s`` seconds: a bed with events of classes drawn in turn from a
    random permutation (balanced, whatever the clip counts), event sounds drawn at random from
    their class. Event count ~ Poisson(events_per_min * minutes); with probability
    ``event_free_prob`` none at all. ``ebr_db``: a tuple (lo, hi) drawn uniformly, or a list of
    values, one drawn per event. Events are at least ``min_gap_s`` apart (end to next onset),
    the free time split at random between them. With ``cut_edges`` the mixture is cut from the
    middle of a longer one, so events may start before 0 or end after ``duration_s``; their
    annotations are clipped to the mixture. Returns (audio, annotations), and with ``activity``
    also the class index of every 10 ms block: the event's class where its sound is loud
    (``EventSound.active``), background elsewhere (gaps between barks included). ``augment``:
    every event through ``perturb`` and the bed through a random ``tilt``. ``segments``: as
    ``make_bed``'s, in samples of the returned mixture (a recording entering before it starts at 0)."""
    pad_s = 2.0 if cut_edges else 0.0
    total_s = duration_s + 2 * pad_s
    n = int(round(total_s * SAMPLE_RATE))
    audio = make_bed(banks, n, rng, bed_dbfs, segments)
    if augment:
        audio = tilt(audio, rng.uniform(-0.5, 0.5))
    k = 0 if rng.random() < event_free_prob else int(rng.poisson(events_per_min * duration_s / 60))
    labels: list[str] = []
    while len(labels) < k:
        labels += [banks.event_labels[i] for i in rng.permutation(len(banks.event_labels))]
    sounds = [banks.events[l][rng.integers(len(banks.events[l]))] for l in labels[:k]]
    if augment:
        sounds = [perturb(ev, rng) for ev in sounds]
    lengths = [len(ev.audio) / SAMPLE_RATE for ev in sounds]
    lead = lead_in_s
    while sounds and sum(lengths) + min_gap_s * len(sounds) > total_s - lead:
        sounds.pop(), lengths.pop()  # too many for the time: drop the last
    annotations = []
    blocks = np.full(n // int(SPAN_BLOCK_S * SAMPLE_RATE) + 1, LABELS.index(BACKGROUND), np.int64)
    if sounds:
        free = total_s - lead - sum(lengths) - min_gap_s * len(sounds)
        gaps = rng.dirichlet(np.ones(len(sounds) + 1)) * free
        t = lead
        for ev, length, gap in zip(sounds, lengths, gaps):
            t += gap
            e = ebr_db[rng.integers(len(ebr_db))] if isinstance(ebr_db, list) else rng.uniform(*ebr_db)
            ann = add_event(audio, ev, int(round(t * SAMPLE_RATE)), float(e))
            if ann is not None:
                annotations.append(ann)
                if activity and ev.active is not None:
                    b0 = int(round(t / SPAN_BLOCK_S))
                    idx = b0 + np.flatnonzero(ev.active)
                    idx = idx[(idx >= 0) & (idx < len(blocks))]
                    blocks[idx] = LABELS.index(ev.label)
            t += length + min_gap_s
    if pad_s:
        p = int(round(pad_s * SAMPLE_RATE))
        audio = audio[p : p + int(round(duration_s * SAMPLE_RATE))]
        if segments is not None:
            kept = [(max(0, s - p), g) for s, g in segments if s - p < len(audio)]
            segments[:] = [seg for k, seg in enumerate(kept) if k + 1 == len(kept) or kept[k + 1][0] > 0]
        blocks = blocks[int(round(pad_s / SPAN_BLOCK_S)) :]
        clipped = []
        for a in annotations:
            on, off = max(0.0, a.onset_s - pad_s), min(duration_s, a.offset_s - pad_s)
            if off - on >= 0.02:
                clipped.append(Annotation(round(on, 4), round(off, 4), a.label, a.ebr_db, a.bed_dbfs))
        annotations = clipped
    if activity:
        return audio, annotations, blocks[: len(audio) // int(SPAN_BLOCK_S * SAMPLE_RATE) + 1]
    return audio, annotations


def block_frame_targets(
    blocks: np.ndarray, n_frames: int, cfg: FrontendConfig = FrontendConfig()
) -> np.ndarray:
    """(n_frames,) class index of every front-end frame from ``mix(..., activity=True)``'s 10 ms
    block labels: the block that holds the frame's centre."""
    centre = np.arange(n_frames) * cfg.hop_samples + cfg.window_samples // 2
    idx = np.minimum(centre // int(SPAN_BLOCK_S * cfg.sample_rate), len(blocks) - 1)
    return blocks[idx]


def frame_targets(
    annotations, n_frames: int, cfg: FrontendConfig = FrontendConfig(), labels=LABELS
) -> np.ndarray:
    """(n_frames,) int64 class index of every front-end frame: the class of the span that holds
    the frame's centre, else background."""
    labels = list(labels)
    y = np.full(n_frames, labels.index(BACKGROUND), np.int64)
    centre = (np.arange(n_frames) * cfg.hop_samples + cfg.window_samples / 2) / cfg.sample_rate
    for a in annotations:
        y[(centre >= a.onset_s) & (centre < a.offset_s)] = labels.index(a.label)
    return y


def split_clips(source, seed: int, ratio: str | None = None, fractions=(0.7, 0.15, 0.15)) -> dict:
    """train/val/test clip lists of a data set: a prepared-splits folder as it is, else split by
    group with ``seed`` (and the training split subsampled to ``ratio``), exactly as training
    splits it, so streams of a split hold only that split's recordings."""
    from pathlib import Path

    from edge_sed.data.datasets import SPLITS, load_clips, parse_ratio, prepare_splits, read_metadata_csv

    source = Path(source)
    if source.is_dir() and all((source / f"{s}.csv").exists() for s in SPLITS):
        return {s: read_metadata_csv(source / f"{s}.csv") for s in SPLITS}
    return prepare_splits(
        load_clips(source), ratio=parse_ratio(ratio) if ratio else None, fractions=fractions, seed=seed
    )


EVAL_EBR_DB = [-6.0, 0.0, 6.0]
EVAL_BED_DBFS = (-40.0, -25.0)


def evaluation_streams(
    banks: Banks,
    seed: int,
    count: int,
    seconds: float,
    events_per_min: float = 8.0,
    ebr_db=EVAL_EBR_DB,
    bed_dbfs=EVAL_BED_DBFS,
) -> list:
    """[(audio, annotations, seconds)]: DCASE 2017 task 2 style test mixtures, EBR -6/0/+6 dB,
    beds over 15 dB (-40..-25 dBFS RMS), events >= 2 s apart, none cut by an edge, a 2 s lead-in.
    Deterministic by ``seed``."""
    rng = np.random.default_rng([seed, 7919])
    out = []
    for _ in range(count):
        audio, ann = mix(
            banks,
            seconds,
            rng,
            events_per_min=events_per_min,
            ebr_db=list(ebr_db),
            bed_dbfs=tuple(bed_dbfs),
            min_gap_s=2.0,
            cut_edges=False,
            event_free_prob=0.0,
            lead_in_s=2.0,
        )
        out.append((audio, ann, seconds))
    return out
