"""The stream figures through `edge-sed listen --file` itself: every labelled stream of a folder
(`edge-sed data mix` output) goes through `listen --bundle B --file S --json --log L` as a user
would run it, the logged events are scored against the stream's annotations, and they are
compared one by one with what `edge-sed evaluate` (the same Detector, in-process) finds on the
same stream. Prints the pooled event F1 (DCASE, 0.5 s onset collar), detection F1, false alarms
per hour and median onset->event latency from listen's events, and whether both agree.

    .venv/bin/python benchmarks/listen_crosscheck.py BUNDLE STREAMS [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_sed.core.audio_io import read_audio  # noqa: E402
from edge_sed.core.bundle import load_bundle  # noqa: E402
from edge_sed.eval.evaluate import find_streams, run_stream  # noqa: E402
from edge_sed.core.events import Annotation, Event, event_metrics, read_annotations  # noqa: E402
from edge_sed.core.loop import Detector  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("streams")
    ap.add_argument("--limit", type=int, default=0, help="only the first N streams (0: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    bundle = load_bundle(args.bundle)
    labels = [l for l in bundle.labels if l != "background"]
    pairs = find_streams([args.streams])[: args.limit or None]
    refs, listened, mismatches, offset, total = [], [], [], 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="edge-sed-xcheck-") as tmp:
        for n, (wav, csv) in enumerate(pairs):
            log = Path(tmp) / f"{n}.jsonl"
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
            if proc.returncode != 0:
                print(f"{wav}: listen failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                return 1
            got = [
                Event(e["class"], e["score"], e["stream_s"], e.get("onset_s"))
                for e in map(json.loads, log.read_text().splitlines())
            ]
            audio = read_audio(wav)
            want, _ = run_stream(Detector(bundle), audio)
            same = len(got) == len(want) and all(
                a.label == b.label and abs(a.t_s - b.t_s) < 1e-3 for a, b in zip(got, want)
            )
            if not same:
                mismatches.append({"stream": str(wav), "listen": len(got), "evaluate": len(want)})
            duration = len(audio) / bundle.frontend.sample_rate
            refs += [
                Annotation(a.onset_s + offset, a.offset_s + offset, a.label, a.ebr_db, a.bed_dbfs)
                for a in read_annotations(csv)
            ]
            listened += [e.shifted(offset) for e in got]
            offset += duration + 60.0
            total += duration
    event = event_metrics(refs, listened, total, collar_s=0.5, delay_s=0.0, labels=labels)
    detection = event_metrics(refs, listened, total, collar_s=0.5, delay_s=None, labels=labels)
    result = {
        "bundle": args.bundle,
        "streams": len(pairs),
        "seconds": total,
        "events": len(refs),
        "detections": len(listened),
        "event_f1": event["f1"],
        "detection_f1": detection["f1"],
        "false_alarms_per_hour": detection["false_alarms_per_hour"],
        "latency_median_s": detection["latency_median_s"],
        "listen_equals_evaluate": not mismatches,
        "mismatches": mismatches,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{len(pairs)} streams, {total / 60:.0f} min, {len(refs)} events, "
            "through `edge-sed listen --file`: "
            f"event F1 {event['f1']:.3f}, detection F1 {detection['f1']:.3f}, "
            f"{detection['false_alarms_per_hour']:.0f} false alarms/h, median latency "
            f"""{
                detection["latency_median_s"]
                if detection["latency_median_s"] is not None
                else float("nan"):.2f}"""
            " s; "
            + (
                "every stream's events equal `edge-sed evaluate`'s"
                if not mismatches
                else f"{len(mismatches)} streams differ from `edge-sed evaluate`: {mismatches[:3]}"
            )
        )
    return 0 if not mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
