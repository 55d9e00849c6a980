"""The report's second stage: from the collected records to summary rows and tables.

``summarise`` makes one row per (objective, level), mean ± sd over the model sets (seeds) of an
objective; ``training_comparison`` reads each run's metrics.json ``test`` (``test_stream`` of a
stateful run); ``report_tables`` turns a report into its tables as strings, from which the
Markdown and the HTML are both rendered, so they cannot disagree.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from edge_sed.core.errors import EdgeSedError
from edge_sed.core.settings import LABELS
from edge_sed.eval.stats import fmt_stat, mean_sd
from edge_sed.report.collect import LEVEL_ORDER

# ------------------------------------------------------------------ summary rows


def _summary_row(objective: str, name: str, sets: list, host: dict | None, first_objective: str) -> dict:
    """One (objective, level) row: mean ± sd over the sets of the objective that have the level."""
    lvs = [s["levels"].get(name) for s in sets]
    oks = [lv for lv in lvs if lv and lv["status"] == "ok"]
    row = {"objective": objective, "level": name, "sets": len(sets), "ok": len(oks)}
    if not oks:
        bad = next(lv for lv in lvs if lv)
        row.update(status=bad["status"], reason=bad["reason"])
        return row
    row["status"] = "ok"
    row["form"] = oks[0]["form"]
    row["overall_error"] = mean_sd([lv["clip"]["overall_error"] for lv in oks])
    row["macro_f1"] = mean_sd([lv["clip"]["macro_f1"] for lv in oks])
    row["per_class_error"] = {
        c: mean_sd([lv["clip"]["per_class_error"].get(c) for lv in oks])
        for c in oks[0]["clip"]["per_class_error"]
    }
    streams = [lv["stream"] for lv in oks if "f1" in lv.get("stream", {})]
    row["event_f1"] = mean_sd([st["f1"] for st in streams])
    row["onset_latency_s"] = mean_sd([st["latency_median_s"] for st in streams])
    row["false_alarms_per_hour"] = mean_sd([st["false_alarms_per_hour"] for st in streams])
    row["model_bytes"] = oks[0]["model_bytes"]
    row["arena_bytes"] = oks[0].get("arena_bytes")
    row["warnings"] = sorted({w for lv in oks for w in lv.get("warnings", [])})
    row["from"] = [f"{s['name']}/{name}" for s, lv in zip(sets, lvs) if lv and lv["status"] == "ok"]
    h = (host or {}).get("levels", {}).get(name, {})
    if h.get("status") == "ok" and objective == first_objective:  # the host measured the first set
        row["host"] = {
            k: h[k] for k in ("latency_ms", "latency_unit", "ms_per_s_audio", "duty_cycle", "ratio_to_fp32")
        }
    return row


def summarise(report: dict) -> list[dict]:
    """One row per (objective, level): mean ± sd over the model sets of that objective."""
    by_obj: dict[str, list] = {}
    for s in report["model_sets"]:
        by_obj.setdefault(s["objective"], []).append(s)
    host = next((d for d in report["devices"] if d["kind"] == "host"), None)
    first_objective = report["model_sets"][0]["objective"]
    rows = []
    for objective, sets in by_obj.items():
        names = [n for n in LEVEL_ORDER if any(n in s["levels"] for s in sets)]
        names += sorted({n for s in sets for n in s["levels"]} - set(names))
        rows += [_summary_row(objective, name, sets, host, first_objective) for name in names]
    return rows


def attach_accuracy(curve: dict, summary: list) -> dict:
    """Each size-curve point gets its variant's event F1 on the test streams, mean ± sd over its
    seeds (the headline table's figure), and the model size."""
    rows = {(r["objective"], r["level"]): r for r in summary if r["status"] == "ok"}
    for p in curve["points"]:
        r = rows.get((p["variant"], p["level"])) or {}
        p["event_f1"] = r.get("event_f1")
        p["false_alarms_per_hour"] = r.get("false_alarms_per_hour")
        p["model_bytes"] = r.get("model_bytes")
    return curve


# ------------------------------------------------------------------ training runs


def _stream_test(m: dict, path: Path) -> tuple[dict, dict]:
    """A stateful run's test-stream event metrics as the training comparison's figures (a stateful
    run has no clip-level test split): per-class error = 1 - event recall (missed / reference)."""
    classes = {c: v for c, v in m["test_stream"]["per_class"].items() if v["reference"]}
    per = {c: v["fn"] / v["reference"] for c, v in classes.items()}
    f1 = [v["f1"] for v in classes.values()]
    src = f"{path}#/test_stream/per_class"
    return (
        {
            "overall_error": float(np.mean(list(per.values()))) if per else None,
            "macro_f1": float(np.mean(f1)) if f1 else None,
            "per_class_error": per,
        },
        {"overall_error": src, "macro_f1": src, **{f"per_class_error.{c}": f"{src}/{c}" for c in per}},
    )


def _clip_test(m: dict, path: Path) -> tuple[dict, dict]:
    """A windowed run's clip-level test figures and their sources."""
    return m["test"], {
        "overall_error": f"{path}#/test/overall_error",
        "macro_f1": f"{path}#/test/macro_f1",
        **{f"per_class_error.{c}": f"{path}#/test/per_class_error/{c}" for c in m["test"]["per_class_error"]},
    }


def _training_row(r: Path) -> dict:
    path = r / "metrics.json"
    if not path.exists():
        raise EdgeSedError(f"{r}: no metrics.json: not a finished training run")
    m = json.loads(path.read_text())
    t, sources = (_stream_test if m.get("form") == "stateful" else _clip_test)(m, path)
    return {
        "run": str(r),
        "objective": m.get("objective"),
        "seed": m.get("seed"),
        "model": m.get("model"),
        "data": m.get("data"),
        "ratio": m.get("ratio"),
        "form": m.get("form", "windowed"),
        "overall_error": t["overall_error"],
        "macro_f1": t["macro_f1"],
        "per_class_error": t["per_class_error"],
        "sources": sources,
    }


def _vs_weighted_ce(rs: list, base: dict) -> dict | None:
    """The relative error reduction over weighted-ce, paired by seed; None without a pair."""
    pairs = [(r, base[r["seed"]]) for r in rs if r["seed"] in base]
    if not pairs:
        return None
    red = [
        (b["overall_error"] - a["overall_error"]) / b["overall_error"] for a, b in pairs if b["overall_error"]
    ]
    return {
        "paired_seeds": [a["seed"] for a, _ in pairs],
        "relative_error_reduction": mean_sd(red),
        "wins": sum(a["overall_error"] < b["overall_error"] for a, b in pairs),
    }


def training_comparison(runs) -> dict:
    """Per-class test error of every run (metrics.json), grouped by objective; with paired
    seeds, the relative error reduction of each objective over weighted-ce."""
    rows = [_training_row(r) for r in map(Path, runs)]
    groups = {}
    for row in rows:
        groups.setdefault(row["objective"], []).append(row)
    summary = {
        objective: {
            "runs": len(rs),
            "seeds": [r["seed"] for r in rs],
            "overall_error": mean_sd([r["overall_error"] for r in rs]),
            "macro_f1": mean_sd([r["macro_f1"] for r in rs]),
            "per_class_error": {
                c: mean_sd([r["per_class_error"].get(c) for r in rs]) for c in rs[0]["per_class_error"]
            },
        }
        for objective, rs in groups.items()
    }
    base = {r["seed"]: r for r in groups.get("weighted-ce", [])}
    for objective, rs in groups.items():
        vs = None if objective == "weighted-ce" else _vs_weighted_ce(rs, base)
        if vs:
            summary[objective]["vs_weighted_ce"] = vs
    stateful = (
        "; of a stateful run its test streams: per-class error = 1 - event recall, "
        "overall error = their mean over the event classes, macro-F1 = mean event F1"
        if any(r["form"] == "stateful" for r in rows)
        else ""
    )
    return {
        "runs": rows,
        "by_objective": summary,
        "note": f"test split of each run (metrics.json){stateful}; "
        "relative error reduction = (err_wce - err) / err_wce, paired by seed",
    }


# ------------------------------------------------------------------ tables


def _fmt(v, digits=3, suffix=""):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}{suffix}"


