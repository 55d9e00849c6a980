"""Tabulate `benchmarks/stateful_seeds.sh`'s evaluations: mean ± sd over seeds, per level, of
event F1 (DCASE, 0.5 s onset collar), detection F1, false alarms per hour, median onset->event
latency, per-class detection F1, and detection recall by EBR and by bed level (pooled).

    .venv/bin/python benchmarks/stateful_seeds.py WORK [--json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def _ms(values):
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    work = Path(argv[0])
    out = {}
    for path in sorted(work.glob("eval-s*-*.json")):
        if not path.stat().st_size:
            continue
        seed, level = path.stem.split("-")[1], path.stem.split("-", 2)[2]
        out.setdefault(level, {})[seed] = json.loads(path.read_text())
    if "--json" in argv:
        print(json.dumps(out, indent=2))
        return 0
    for level, runs in out.items():
        rs = list(runs.values())
        minutes = sum(r["seconds"] for r in rs) / 60
        print(
            f"== {level}: seeds {', '.join(sorted(runs))}; {minutes:.0f} min of test streams, "
            f"{sum(r['reference_events'] for r in rs)} events in all"
        )
        for key, fmt in (
            ("event F1", lambda r: r["event"]["f1"]),
            ("event error rate", lambda r: r["event"]["error_rate"]),
            ("detection F1", lambda r: r["detection"]["f1"]),
            ("false alarms/h", lambda r: r["detection"]["false_alarms_per_hour"]),
            ("median latency s", lambda r: r["detection"]["latency_median_s"]),
        ):
            print(f"  {key:<18} {_ms([fmt(r) for r in rs])}")
        for label in rs[0]["detection"]["per_class"]:
            print(
                f"  det. F1 {label:<10} {_ms([r['detection']['per_class'][label]['f1'] for r in rs])}   "
                f"event F1 {_ms([r['event']['per_class'][label]['f1'] for r in rs])}   "
                f"FA/h {_ms([r['detection']['per_class'][label]['false_alarms_per_hour'] for r in rs])}"
            )
        for key in ("ebr_db", "bed_dbfs"):
            pooled = {}
            for r in rs:
                for k, v in r["detection"].get("recall_by", {}).get(key, {}).items():
                    p = pooled.setdefault(k, [0, 0])
                    p[0] += v["tp"]
                    p[1] += v["reference"]
            big = {k: v for k, v in pooled.items() if v[1] >= 10}
            print(
                f"  detection recall by {key}: "
                + ", ".join(f"{k} {t / n:.2f} ({t}/{n})" for k, (t, n) in big.items())
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
