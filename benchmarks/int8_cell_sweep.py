"""Choose the int8 cell-state calibration percentile on validation streams (never test): each
stateful run converted to int8 with its fed-back cell state c clipped at each percentile of |c|
(100 = min/max, the converter's old behaviour), and each bundle scored by `edge-sed evaluate`'s
rules on validation streams of that run's own validation groups (`data mix --split val`).
Prints event F1 (DCASE), detection F1 and false alarms per hour, mean ± sd over runs, and the
int16x8 bundle of the same runs beside them when --int16x8 is given.

    .venv/bin/python benchmarks/int8_cell_sweep.py --data ../shared/datasets/real-dev --work out/sweep \\
        out/rd/runs/s0 out/rd/runs/s1 ... [--percentiles 95,99,99.9,100] [--streams 12] [--split val] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _ms(values, digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--percentiles", default="95,99,99.9,100")
    ap.add_argument("--streams", type=int, default=12)
    ap.add_argument(
        "--split",
        choices=["val", "test"],
        default="val",
        help="whose groups the streams are made of: choose on val; test is for information only",
    )
    ap.add_argument("--int16x8", action="store_true", help="also the int16x8 bundle (min/max) of each run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import convert.stateful as cs
    from convert.bundles import convert_run
    from edge_sed.eval.evaluate import evaluate

    percentiles = [float(p) for p in args.percentiles.split(",")]
    results: dict[str, list[dict]] = {}
    for run in args.runs:
        seed = json.loads((run / "config.json").read_text())["seed"]
        streams = args.work / f"streams-{args.split}" / f"s{seed}"
        if not (streams / f"mix-{args.streams - 1:03d}.csv").exists():
            subprocess.run(
                [
                    str(ROOT / ".venv/bin/edge-sed"),
                    "data",
                    "mix",
                    args.data,
                    "--split",
                    args.split,
                    "--seed",
                    str(seed),
                    "--streams",
                    str(args.streams),
                    "--seconds",
                    "60",
                    "--out",
                    str(streams),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        variants = [(f"int8 p{p:g}", "int8", None if p >= 100 else p) for p in percentiles]
        if args.int16x8:
            variants.append(("int16x8", "int16x8", None))
        for name, level, p in variants:
            out = args.work / name.replace(" ", "-") / run.name  # the bundle does not depend on --split
            if not (out / level / "manifest.json").exists():
                cs.INT8_CELL_PERCENTILE = p
                convert_run(run, out, [level])
            r = evaluate(out / level, [streams])
            results.setdefault(name, []).append(
                {
                    "run": str(run),
                    "seed": seed,
                    "event_f1": r["event"]["f1"],
                    "detection_f1": r["detection"]["f1"],
                    "false_alarms_per_hour": r["detection"]["false_alarms_per_hour"],
                }
            )
            print(
                f"{run} {name}: event F1 {r['event']['f1']:.3f}, detection F1 {r['detection']['f1']:.3f}",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{args.split} streams: {args.streams} x 60 s per run, {len(args.runs)} runs")
    print("| calibration | event F1 | detection F1 | false alarms/h |\n|---|---|---|---|")
    for name, rows in results.items():
        print(
            f"| {name} | {_ms([r['event_f1'] for r in rows])} | {_ms([r['detection_f1'] for r in rows])} | "
            f"{_ms([r['false_alarms_per_hour'] for r in rows], 0)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
