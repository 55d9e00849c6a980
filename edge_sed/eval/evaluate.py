"""``edge-sed evaluate``: a bundle through the device loop over labelled streams, scored by
events. The loop is the one ``listen`` runs (edge_sed.core.loop.Detector: front end -> model ->
smoother, the bundle's calibrated smoother by default), fed the file in 10 ms blocks.

Metrics (edge_sed.core.events.event_metrics), pooled over all streams:
- **event** (DCASE 2017 task 2 event-based, onset only, 0.5 s collar): the decision time is
  the estimated onset, so a detection counts when it is within 0.5 s of the reference onset;
  F1 and error rate (S + D + I) / N;
- **detection**: a decision any time from onset - 0.5 s to offset + 0.5 s counts (the device
  told you while the sound lasted);
- false alarms per hour (detections matching no reference, detection rule), onset->event
  latency (median, p95), per class; recall by event-to-background ratio and by bed level where
  the annotations carry them (``edge-sed data mix`` writes both).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_sed.core.audio_io import _kind, read_audio
from edge_sed.core.errors import AudioError, DatasetError
from edge_sed.core.events import Annotation, Event, event_metrics, read_annotations

STREAM_SUFFIXES = (".wav", ".flac")
BLOCK_S = 0.01
STREAM_GAP_S = 60.0  # evaluate's streams are scored laid end to end this far apart


def find_streams(paths) -> list[tuple[Path, Path]]:
    """(audio, annotations) pairs: each path is a .wav/.flac with ``<stem>.csv`` beside it, or a
    folder of them (sorted). DatasetError naming what is missing."""
    pairs = []
    for p in map(Path, paths):
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in STREAM_SUFFIXES) if p.is_dir() else [p]
        if p.is_dir() and not files:
            raise DatasetError(f"{p}: no .wav/.flac streams in this folder")
        for f in files:
            if not f.exists():
                raise DatasetError(f"{f}: no such stream file")
            if not f.is_file():  # /dev/zero, a pipe, a socket: read whole, a stream must be a file
                raise AudioError(f"{f}: not a regular file: {_kind(f.stat().st_mode)}")
            csv = f.with_suffix(".csv")
            if not csv.is_file():
                raise DatasetError(f"{f}: no annotations beside it ({csv.name}: onset_s,offset_s,label)")
            pairs.append((f, csv))
    if not pairs:
        raise DatasetError("no streams given")
    return pairs


def run_stream(detector, audio: np.ndarray, keep: list | None = None) -> tuple[list[Event], int]:
    """Events of one stream through a fresh detector state; also the number of decisions
    (appended to ``keep`` when given)."""
    detector.reset()
    block = int(round(BLOCK_S * detector.bundle.frontend.sample_rate))
    events, decisions = [], 0
    for i in range(0, len(audio), block):
        for d in detector.push(audio[i : i + block]):
            decisions += 1
            if keep is not None:
                keep.append(d)
            if d.event is not None:
                events.append(d.event)
    return events, decisions


def evaluate(
    bundle_path,
    streams,
    smoother_overrides: dict | None = None,
    hop_frames: int | None = None,
    progress=None,
    runtime: str = "litert",
    backend_for=None,
) -> dict:
    """The report of ``edge-sed evaluate`` (module doc) for a bundle over stream files/folders.
    ``backend_for(bundle)``, if given, returns the model backend to run instead of LiteRT (the
    CLI's ``--runtime tflm`` passes firmware_sim.tflm.bundle_backend: the MCU's kernels)."""
    from edge_sed.core.bundle import load_bundle

    bundle = load_bundle(bundle_path)
    pairs = find_streams(streams)
    detector = _detector(bundle, smoother_overrides, hop_frames, runtime, backend_for)
    refs, dets, per_stream, total = _run_streams(bundle, detector, pairs, progress)
    labels = _event_labels(bundle)
    event = event_metrics(refs, dets, total, collar_s=0.5, delay_s=0.0, labels=labels)
    detection = event_metrics(refs, dets, total, collar_s=0.5, delay_s=None, labels=labels)
    sm = detector.smoother
    return {
        "bundle": str(bundle.path),
        "level": bundle.level,
        "form": bundle.form,
        "runtime": runtime,
        "streams": len(pairs),
        "seconds": total,
        "reference_events": len(refs),
        "detections": len(dets),
        "smoother": {
            "average_window_ms": sm.average_window_s * 1000,
            "minimum_count": sm.minimum_count,
            "suppression_ms": sm.suppression_s * 1000,
            "thresholds": sm.thresholds,
        },
        "hop_frames": detector.hop_frames,
        "event": _strip(event),
        "detection": _strip(detection),
        "per_stream": per_stream,
    }


def _detector(bundle, smoother_overrides, hop_frames, runtime: str, backend_for):
    """The device loop for the bundle; settings that could never fire an event (e.g. --min-count
    1000) are refused, as by listen."""
    from edge_sed.core.loop import Detector, bundle_smoother

    smoother = bundle_smoother(bundle, **(smoother_overrides or {}))
    if (runtime == "litert") != (backend_for is None):
        raise ValueError("runtime names the backend backend_for gives: 'litert' exactly when there is none")
    backend = backend_for(bundle) if backend_for is not None else None
    detector = Detector(bundle, hop_frames=hop_frames, smoother=smoother, backend=backend)
    fe = bundle.frontend
    smoother.check_hop(detector.hop_frames * fe.hop_samples / fe.sample_rate)
    return detector


def _run_streams(bundle, detector, pairs, progress):
    """Every stream through the loop, laid end to end ``STREAM_GAP_S`` apart (no match window spans
    two): (references, detections, per-stream rows, seconds of audio)."""
    refs, dets, per_stream, offset, total = [], [], [], 0.0, 0.0
    for n, (wav, csv) in enumerate(pairs):
        audio = read_audio(wav)
        ann = read_annotations(csv)
        duration = len(audio) / bundle.frontend.sample_rate
        late = [a for a in ann if a.onset_s > duration]
        if late:
            raise DatasetError(
                f"{csv}: an event at {late[0].onset_s:g} s, after the end of {wav.name} ({duration:.1f} s)"
            )
        events, _ = run_stream(detector, audio)
        m = event_metrics(ann, events, duration, collar_s=0.5, delay_s=0.0, labels=_event_labels(bundle))
        per_stream.append(
            {
                "stream": str(wav),
                "seconds": round(duration, 2),
                "events": len(ann),
                "detections": len(events),
                "event_f1": m["f1"],
            }
        )
        refs += [
            Annotation(a.onset_s + offset, a.offset_s + offset, a.label, a.ebr_db, a.bed_dbfs) for a in ann
        ]
        dets += [e.shifted(offset) for e in events]
        offset += duration + STREAM_GAP_S
        total += duration
        if progress:
            progress(n + 1, len(pairs))
    return refs, dets, per_stream, total


def _event_labels(bundle) -> list[str]:
    from edge_sed.core.settings import BACKGROUND

    return [l for l in bundle.labels if l != BACKGROUND]


def _strip(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "latencies_s"}


def format_report(r: dict) -> str:
    """The table ``edge-sed evaluate`` prints."""
    e, d = r["event"], r["detection"]

    def lat(x):
        return "-" if x is None else f"{x:.2f}"

    lines = [
        f"{r['bundle']} ({r['level']} {r['form']}{', tflite-micro' if r.get('runtime') == 'tflm' else ''}): "
        f"{r['streams']} stream(s), {r['seconds'] / 60:.1f} min, "
        f"{r['reference_events']} events, {r['detections']} detections",
        f"{'class':<11}{'events':>7}{'event F1':>10}{'ER':>7}{'det. F1':>9}{'recall':>8}{'FA/h':>8}"
        f"{'latency p50':>13}",
    ]
    for label in e["per_class"]:
        ec, dc = e["per_class"][label], d["per_class"][label]
        lines.append(
            f"{label:<11}{ec['reference']:>7}{ec['f1']:>10.3f}{ec['error_rate']:>7.2f}{dc['f1']:>9.3f}"
            f"{dc['recall']:>8.3f}{dc['false_alarms_per_hour']:>8.1f}{lat(dc['latency_median_s']):>13}"
        )
    lines.append(
        f"{'overall':<11}{e['reference']:>7}{e['f1']:>10.3f}{e['error_rate']:>7.2f}{d['f1']:>9.3f}"
        f"{d['recall']:>8.3f}{d['false_alarms_per_hour']:>8.1f}{lat(d['latency_median_s']):>13}"
    )
    for key, title in (("ebr_db", "by EBR"), ("bed_dbfs", "by bed level")):
        rows = d.get("recall_by", {}).get(key)
        if rows:
            lines.append(
                f"detection recall {title}: "
                + ", ".join(f"{k} {v['tp']}/{v['reference']}" for k, v in rows.items())
            )
    k = d.get("false_alarm_kinds")
    if k:
        lines.append(
            f"false alarms: {k['background']} on background alone, {k['confusion']} during an event of "
            f"another class, {k['duplicate']} repeats within an event already found"
        )
    lines.append(
        "event: DCASE event-based, onset within 0.5 s of the decision; det.: a decision from onset-0.5 s "
        "to offset+0.5 s; FA/h and latency by the detection rule; latency in s from the reference onset"
    )
    return "\n".join(lines)