def _kb(b) -> str:
    return _fmt(b and b / 1024, 1)


def _fits(c: dict) -> str:
    return "-" if c.get("fits") is None else ("yes" if c["fits"] else "DOES NOT FIT")


def _seeds_note(summary: list) -> str:
    n_sets = max((r["sets"] for r in summary), default=1)
    return (
        f"mean ± sd over {n_sets} models (seeds) per objective" if n_sets > 1 else "one model per objective"
    )


def _several_objectives(summary: list) -> bool:
    return len({r["objective"] for r in summary}) > 1


def _architecture_note(report: dict) -> str:
    archs = list(dict.fromkeys(s.get("architecture") for s in report["model_sets"]))
    if len(archs) == 1:
        return "every model has the same architecture"
    return (
        f"{archs[0]}; other sizes have no host figures here: their device costs are in the size-curve table"
    )


def _invoke_note(report: dict) -> str:
    hl = report.get("host_latency") or {}
    rates = {}
    for v in hl.get("levels", {}).values():
        rates.setdefault(v["form"], v["invokes_per_s_audio"])
    text = f"Windowed and streaming levels decide every {hl.get('hop_frames')} frames"
    if "stateful" in rates:
        text += f"; a stateful level steps and decides once per stride ({rates['stateful']:g} a second)"
    if "windowed" in rates:
        text += f"; a windowed invoke is a whole window ({rates['windowed']:g} a second)"
    if "streaming-explicit-state" in rates:
        text += (
            f"; a streaming invoke is one frame of one of the staggered states "
            f"({rates['streaming-explicit-state']:g} a second)"
        )
    return text + "."


