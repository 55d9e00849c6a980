"""Onset->event latency and CPU load of the listen loop on this host, windowed vs streaming.

For each bundle the labelled stream is played through the same loop as ``edge-sed listen
--file --realtime`` (edge_sed.listen: FileSource at real-time pace -> Detector -> smoother), so
the CPU share is the one a microphone would cost. An event's latency is

    onset->event = (decision stream time - reference onset) + decision latency on this host

where the first term is what the algorithm waits for (window, hop, smoothing) and the second the
time from the block's arrival to the decision (queue + front end + model + smoother). Matching:
edge_sed.core.events.event_metrics (onset collar 0.5 s, causal delay 1 s). Only matched events count.

    .venv/bin/python benchmarks/listen_latency.py --bundles DIR [--bundle-names int8,int16x8-streaming]
        [--stream S.wav | --data SPLIT.csv --duration 120 --events 20] [--hop-ms 250] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_sed.core.bundle import load_bundle  # noqa: E402
from edge_sed.core.events import Event, event_metrics, read_annotations  # noqa: E402
from edge_sed.listen.run import run_loop  # noqa: E402
from edge_sed.listen.sources import FileSource  # noqa: E402
from edge_sed.core.loop import Detector  # noqa: E402
from edge_sed.core.smoother import Smoother  # noqa: E402


def measure(bundle_dir: Path, stream: Path, annotations, hop_ms: float, realtime: bool, **smoother) -> dict:
    bundle = load_bundle(bundle_dir)
    hop_frames = max(1, int(round(hop_ms / bundle.frontend.hop_ms)))
    det = Detector(bundle, hop_frames=hop_frames, smoother=Smoother(bundle.labels, **smoother))
    summary = run_loop(det, FileSource(stream, realtime=realtime), [])
    detected = [Event(d["class"], d["score"], d["stream_s"], d.get("onset_s")) for d in summary["detected"]]
    host_ms = {round(d["stream_s"], 4): d["decision_latency_ms"] for d in summary["detected"]}
    m = event_metrics(annotations, detected, summary["audio_s"], labels=bundle.labels[:-1])
    # which detection matched which reference: recompute the pairs' total latency
    totals = []
    for ref in annotations:
        cands = [
            e for e in detected if e.label == ref.label and ref.onset_s - 0.5 <= e.t_s <= ref.onset_s + 1.5
        ]
        if cands:
            e = cands[0]
            totals.append(e.t_s - ref.onset_s + host_ms[round(e.t_s, 4)] / 1000)
    return {
        "bundle": str(bundle_dir),
        "form": bundle.form,
        "level": bundle.level,
        "hop_ms": hop_ms,
        "realtime": realtime,
        "audio_s": summary["audio_s"],
        "wall_s": summary["wall_s"],
        "events_reference": len(annotations),
        "events_detected": len(detected),
        "tp": m["tp"],
        "fp": m["fp"],
        "fn": m["fn"],
        "f1": round(m["f1"], 3),
        "onset_to_event_s_median": round(float(np.median(totals)), 3) if totals else None,
        "onset_to_event_s_p95": round(float(np.percentile(totals, 95)), 3) if totals else None,
        "decision_latency_ms_p50": summary["decision_latency_ms_p50"],
        "decision_latency_ms_p95": summary["decision_latency_ms_p95"],
        "inference_ms_p50": summary["inference_ms_p50"],
        "inference_ms_p99": summary["inference_ms_p99"],
        "inferences": summary["inferences"],
        "decisions": summary["decisions"],
        "cpu_percent_one_core": summary["cpu_percent_one_core"],
        "overflows": summary["overflows"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundles", type=Path, required=True, help="A convert output folder.")
    ap.add_argument(
        "--bundle-names",
        default="int8,int16x8-streaming",
        help="Comma list of bundle folders in --bundles (default: %(default)s).",
    )
    ap.add_argument(
        "--stream", type=Path, help="A stream WAV with <stem>.csv annotations (edge-sed data stream)."
    )
    ap.add_argument("--data", help="Or make one from this split CSV / data set.")
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--ebr-db", type=float, default=6.0)
    ap.add_argument("--bed-rms", type=float, help="Background level (default: the background clips' median).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hop-ms", type=float, default=250.0)
    ap.add_argument("--fast", action="store_true", help="As fast as possible (CPU % is then meaningless).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.stream:
        stream, annotations = args.stream, read_annotations(args.stream.with_suffix(".csv"))
    elif args.data:
        from edge_sed.data.streams import make_stream, write_stream

        audio, annotations = make_stream(
            args.data, args.duration, args.events, seed=args.seed, ebr_db=args.ebr_db, bed_rms=args.bed_rms
        )
        stream = Path(tempfile.mkdtemp(prefix="listen-bench-")) / "stream.wav"
        write_stream(stream, audio, annotations)
    else:
        ap.error("give --stream or --data")
    rows = [
        measure(args.bundles / name, stream, annotations, args.hop_ms, not args.fast)
        for name in args.bundle_names.split(",")
    ]
    report = {
        "host": (
            f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
        ),
        "stream": str(stream),
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"host: {report['host']}; stream {stream} ({rows[0]['audio_s']:.0f} s, {len(annotations)} events)")
    print(
        f"{'bundle':<22}{'F1':>6}{'tp/fp/fn':>10}{'onset->event s (median / p95)':>32}"
        f"{'decide ms p50':>15}{'infer ms p50/p99':>18}{'CPU % 1 core':>14}{'overflows':>11}"
    )
    for r in rows:
        counts = f"{r['tp']}/{r['fp']}/{r['fn']}"
        onset = f"{r['onset_to_event_s_median']} / {r['onset_to_event_s_p95']}"
        infer = f"{r['inference_ms_p50']}/{r['inference_ms_p99']}"
        print(
            f"{Path(r['bundle']).name:<22}{r['f1']:>6.2f}{counts:>10}{onset:>32}"
            f"{r['decision_latency_ms_p50']:>15}{infer:>18}{r['cpu_percent_one_core']:>14}{r['overflows']:>11}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
