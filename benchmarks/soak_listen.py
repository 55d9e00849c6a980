"""Soak test of `edge-sed listen --file`: an hour (or more) of audio as fast as the loop goes, memory
sampled all along, and the same audio cut into pieces to check the long run finds the same events.

1. Builds ``--pieces`` labelled streams of ``hours * 3600 / pieces`` seconds each from ``--data``
   (edge_sed.data.streams.make_stream, one seed per piece, written as 16-bit WAV like `edge-sed data
   stream`) and their concatenation, the long file (written piece by piece, never held whole).
2. Runs the real console script, `edge-sed listen --bundle B --file LONG --json --log L`, in a
   subprocess and samples its resident memory (VmRSS from /proc) every ``--interval`` seconds.
3. Runs the same command on every piece and shifts its events by the piece's offset.
4. Prints: audio hours, wall time, real-time factor, RSS at start (once the first ``--warmup-s``
   of wall time are over), peak and at the end, the growth after warm-up, dropped blocks, and the
   event comparison. Events within ``--cut-margin-s`` after a cut may differ (the long run has
   the previous piece's audio in its window and smoother; a piece starts cold); everywhere else
   they must be identical. Exits 1 if they are not, or if RSS grew by more than ``--max-growth-mb``.

    .venv/bin/python benchmarks/soak_listen.py --bundle BUNDLE --data DATASET [--hours 1] [--pieces 10]
        [--work DIR] [--keep] [--json] [-- extra listen options, e.g. --threshold 0.5]

`listen --file` reads a file block by block (edge_sed.core.audio_io.iter_audio_blocks): there is no
queue between a file and the loop, so "no queue growth" shows as dropped_blocks = overflows = 0
and flat memory; the microphone's callback queue is bounded (edge_sed.listen.sources.QUEUE_S) and its
drops are counted - tests/test_listen.py covers that.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_sed.core.settings import SAMPLE_RATE  # noqa: E402
from edge_sed.data.streams import make_stream  # noqa: E402

EDGE_SED = str(Path(sys.executable).with_name("edge-sed"))


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def run_listen(bundle: Path, path: Path, extra: list[str], interval_s: float, log: Path | None = None):
    """(summary, [(wall s, RSS kB)], wall s) of `edge-sed listen --file path --json`."""
    args = [EDGE_SED, "listen", "--bundle", str(bundle), "--file", str(path), "--json", *extra]
    if log:
        args += ["--log", str(log)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        samples = []
        while p.poll() is None:
            rss = rss_kb(p.pid)
            if rss:
                samples.append((time.monotonic() - t0, rss))
            time.sleep(interval_s)
        wall = time.monotonic() - t0
        out.seek(0), err.seek(0)
        if p.returncode != 0:
            sys.exit(f"listen failed ({p.returncode}): {err.read().strip()}")
        return json.loads(out.read()), samples, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True, type=Path, help="A bundle directory.")
    ap.add_argument("--data", required=True, help="Data set or split CSV the streams are built from.")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--pieces", type=int, default=10)
    ap.add_argument("--events-per-minute", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--interval", type=float, default=1.0, help="RSS sampling period (s).")
    ap.add_argument("--warmup-s", type=float, default=10.0, help="Wall seconds before the 'start' RSS.")
    ap.add_argument(
        "--cut-margin-s",
        type=float,
        default=4.0,
        help="Events this soon after a cut may differ (model window + average + suppression).",
    )
    ap.add_argument("--max-growth-mb", type=float, default=16.0)
    ap.add_argument("--work", type=Path, help="Where the audio goes (default: a temporary folder).")
    ap.add_argument("--keep", action="store_true", help="Keep the audio and logs.")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("listen_args", nargs="*", help="Extra `edge-sed listen` options (after --).")
    a = ap.parse_args(argv)

    work = a.work or Path(tempfile.mkdtemp(prefix="soak-"))
    work.mkdir(parents=True, exist_ok=True)
    piece_s = a.hours * 3600 / a.pieces
    long_path = work / "long.wav"
    pieces = []
    t0 = time.monotonic()
    with sf.SoundFile(long_path, "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16") as long_file:
        for k in range(a.pieces):
            audio, _ = make_stream(
                a.data, piece_s, max(1, int(a.events_per_minute * piece_s / 60)), seed=a.seed * 1000 + k
            )
            audio = np.clip(audio, -1.0, 1.0)  # what `edge-sed data stream` writes; same in both runs
            path = work / f"piece{k:02d}.wav"
            sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
            long_file.write(audio)
            pieces.append(path)
            print(f"piece {k + 1}/{a.pieces}: {piece_s:.0f} s", file=sys.stderr, flush=True)
    build_s = time.monotonic() - t0

    summary, samples, wall = run_listen(
        a.bundle, long_path, a.listen_args, a.interval, log=work / "long.jsonl"
    )
    logged = [json.loads(l) for l in (work / "long.jsonl").read_text().splitlines()]
    settled = [rss for t, rss in samples if t >= a.warmup_s] or [rss for _, rss in samples]
    whole = [(e["class"], round(e["stream_s"], 3)) for e in summary["detected"]]

    cut_events, piece_wall = [], 0.0
    for k, path in enumerate(pieces):
        s, _, w = run_listen(a.bundle, path, a.listen_args, a.interval)
        piece_wall += w
        cut_events += [(e["class"], round(e["stream_s"] + k * piece_s, 3)) for e in s["detected"]]
    cuts = [k * piece_s for k in range(1, a.pieces)]

    def near(t):
        return any(0 <= t - c < a.cut_margin_s for c in cuts)

    away_whole = [e for e in whole if not near(e[1])]
    away_cut = [e for e in cut_events if not near(e[1])]
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}".replace("  ", " "),
        "bundle": str(a.bundle),
        "data": a.data,
        "listen_args": a.listen_args,
        "command": f"edge-sed listen --bundle {a.bundle} --file {long_path} "
        f"--json --log {work / 'long.jsonl'} " + " ".join(a.listen_args),
        "audio_hours": round(summary["audio_s"] / 3600, 4),
        "wall_s": round(wall, 1),
        "real_time_factor": round(summary["audio_s"] / wall, 1),
        "rss_mb_start": round(settled[0] / 1024, 1),
        "rss_mb_peak": round(max(settled) / 1024, 1),
        "rss_mb_end": round(settled[-1] / 1024, 1),
        "rss_growth_mb_after_warmup": round((max(settled) - settled[0]) / 1024, 1),
        "rss_samples": len(samples),
        "decisions": summary["decisions"],
        "dropped_blocks": summary["dropped_blocks"],
        "overflows": summary["overflows"],
        "stopped_by": summary["stopped_by"],
        "events": summary["events"],
        "events_by_class": summary["events_by_class"],
        "events_in_log": len(logged),
        "pieces": a.pieces,
        "piece_s": piece_s,
        "pieces_wall_s": round(piece_wall, 1),
        "events_pieces": len(cut_events),
        "events_away_from_cuts_whole": len(away_whole),
        "events_away_from_cuts_pieces": len(away_cut),
        "events_away_from_cuts_identical": away_whole == away_cut,
        "events_near_cuts_whole": len(whole) - len(away_whole),
        "events_near_cuts_pieces": len(cut_events) - len(away_cut),
        "build_audio_s": round(build_s, 1),
    }
    ok = (
        result["events_away_from_cuts_identical"]
        and result["rss_growth_mb_after_warmup"] <= a.max_growth_mb
        and len(logged) == summary["events"]
        and summary["dropped_blocks"] == 0
    )
    result["ok"] = ok
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['audio_hours']:.2f} h of audio in {result['wall_s']:.0f} s wall "
            f"({result['real_time_factor']:.0f}x "
            f"real time) on {result['machine']}"
        )
        print(
            f"RSS: {result['rss_mb_start']} MB after {a.warmup_s:g} s, peak {result['rss_mb_peak']} MB, "
            f"end {result['rss_mb_end']} MB (growth {result['rss_growth_mb_after_warmup']} MB, "
            f"{len(samples)} samples every {a.interval:g} s)"
        )
        print(
            f"{result['decisions']} decisions, {result['events']} events "
            f"({result['events_in_log']} in the log), "
            f"dropped blocks {result['dropped_blocks']}, overflows {result['overflows']}"
        )
        print(
            f"{a.pieces} pieces of {piece_s:.0f} s: {result['events_pieces']} events; away from the cuts "
            f"{result['events_away_from_cuts_whole']} vs {result['events_away_from_cuts_pieces']}, "
            "identical: "
            f"{result['events_away_from_cuts_identical']}; within {a.cut_margin_s:g} s after a cut "
            f"{result['events_near_cuts_whole']} vs {result['events_near_cuts_pieces']}"
        )
        print("OK" if ok else "FAILED")
    if not a.keep and not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