def report_stream_desc(report: dict) -> str:
    s = [v for v in report.get("streams", {}).values() if "wav" in v]
    if not s:
        return "labelled stream (not available)"
    wavs = {v["wav"] for v in s}
    return (
        f"{s[0]['duration_s']:.0f} s labelled stream with {s[0]['events']} events placed on background "
        "clips of the run's test split"
        + ("" if len(wavs) == 1 else f" ({len(wavs)} streams: one per test split)")
    )


def _headline_row(r: dict) -> list[str]:
    if r["status"] != "ok":
        return [r["level"], f"{r['status']}: {r['reason']}"] + [""] * 8
    h = r.get("host") or {}
    return [
        r["level"],
        r.get("form", ""),
        fmt_stat(r["event_f1"]),
        fmt_stat(r["false_alarms_per_hour"], 1),
        fmt_stat(r["onset_latency_s"], 2),
        fmt_stat(r["overall_error"]),
        f"{r['model_bytes'] / 1024:.1f}",
        _fmt(r.get("arena_bytes") and r["arena_bytes"] / 1024, 1),
        (
            f"{h['latency_ms']:.3f} ({h['ratio_to_fp32']:.2f}x)"
            if h.get("ratio_to_fp32") is not None
            else _fmt(h.get("latency_ms"))
        ),
        _fmt(h.get("duty_cycle") and 100 * h["duty_cycle"], 2, "%"),
    ]


