"""Accuracy against device cost, so a user can pick a point for their chip (issue 15): for each
stateful training run, convert it (int8 and int16x8; skipped when the bundles exist), simulate its
int8 bundle on an MCU profile over one stream (duty cycle, cycles per 10 ms frame, model and arena
size), and put that beside the run's validation and test event F1 (the training run's own
metric: each run's validation-calibrated thresholds on its 12 validation / test streams). Writes
a table (Markdown and JSON) and a PNG of event F1 against duty cycle.

    .venv/bin/python benchmarks/accuracy_vs_cycles.py --stream STREAM.wav --out OUT RUN_DIR [RUN_DIR ...]
        [--profile cortex-m4-80mhz] [--label NAME=RUN_DIR ...]

Runs of several seeds of one variant (directories ending -s0, -s1, ...) are pooled as mean over
seeds. The int16x8 bundle is not costed (the project's C kernels count int8 only): its cycles are
taken to be the int8 graph's, which the table says.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EDGE_SED = [sys.executable, "-m", "edge_sed.cli"]


def simulate(bundle: Path, stream: str, profile: str, out: Path) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [
            *EDGE_SED,
            "simulate",
            str(bundle),
            "--profile",
            profile,
            "--stream",
            stream,
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if r.returncode:
        raise SystemExit(f"simulate {bundle}: {r.stderr.strip().splitlines()[-1]}")
    return json.loads(out.read_text())["records"][0]


def variant_of(run: Path) -> str:
    return re.sub(r"-s\d+$", "", run.name)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--stream", required=True, help="a .wav/.flac with its <stem>.csv, for simulate")
    ap.add_argument("--profile", default="cortex-m4-80mhz")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    rows = {}
    for run in args.runs:
        m = json.loads((run / "metrics.json").read_text())
        cfg = json.loads((run / "config.json").read_text())
        bundles = args.out / "bundles" / run.name
        if not (bundles / "convert-report.json").exists():
            r = subprocess.run(
                [*EDGE_SED, "convert", str(run), "--levels", "int8,int16x8", "--out", str(bundles)],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if r.returncode:
                raise SystemExit(f"convert {run}: {r.stderr.strip().splitlines()[-1]}")
        rec = simulate(bundles / "int8", args.stream, args.profile, args.out / "sim" / f"{run.name}.json")
        cost, clock, mem = rec["cost"], rec["clock"], rec["memory"]
        rows.setdefault(variant_of(run), []).append(
            {
                "run": str(run),
                "seed": cfg["seed"],
                "val_f1": m["val_stream"]["f1"],
                "test_f1": m["test_stream"]["f1"],
                "test_fa_per_hour": m["test_stream"]["false_alarms_per_hour"],
                "parameters": m["parameters"],
                "hidden": cfg["hidden"],
                "context_frames": cfg["context_frames"],
                "conv_channels": cfg["conv_channels"],
                "frame_stride": cfg["frame_stride"],
                "duty_cycle": clock["duty_cycle"],
                "cycles_per_frame": cost["cycles_per_audio_s"] / 100.0,
                "frontend_cycles_per_frame": cost["frontend_cycles_per_frame"],
                "model_bytes": mem["flash"]["model"],
                "arena_bytes": mem["arena"]["arena_min_bytes"],
            }
        )
    table = []
    for name, rs in rows.items():
        mean = lambda k: float(np.mean([r[k] for r in rs]))  # noqa: E731
        sd = lambda k: float(np.std([r[k] for r in rs], ddof=1)) if len(rs) > 1 else 0.0  # noqa: E731
        table.append(
            {
                "variant": name,
                "seeds": sorted(r["seed"] for r in rs),
                "val_f1": mean("val_f1"),
                "val_f1_sd": sd("val_f1"),
                "test_f1": mean("test_f1"),
                "test_f1_sd": sd("test_f1"),
                "test_fa_per_hour": mean("test_fa_per_hour"),
                "duty_cycle": mean("duty_cycle"),
                "cycles_per_frame": mean("cycles_per_frame"),
                "frontend_cycles_per_frame": mean("frontend_cycles_per_frame"),
                "parameters": rs[0]["parameters"],
                "model_bytes": rs[0]["model_bytes"],
                "arena_bytes": rs[0]["arena_bytes"],
                "model": f"conv {rs[0]['context_frames']}x{rs[0]['conv_channels']}, LSTM {rs[0]['hidden']}, "
                f"a step every {rs[0]['frame_stride']} frames",
                "runs": rs,
            }
        )
    table.sort(key=lambda r: r["duty_cycle"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_vs_cycles.json").write_text(
        json.dumps({"profile": args.profile, "stream": args.stream, "variants": table}, indent=2)
    )
    lines = [
        f"| variant | model | seeds | val event F1 | test event F1 | test FA/h | {args.profile} duty | "
        "cycles / 10 ms frame (front end) | model KB | arena KB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    kb = lambda b: "-" if b is None else f"{b / 1024:.1f}"  # noqa: E731
    for r in table:
        lines.append(
            f"| {r['variant']} | {r['model']} | {len(r['seeds'])} | "
            f"{r['val_f1']:.3f} ± {r['val_f1_sd']:.3f} | "
            f"{r['test_f1']:.3f} ± {r['test_f1_sd']:.3f} | {r['test_fa_per_hour']:.0f} | "
            f"{100 * r['duty_cycle']:.1f} % | {r['cycles_per_frame'] / 1000:.0f} k "
            f"({r['frontend_cycles_per_frame'] / 1000:.0f} k) | {kb(r['model_bytes'])} | "
            f"{kb(r['arena_bytes'])} |"
        )
    md = "\n".join(lines) + "\n"
    (args.out / "accuracy_vs_cycles.md").write_text(md)
    print(md)
    from edge_sed.report.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in table:
        ax.errorbar(100 * r["duty_cycle"], r["val_f1"], yerr=r["val_f1_sd"], fmt="o", capsize=3)
        ax.annotate(
            r["variant"],
            (100 * r["duty_cycle"], r["val_f1"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    ax.axvline(10, ls="--", c="grey", lw=0.8)
    ax.set_xlabel(f"{args.profile} duty cycle, int8 (%)")
    ax.set_ylabel("validation event F1 (mean over seeds)")
    ax.set_title("Streaming detector: accuracy against device cost")
    fig.tight_layout()
    fig.savefig(args.out / "accuracy_vs_cycles.png", dpi=120)
    print(f"-> {args.out}/accuracy_vs_cycles.md, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
