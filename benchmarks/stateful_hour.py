"""Is the stateful detector stable over hours? One long labelled stream of a split's recordings
(edge_sed.data.mixer, the same settings as `edge-sed data mix`: EBR -6/0/+6 dB, beds -40..-25 dBFS,
8 events a minute), written to disk and run through the real console script
`edge-sed listen --bundle B --file LONG --json --log L` (the state is never reset), then scored
by 10-minute segment: event F1 (detection rule: a decision from onset - 0.5 s to offset + 0.5 s)
and false alarms per hour of the first and last segments side by side, and of every segment.

    .venv/bin/python benchmarks/stateful_hour.py --bundle BUNDLE --data DATASET [--split test]
        [--seed 0] [--minutes 60] [--segment-min 10] [--work DIR] [--json]

The stream is mixed in 60 s pieces (each from the mixer with its own seed) joined back to back,
so events never straddle a join and the whole hour is never held in memory twice.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_sed.core.events import Annotation, Event, event_metrics, write_annotations  # noqa: E402
from edge_sed.data.mixer import Banks, evaluation_streams, split_clips  # noqa: E402
from edge_sed.core.settings import SAMPLE_RATE  # noqa: E402

PIECE_S = 60.0


def build_stream(data, split, seed, minutes, wav: Path) -> list[Annotation]:
    banks = Banks(split_clips(data, seed)[split])
    annotations = []
    with sf.SoundFile(wav, "w", SAMPLE_RATE, 1, subtype="PCM_16") as f:
        for k in range(int(round(minutes * 60 / PIECE_S))):
            ((audio, ann, _),) = evaluation_streams(banks, seed * 100_000 + k, 1, PIECE_S)
            f.write(np.clip(audio, -1, 1))
            annotations += [
                Annotation(a.onset_s + k * PIECE_S, a.offset_s + k * PIECE_S, a.label, a.ebr_db, a.bed_dbfs)
                for a in ann
            ]
    write_annotations(wav.with_suffix(".csv"), annotations)
    return annotations


def segment_metrics(refs, events, start_s, end_s, labels):
    r = [a for a in refs if start_s <= a.onset_s < end_s]
    e = [ev for ev in events if start_s <= ev.t_s < end_s]
    m = event_metrics(r, e, end_s - start_s, collar_s=0.5, delay_s=None, labels=labels)
    return {
        "start_min": start_s / 60,
        "events": len(r),
        "detections": len(e),
        "f1": m["f1"],
        "recall": m["recall"],
        "false_alarms_per_hour": m["false_alarms_per_hour"],
        "per_class_f1": {l: c["f1"] for l, c in m["per_class"].items()},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--segment-min", type=float, default=10.0)
    ap.add_argument("--work")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="edge-sed-hour-"))
    work.mkdir(parents=True, exist_ok=True)
    wav = work / f"hour-{args.split}-seed{args.seed}-{args.minutes:g}min.wav"
    if wav.exists() and wav.with_suffix(".csv").exists():
        from edge_sed.core.events import read_annotations

        refs = read_annotations(wav.with_suffix(".csv"))
    else:
        refs = build_stream(args.data, args.split, args.seed, args.minutes, wav)
    log = work / "events.jsonl"
    log.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_sed.cli",
            "listen",
            "--bundle",
            args.bundle,
            "--file",
            str(wav),
            "--json",
            "--log",
            str(log),
        ],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(
            proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "listen failed", file=sys.stderr
        )
        return 1
    summary = json.loads(proc.stdout)
    events = [
        Event(e["class"], e["score"], e["stream_s"], e.get("onset_s"))
        for e in map(json.loads, log.read_text().splitlines())
    ]
    labels = sorted({a.label for a in refs})
    seg_s = args.segment_min * 60
    total_s = args.minutes * 60
    segments = [
        segment_metrics(refs, events, s, min(s + seg_s, total_s), labels)
        for s in np.arange(0, total_s, seg_s)
    ]
    result = {
        "bundle": args.bundle,
        "stream": str(wav),
        "minutes": args.minutes,
        "events": len(refs),
        "detections": len(events),
        "wall_s": round(wall, 1),
        "real_time_factor": round(total_s / wall, 1),
        "listen": {
            k: summary.get(k) for k in ("events", "decisions", "dropped_blocks", "overflows", "hop_ms")
        },
        "first": segments[0],
        "last": segments[-1],
        "segments": segments,
        "whole": segment_metrics(refs, events, 0, total_s, labels),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{args.minutes:g} min stream ({len(refs)} events) of the {args.split} split "
        "through `edge-sed listen --file` "
        f"({wall:.0f} s wall, {total_s / wall:.0f}x real time): state never reset"
    )
    print(f"{'segment':<14}{'events':>7}{'F1':>7}{'recall':>8}{'FA/h':>8}  per class F1")
    for s in segments:
        print(
            f"{s['start_min']:>5.0f}-{s['start_min'] + args.segment_min:<5.0f} min"
            f"{s['events']:>7}{s['f1']:>7.3f}"
            f"{s['recall']:>8.3f}{s['false_alarms_per_hour']:>8.1f}  "
            + ", ".join(f"{k} {v:.2f}" for k, v in s["per_class_f1"].items())
        )
    w = result["whole"]
    print(
        f"{'whole':<14}{w['events']:>7}{w['f1']:>7.3f}{w['recall']:>8.3f}{w['false_alarms_per_hour']:>8.1f}"
    )
    print(
        f"first vs last {args.segment_min:g} min: F1 {segments[0]['f1']:.3f} vs {segments[-1]['f1']:.3f}, "
        f"false alarms/h {segments[0]['false_alarms_per_hour']:.1f} vs "
        f"{segments[-1]['false_alarms_per_hour']:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
