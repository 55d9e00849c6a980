"""Labelled streams, DCASE 2017 task 2 style: event clips placed on a long background at known
onsets, with an annotation list. The test input of the device loop (listen, the simulators,
stream-level evaluation).

- Background: background clips of the split, a group (recording) at a time in a seeded random
  order, levelled to ``bed_rms`` (default: the median RMS of the background clips) and joined with
  250 ms equal-power cross-fades until the stream is long enough (their distractors stay: they must not fire).
- Events: for each event a clip of an event class (classes in turn, clips drawn without
  replacement where possible). A clip of edge_sed.data.synth gives its isolated event (regenerated
  from seed and index), as DCASE 2017 mixed isolated events; any other clip gives a segment of
  itself (its own background included). The segment is cut out: the annotated active span
  [onset_s, offset_s) plus ``pad_s`` either side when the metadata has one (synthetic data),
  else the clip's 1 s policy window (edge_sed.data.datasets.locate_window). The segment is scaled to
  ``ebr_db`` over the background under it (RMS vs RMS; None keeps the clip's level; less if
  the sum would exceed a peak of 0.99 — the bed is never rescaled, so it keeps the level the
  model knows), faded in and out over 5 ms and added at a random onset, events ``min_gap_s``
  apart at least.
- Annotation onset/offset = where the active span lands (for a policy window without a span:
  the window's bounds).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from edge_sed.core.atomic import atomic_path
from edge_sed.core.audio_io import read_audio, write_audio
from edge_sed.data.datasets import Clip, load_clips, locate_window
from edge_sed.core.errors import DatasetError
from edge_sed.core.events import Annotation, write_annotations
from edge_sed.data.mixer import CROSSFADE_S, EDGE_FADE_S, MIN_EVENT_EBR_DB, PEAK, append_crossfaded
from edge_sed.data.mixer import rms as _rms
from edge_sed.core.settings import BACKGROUND, CLIP_WINDOW_S, SAMPLE_RATE
from edge_sed.data.synth import make_components


def _background_bed(clips: list[Clip], n: int, rng, bed_rms: float) -> np.ndarray:
    """Background clips joined into one bed. A short clip is not a recording: its level and
    kind jump at every join, which a model rightly takes for an impulsive sound. So clips go
    group by group (a group is one recording: same room and noise), each is scaled to the
    ``bed_rms``, and joins are equal-power cross-fades of CROSSFADE_S."""
    fade = int(CROSSFADE_S * SAMPLE_RATE)
    groups: dict[str, list[Clip]] = {}
    for c in clips:
        groups.setdefault(c.group, []).append(c)
    names = sorted(groups)
    pieces, have = [], 0
    order: list[Clip] = []
    while have < n + fade:
        if not order:
            for g in rng.permutation(len(names)):
                members = groups[names[g]]
                order += [members[i] for i in rng.permutation(len(members))]
        x = read_audio(order.pop(0).path).astype(np.float32)
        if len(x) <= 2 * fade:
            continue
        have += append_crossfaded(pieces, x * np.float32(bed_rms / _rms(x)) if bed_rms else x)
    return np.concatenate(pieces)[:n]


def _synthetic_event(clip: Clip, onset_s: float) -> np.ndarray | None:
    """The isolated event of a clip made by edge_sed.data.synth (regenerated from its seed and index:
    the generator is deterministic), or None for any other clip."""
    m = re.fullmatch(rf"synth-{re.escape(clip.label)}-(\d+)", clip.path.stem)
    if not m or clip.extra.get("source") != "synth" or clip.duration_s is None:
        return None
    try:
        event, _, meta = make_components(
            clip.label, int(m.group(1)), int(clip.extra.get("seed", "")), clip_s=clip.duration_s
        )
    except (ValueError, DatasetError):
        return None
    if meta["onset_s"] is None or abs(meta["onset_s"] - onset_s) > 1e-3:
        return None  # not the clip this metadata describes
    return event.astype(np.float32)


def _event_segment(
    clip: Clip, pad_s: float, seed: int, isolate: bool = True
) -> tuple[np.ndarray, float, float]:
    """(segment, onset within it, offset within it), seconds."""
    onset, offset = clip.extra.get("onset_s"), clip.extra.get("offset_s")
    try:
        onset, offset = float(onset), float(offset)
    except (TypeError, ValueError):
        onset = offset = None
    isolated = _synthetic_event(clip, onset) if onset is not None and isolate else None
    audio = isolated if isolated is not None else read_audio(clip.path)
    if onset is not None and offset > onset:
        a = max(0, int(round((onset - pad_s) * SAMPLE_RATE)))
        b = min(len(audio), int(round((offset + pad_s) * SAMPLE_RATE)))
        return audio[a:b], onset - a / SAMPLE_RATE, offset - a / SAMPLE_RATE
    audio, start = locate_window(audio, clip.label, seed, clip.path.name)
    n = int(round(CLIP_WINDOW_S * SAMPLE_RATE))
    return audio[start : start + n], 0.0, n / SAMPLE_RATE


def make_stream(
    clips,
    duration_s: float,
    n_events: int,
    seed: int = 0,
    ebr_db: float | None = 6.0,
    min_gap_s: float = 3.0,
    pad_s: float = 0.1,
    lead_in_s: float = 2.0,
    labels=None,
    bed_rms: float | None = None,
    isolate: bool = True,
) -> tuple[np.ndarray, list[Annotation]]:
    """A stream of ``duration_s`` seconds (float32, 16 kHz) with ``n_events`` events of the
    event classes in ``clips`` (Clip list, or a split CSV / data set path for load_clips),
    none in the first ``lead_in_s`` seconds; ``labels`` limits the event classes. Returns
    (audio, annotations sorted by onset). Deterministic by ``seed``."""
    if not isinstance(clips, (list, tuple)):
        clips = load_clips(clips)
    rng = np.random.default_rng(seed)
    backgrounds = [c for c in clips if c.label == BACKGROUND]
    events_by_label: dict[str, list[Clip]] = {}
    for c in clips:
        if c.label != BACKGROUND and (labels is None or c.label in labels):
            events_by_label.setdefault(c.label, []).append(c)
    if not backgrounds:
        raise DatasetError("a stream needs background clips; the split has none")
    if n_events and not events_by_label:
        raise DatasetError(
            "a stream needs event clips; the split has none" + (f" of {', '.join(labels)}" if labels else "")
        )
    n = int(round(duration_s * SAMPLE_RATE))
    usable = duration_s - lead_in_s - 1.5
    if n_events and usable < n_events * min_gap_s:
        raise DatasetError(
            f"{n_events} events {min_gap_s:g} s apart do not fit in {duration_s:g} s "
            f"(after a {lead_in_s:g} s lead-in)"
        )
    if bed_rms is None:  # the level the background clips have (what a model trained on them knows)
        bed_rms = float(np.median([_rms(read_audio(c.path)) for c in backgrounds[:50]]))
    audio = _background_bed(backgrounds, n, rng, bed_rms)
    # onsets: equal slots, a random place in each slot leaving min_gap_s between neighbours
    slot = usable / max(n_events, 1)
    onsets = [lead_in_s + k * slot + rng.uniform(0, max(0.0, slot - min_gap_s)) for k in range(n_events)]
    names = sorted(events_by_label)
    pools = {l: list(rng.permutation(len(v))) for l, v in events_by_label.items()}
    fade = int(EDGE_FADE_S * SAMPLE_RATE)
    annotations = []
    for k, onset_s in enumerate(onsets):
        label = names[k % len(names)]
        if not pools[label]:
            pools[label] = list(rng.permutation(len(events_by_label[label])))
        clip = events_by_label[label][pools[label].pop()]
        seg, on, off = _event_segment(clip, pad_s, seed, isolate)
        start = int(round((onset_s - on) * SAMPLE_RATE))
        seg = seg[: max(0, n - start)].astype(np.float32).copy()
        if len(seg) <= 2 * fade:
            continue
        seg[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)
        seg[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        under = audio[start : start + len(seg)]
        if ebr_db is not None:
            a, b = int(on * SAMPLE_RATE), max(int(on * SAMPLE_RATE) + 1, int(off * SAMPLE_RATE))
            seg *= np.float32(10 ** (ebr_db / 20) * _rms(under[a:b]) / _rms(seg[a:b]))
        # never clip (a 16-bit file would), and never rescale the whole stream either: the
        # background must keep the level the model was trained at. A loud impulse gets less EBR.
        headroom = (PEAK - float(np.abs(under).max())) / (float(np.abs(seg).max()) + 1e-12)
        if ebr_db is not None and ebr_db + 20 * np.log10(max(headroom, 1e-12)) < MIN_EVENT_EBR_DB:
            continue  # inaudible once it fits: left out, annotation and all
        if headroom < 1.0:
            seg *= np.float32(headroom)
        audio[start : start + len(seg)] += seg
        annotations.append(
            Annotation(
                round(start / SAMPLE_RATE + on, 4),
                round(min(start / SAMPLE_RATE + off, duration_s), 4),
                label,
            )
        )
    return audio.astype(np.float32), sorted(annotations, key=lambda a: a.onset_s)


def write_stream(out_wav: str | os.PathLike, audio: np.ndarray, annotations) -> Path:
    """Write the stream as 16-bit audio and its annotations beside it as ``<stem>.csv``;
    returns the CSV path. Both or neither: a failure (a full disk) leaves an older pair as it
    was, never new audio beside the old stream's annotations."""
    out_wav = Path(out_wav)
    csv_path = out_wav.with_suffix(".csv")
    with atomic_path(csv_path) as tmp_csv:  # renamed into place once the audio is
        write_annotations(tmp_csv, annotations)
        write_audio(out_wav, audio)
    return csv_path