def headline_table(report: dict) -> dict:
    """Event F1, false alarms, onset latency, window error, sizes and host latency per level."""
    summary = report["summary"]
    several = _several_objectives(summary)
    host = next(d for d in report["devices"] if d["kind"] == "host")
    m = host.get("machine") or report["host"]
    return {
        "id": "headline",
        "title": "Accuracy and host latency per quantization level",
        "headers": (["objective"] if several else [])
        + [
            "level",
            "form",
            "event F1",
            "false alarms/h",
            "onset latency (s)",
            "window error",
            "model kB",
            "MCU arena kB",
            "host ms/invoke (vs fp32)",
            "host duty cycle",
        ],
        "rows": [([r["objective"]] if several else []) + _headline_row(r) for r in summary],
        "notes": [
            "Event F1 (a detection of the class from 0.5 s before to 1.5 s after the onset counts), "
            "false alarms per hour and onset latency: the device loop on a "
            f"{report_stream_desc(report)} ({_seeds_note(summary)}). "
            "Window error (windowed bundles only; n/a for stateful ones, which are measured on streams): "
            "overall error over one 1 s window per test clip of the run's test split, LiteRT at "
            "conversion. Host latency MEASURED on "
            f"{m['cpu']} ({m['cores']} cores, 1 thread, load {m['load_average_1min']}) on the bundles of "
            f"{report['model_sets'][0]['name']} ({_architecture_note(report)}). {_invoke_note(report)} "
            "Duty cycle = (model + front end) time per second of audio."
        ],
    }


def per_class_table(report: dict) -> dict:
    summary = report["summary"]
    several = _several_objectives(summary)
    classes = [c for c in LABELS if any(c in (r.get("per_class_error") or {}) for r in summary)]
    return {
        "id": "per_class",
        "title": "Per-class error (1 - recall) per level",
        "headers": (["objective"] if several else []) + ["level"] + classes,
        "rows": [
            ([r["objective"]] if several else [])
            + [r["level"]]
            + [fmt_stat(r["per_class_error"].get(c)) for c in classes]
            for r in summary
            if r["status"] == "ok"
        ],
        "notes": [_seeds_note(summary)],
    }


def _device_rows(d: dict) -> list[list[str]]:
    """One device's rows: one per level with figures, one per reason shared by the levels it
    cannot run (11 cells each)."""
    tag = d["profile"] + (" (estimate)" if d["estimate"] else " (measured)")
    if d.get("status") == "not available":
        return [[d["profile"], "all", f"not available: {d['reason']}"] + [""] * 8]
    order = {n: i for i, n in enumerate(LEVEL_ORDER)}
    per = {"mcu": "decision", "pi": "inference", "host": "invoke"}.get(d["kind"], "")
    rows, grouped = [], {}
    for name, c in sorted(d["levels"].items(), key=lambda kv: order.get(kv[0], 99)):
        if c["status"] != "ok":
            reason = re.sub(r"^level \S+: ", "", str(c.get("reason")))
            grouped.setdefault(f"{c['status']}: {reason}", []).append(name)
            continue
        rows.append(
            [
                tag,
                name,
                f"{_fmt(c.get('latency_ms'), 3)} ms/{per}",
                _fmt(c.get("duty_cycle") and 100 * c["duty_cycle"], 2, "%"),
                _kb(c.get("ram_bytes")),
                _kb(c.get("flash_bytes", c.get("model_bytes"))),
                _fits(c),
                _fmt(c.get("overall_error")),
                _fmt(c.get("f1")),
                _fmt(c.get("latency_median_s"), 2),
                f"{c['overruns']} overruns" if c.get("overruns") else "",
            ]
        )
    return rows + [[tag, ", ".join(names), text] + [""] * 8 for text, names in grouped.items()]


DEVICES_NOTE = (
    "host: MEASURED (LiteRT, 1 thread; ms per invoke; duty cycle = model + front end per second of "
    "audio; flash = model size). Devices: ESTIMATES by firmware_sim on the first model's bundles and "
    "stream, never measured on a board. MCU: scores from tflite-micro's kernels; cycles = instruction "
    "counts of the project's C kernels on QEMU x the profile's assumed CPI; latency per decision "
    "(front end + model + smoother); RAM and flash from the memory plan (arena, audio ring, buffers, "
    "stated allowances for code and stack). Pi: the bundle in LiteRT on an emulated aarch64 core, "
    "instructions counted by QEMU x assumed CPI, latency per inference; 'error on device' = overall "
    "error of the emulated Pi's scores on the evaluation windows. Event F1 / onset latency / overruns: "
    "the device loop on the virtual device clock (each simulator's own decision hop). Rows that are "
    "not figures say why."
)


