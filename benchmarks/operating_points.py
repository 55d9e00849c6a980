"""What a bundle finds at fewer false alarms: its device loop runs once over labelled streams
(the decisions kept), then the bundle's own smoother replays those decisions at one threshold
for every class after another. Prints, per threshold, detection recall / precision / F1, DCASE
event F1 and false alarms per hour (the rules of `edge-sed evaluate`), the bundle's calibrated
thresholds first (its replay must equal the loop's own events); writes a PNG (0 false alarms
drawn at 0.5) of recall against false alarms per hour with --png.

    .venv/bin/python benchmarks/operating_points.py BUNDLE STREAMS... [--thresholds 0.5,0.7,0.9,0.95,0.99]
        [--png out/op.png] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_sed.core.audio_io import read_audio  # noqa: E402
from edge_sed.core.bundle import load_bundle  # noqa: E402
from edge_sed.eval.evaluate import _event_labels, find_streams, run_stream  # noqa: E402
from edge_sed.core.events import Annotation, event_metrics, read_annotations  # noqa: E402
from edge_sed.core.loop import Detector, bundle_smoother  # noqa: E402


def decisions(bundle, pairs):
    """[(times, scores, annotations, duration_s)] of every stream through the device loop."""
    det = Detector(bundle)
    out = []
    for wav, csv in pairs:
        audio, ds = read_audio(wav), []
        events, _ = run_stream(det, audio, keep=ds)
        # what the loop's smoother saw: a silent window's decisions are background
        out.append(
            (
                [d.t_s for d in ds],
                [det._silence_scores if d.silent else d.scores for d in ds],
                read_annotations(csv),
                len(audio) / bundle.frontend.sample_rate,
                events,
            )
        )
    return out


def score(bundle, streams, threshold) -> dict:
    """Replay the kept decisions through a fresh smoother (``threshold`` None: the bundle's)."""
    labels = _event_labels(bundle)
    refs, dets, offset, total = [], [], 0.0, 0.0
    for times, scores, ann, duration, loop_events in streams:
        sm = bundle_smoother(bundle, **({} if threshold is None else {"threshold": threshold}))
        replayed = [e for t, x in zip(times, scores) if (e := sm.update(t, x)) is not None]
        if threshold is None and replayed != loop_events:
            raise SystemExit("error: the replayed decisions do not give the device loop's events")
        dets += [e.shifted(offset) for e in replayed]
        refs += [
            Annotation(a.onset_s + offset, a.offset_s + offset, a.label, a.ebr_db, a.bed_dbfs) for a in ann
        ]
        offset += duration + 60.0
        total += duration
    event = event_metrics(refs, dets, total, collar_s=0.5, delay_s=0.0, labels=labels)
    detection = event_metrics(refs, dets, total, collar_s=0.5, delay_s=None, labels=labels)
    return {
        "threshold": threshold,
        "event_f1": event["f1"],
        "detection_f1": detection["f1"],
        "recall": detection["recall"],
        "precision": detection["precision"],
        "false_alarms_per_hour": detection["false_alarms_per_hour"],
        "hours": total / 3600.0,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("streams", nargs="+")
    ap.add_argument("--thresholds", default="0.5,0.6,0.7,0.8,0.9,0.95,0.98,0.99")
    ap.add_argument("--png", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    bundle = load_bundle(args.bundle)
    streams = decisions(bundle, find_streams(args.streams))
    rows = [score(bundle, streams, None)] + [
        score(bundle, streams, float(t)) for t in args.thresholds.split(",")
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{args.bundle}: {len(streams)} streams, {rows[0]['hours'] * 60:.0f} min")
        print(
            "| threshold | detection recall | precision | detection F1 | event F1 (DCASE) | false alarms/h |"
        )
        print("|---|---|---|---|---|---|")
        for r in rows:
            name = "calibrated" if r["threshold"] is None else f"{r['threshold']:g}"
            print(
                f"| {name} | {r['recall']:.3f} | {r['precision']:.3f} | {r['detection_f1']:.3f} | "
                f"{r['event_f1']:.3f} | {r['false_alarms_per_hour']:.1f} |"
            )
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        uni = rows[1:]
        ax.plot(
            [max(r["false_alarms_per_hour"], 0.5) for r in uni],
            [r["recall"] for r in uni],
            "o-",
            label="one threshold for every class",
        )
        for r in uni:
            ax.annotate(
                f"{r['threshold']:g}", (max(r["false_alarms_per_hour"], 0.5), r["recall"]), fontsize=7
            )
        ax.plot(
            [max(rows[0]["false_alarms_per_hour"], 0.5)],
            [rows[0]["recall"]],
            "s",
            label="calibrated (manifest)",
        )
        ax.axvline(2.0, color="grey", ls=":", label="goal: 2 false alarms/h")
        ax.set_xscale("log")
        ax.set_xlabel("false alarms per hour")
        ax.set_ylabel("detection recall")
        ax.set_title(f"{bundle.level}: {len(streams)} streams, {rows[0]['hours'] * 60:.0f} min")
        ax.legend(fontsize=8)
        args.png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.png, dpi=120, bbox_inches="tight")
    return 0


if __name__ == "__main__":
    sys.exit(main())