def devices_table(report: dict) -> dict:
    return {
        "id": "devices",
        "title": "Per device: latency, duty cycle, memory, accuracy on the device",
        "headers": [
            "device",
            "level",
            "latency",
            "duty cycle",
            "RAM kB",
            "flash kB",
            "fits",
            "error on device",
            "event F1",
            "onset latency (s)",
            "clock",
        ],
        "rows": [row for d in report["devices"] for row in _device_rows(d)],
        "notes": [DEVICES_NOTE]
        + [f"{d['profile']}: {d['device']}" for d in report["devices"] if d.get("device")],
    }


def _size_curve_row(p: dict) -> list[str]:
    return [
        p["variant"],
        p["level"],
        p["profile"] + " (estimate)",
        _fmt(100 * p["duty_cycle"], 1, "%"),
        _fmt(p.get("latency_ms")),
        _kb(p.get("model_bytes")),
        _kb(p.get("arena_bytes")),
        _kb(p.get("ram_bytes")),
        _fits(p),
        fmt_stat(p.get("event_f1")),
        fmt_stat(p.get("false_alarms_per_hour"), 1),
        _fmt(p.get("f1")),
    ]


def size_curve_table(report: dict) -> dict | None:
    curve = report.get("size_curve")
    if not curve:
        return None
    return {
        "id": "size_curve",
        "title": "Accuracy against device cost, per network size (MCU profiles)",
        "headers": [
            "variant",
            "level",
            "device",
            "duty cycle",
            "ms/decision",
            "model kB",
            "arena kB",
            "RAM kB",
            "fits",
            "event F1",
            "false alarms/h",
            "event F1 on the device",
        ],
        "rows": [
            _size_curve_row(p) for p in sorted(curve["points"], key=lambda p: (p["profile"], p["duty_cycle"]))
        ],
        "notes": [
            "One point per network size and rate, so a user can pick one for their chip. Duty cycle, "
            "latency and memory: ESTIMATES by firmware_sim for the first model of each size, on its own "
            "test stream. Event F1 and false alarms/h: the device loop (LiteRT) on the test streams, "
            f"{_seeds_note(report['summary'])}; event F1 on the device: tflite-micro on the first model's "
            "stream. These are test figures: choose a size on validation streams "
            "(benchmarks/accuracy_vs_cycles.py), then read its test figures here."
        ]
        + curve["notes"],
    }


def _training_table_row(objective: str, s: dict) -> list[str]:
    vs = s.get("vs_weighted_ce")
    return (
        [objective, str(s["runs"])]
        + [fmt_stat(s["per_class_error"].get(c)) for c in LABELS]
        + [
            fmt_stat(s["overall_error"]),
            fmt_stat(s["macro_f1"]),
            (
                f"{fmt_stat(vs['relative_error_reduction'], 1, pct=True)} ({vs['wins']}/"
                f"{len(vs['paired_seeds'])} seeds better)"
            )
            if vs
            else "-",
        ]
    )


def training_table(report: dict) -> dict | None:
    tr = report.get("training")
    if not tr:
        return None
    return {
        "id": "training",
        "title": "Training objectives: test error per class",
        "headers": ["objective", "runs"]
        + list(LABELS)
        + ["overall error", "macro-F1", "error reduction vs weighted-ce"],
        "rows": [_training_table_row(objective, s) for objective, s in tr["by_objective"].items()],
        "notes": [tr["note"] + "; mean ± sd over runs"],
    }


TABLES = (headline_table, per_class_table, devices_table, size_curve_table, training_table)
"""The report's tables in the order it shows them; a builder returns None when it has no data."""


def report_tables(report: dict) -> list[dict]:
    """Every table of the report as {id, title, headers, rows (strings), notes}: md and html are
    both rendered from these, so they cannot disagree."""
    return [t for t in (build(report) for build in TABLES) if t]
