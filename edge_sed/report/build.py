"""One report: accuracy and latency per quantization level and per device.

``build_report(bundles, data, out)`` reads convert outputs (one directory per trained model,
``<dir>/<level>/`` bundles plus ``convert-report.json``), measures what has to be measured on
this machine, asks the simulators for the device estimates, and writes ``report.json``,
``report.md`` and a self-contained ``report.html`` (PNG plots embedded).

Where every number comes from (report.json keeps, beside each number, ``sources[field]`` =
``file#/json/pointer`` of the JSON field it was read from):
- clip-level accuracy (per-class error = 1 - recall, overall error = their mean, macro-F1,
  confusion matrix): each bundle's manifest.json ``accuracy`` (LiteRT on the run's whole test
  split, measured by ``edge-sed convert``);
- stream-level accuracy (event F1, error rate, onset->detection latency, false alarms per hour,
  DCASE 2017 task 2 onset collar, see edge_sed.core.events): measured here by running the device
  loop (edge_sed.core.loop.Detector, LiteRT) over a labelled stream built from the run's test split
  (edge_sed.data.streams); each result is written to ``measurements/stream-*.json``;
- host latency: measured here (edge_sed.eval.bench, interleaved, median), ``measurements/host-latency.json``;
- device latency, memory, fits, duty cycle: ESTIMATES from firmware_sim (``simulate``), written
  to ``measurements/device-*.json``; a level a device cannot run is shown with the reason;
- the training comparison: each run's metrics.json ``test`` (``test_stream`` of a stateful run).
Several model directories of one objective (seeds) are shown as mean ± standard deviation
over them, with n.

numpy only at import; matplotlib is imported when the plots are drawn, LiteRT when a bundle
runs, firmware_sim (if installed) when device estimates are asked for.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_sed.core.atomic import write_json
from edge_sed.eval.bench import DECISION_HOP_FRAMES, bundle_dirs, machine, measure_latency
from edge_sed.core.bundle import MANIFEST_FILE, load_bundle
from edge_sed.core.errors import DatasetError, EdgeSedError, install_extra
from edge_sed.core.settings import BACKGROUND, LABELS
from edge_sed.eval.stats import fmt_stat, mean_sd

LEVEL_ORDER = (
    "fp32",
    "fp16",
    "dynamic-int8",
    "int8",
    "int16x8",
    "fp32-streaming",
    "int8-streaming",
    "int16x8-streaming",
)
"""The bundles ``edge-sed convert`` writes, in the order the report lists them."""
CONVERT_REPORT = "convert-report.json"
REPORT_FORMAT = 1
STREAM_S = 240.0
STREAM_EVENTS = 40
MEAS = "measurements"


# ------------------------------------------------------------------ model sets (inputs)


@dataclass
class ModelSet:
    """One trained model's convert output: its levels, each ok (a loaded bundle) or not (reason)."""

    name: str
    path: Path
    provenance: dict
    levels: dict = field(default_factory=dict)  # name -> {"status", "reason", "path", "manifest", "source"}

    @property
    def objective(self) -> str:
        return str(self.provenance.get("objective") or "?")

    @property
    def seed(self):
        return self.provenance.get("seed")

    @property
    def architecture(self) -> str:
        """The network's size and rate, from the provenance: 'conv 8x32, LSTM 32, every 4 frames'."""
        p = self.provenance
        parts = [
            f"conv {p['context_frames']}x{p['conv_channels']}" if p.get("conv_channels") else None,
            f"LSTM {p['hidden']}" if p.get("hidden") else None,
            f"every {p['frame_stride']} frames" if (p.get("frame_stride") or 1) > 1 else None,
        ]
        return ", ".join(x for x in parts if x) or str(p.get("model") or "?")


def variant_labels(sets) -> dict:
    """{set name: what groups it in the report}: its objective, and its architecture too when the
    sets differ in size or rate (an accuracy-against-cost comparison, issue 15)."""
    several = len({s.architecture for s in sets}) > 1
    return {s.name: f"{s.objective} ({s.architecture})" if several else s.objective for s in sets}


def _is_convert_output(path: Path) -> bool:
    return (path / CONVERT_REPORT).exists() or any(
        p.is_dir() and (p / MANIFEST_FILE).exists() for p in path.iterdir()
    )


def find_model_sets(paths) -> list[ModelSet]:
    """Each path is a convert output, or a folder of convert outputs (e.g. one per seed)."""
    found = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise EdgeSedError(f"{path}: no such bundles directory")
        if (path / MANIFEST_FILE).exists():
            raise EdgeSedError(f"{path}: a single bundle; give the convert output above it ({path.parent})")
        if _is_convert_output(path):
            found.append(path)
            continue
        subs = sorted(
            p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and _is_convert_output(p)
        )
        if not subs:
            raise EdgeSedError(
                f"{path}: no bundles here (no {CONVERT_REPORT} or <level>/{MANIFEST_FILE}, "
                "nor sub-folders holding them): run `edge-sed convert RUN --out DIR` first"
            )
        found.extend(subs)
    names = [p.name for p in found]
    sets = []
    for path in found:
        name = path.name if names.count(path.name) == 1 else f"{path.parent.name}/{path.name}"
        sets.append(_load_model_set(name, path))
    return sets


def _load_model_set(name: str, path: Path) -> ModelSet:
    levels = {}
    report_path = path / CONVERT_REPORT
    if report_path.exists():
        report = json.loads(report_path.read_text())
        for i, lv in enumerate(report.get("levels", [])):
            levels[lv["name"]] = {
                "status": lv["status"],
                "reason": lv.get("reason"),
                "source": f"{report_path}#/levels/{i}/status",
            }
    for d in bundle_dirs(path):
        try:
            b = load_bundle(d)
        except EdgeSedError as exc:
            levels[d.name] = {"status": "invalid", "reason": str(exc), "source": str(d / MANIFEST_FILE)}
            continue
        levels[d.name] = {
            "status": "ok",
            "reason": None,
            "path": str(d),
            "bundle": b,
            "manifest": b.manifest,
            "source": str(d / MANIFEST_FILE),
        }
    for n, lv in levels.items():
        if lv["status"] == "ok" and "bundle" not in lv:
            lv.update(
                status="missing", reason=f"{CONVERT_REPORT} lists it as written but {path / n} is not there"
            )
    prov = next((lv["manifest"]["provenance"] for lv in levels.values() if "manifest" in lv), {})
    order = {n: i for i, n in enumerate(LEVEL_ORDER)}
    return ModelSet(name, path, prov, dict(sorted(levels.items(), key=lambda kv: order.get(kv[0], 99))))


# --------------------------------------------------------------- clip-level accuracy


def _clip_accuracy(lv: dict) -> dict:
    """The conversion-time test accuracy of a bundle, with the source of every number."""
    acc = lv["manifest"]["accuracy"]
    src = f"{lv['source']}#/accuracy"
    if "overall_error" not in acc:  # a stateful bundle: measured on streams, not clips
        return {
            "overall_error": None,
            "macro_f1": None,
            "per_class_error": {},
            "confusion_matrix": None,
            "windows": None,
            "runtime": acc.get("runtime"),
            "sources": {},
        }
    rec = {
        "overall_error": acc["overall_error"],
        "macro_f1": acc["macro_f1"],
        "per_class_error": dict(acc["per_class_error"]),
        "confusion_matrix": acc.get("confusion_matrix"),
        "windows": acc.get("windows"),
        "runtime": acc.get("runtime"),
    }
    rec["sources"] = {
        "overall_error": f"{src}/overall_error",
        "macro_f1": f"{src}/macro_f1",
        "confusion_matrix": f"{src}/confusion_matrix",
        **{f"per_class_error.{c}": f"{src}/per_class_error/{c}" for c in acc["per_class_error"]},
    }
    return rec


# ------------------------------------------------------------------ stream accuracy


def _cache_dir() -> Path:
    return Path(os.environ.get("EDGE_SED_CACHE", Path.home() / ".cache" / "edge-sed"))


def test_clips(data: str | None, provenance: dict):
    """The test split of the run a bundle came from: ``data`` (or the run's own data set) split
    as the trainer split it (edge_sed.data.datasets.prepare_splits with the run's ratio and seed), or
    test.csv of a prepared-splits folder."""
    from edge_sed.data.datasets import SPLITS, load_clips, parse_ratio, prepare_splits, read_metadata_csv

    source = data or provenance.get("dataset")
    if not source:
        raise DatasetError("no data for the stream: give --data (the bundles' provenance names none)")
    if source == "synthetic":  # the trainer's cached synthetic set (train.data.synthetic_source)
        counts = parse_ratio(provenance.get("synth_counts") or "120:120:60:1560")
        source = (
            _cache_dir()
            / "synth"
            / ("-".join(str(int(counts.get(l, 0))) for l in LABELS) + f"-seed{provenance.get('seed', 0)}")
            / "metadata.csv"
        )
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: the data for the stream is not on this machine (give --data)")
    if source.is_dir() and all((source / f"{s}.csv").exists() for s in SPLITS):
        return read_metadata_csv(source / "test.csv"), str(source / "test.csv")
    ratio = provenance.get("ratio")
    splits = prepare_splits(
        load_clips(source), ratio=parse_ratio(ratio) if ratio else None, seed=int(provenance.get("seed") or 0)
    )
    return splits["test"], f"{source} (test split: ratio {ratio}, seed {provenance.get('seed')})"


def make_test_stream(data, provenance: dict, out: Path, stream_s: float, n_events: int, seed: int = 0):
    """(audio, annotations, wav path, description): a labelled stream from the test split,
    written once under ``out`` and reused (same data, ratio, seed and length -> same file)."""
    from edge_sed.core.audio_io import read_audio
    from edge_sed.core.events import read_annotations
    from edge_sed.data.streams import make_stream, write_stream

    clips, described = test_clips(data, provenance)
    key = hashlib.sha1(repr((described, stream_s, n_events, seed)).encode()).hexdigest()[:10]
    wav = out / f"stream-{key}.wav"
    if wav.exists() and wav.with_suffix(".csv").exists():
        return read_audio(wav), read_annotations(wav.with_suffix(".csv")), wav, described
    n_events = min(n_events, max(1, int((stream_s - 3.5) // 3.0)))
    audio, ann = make_stream(clips, stream_s, n_events, seed=seed)
    write_stream(wav, audio, ann)
    return audio, ann, wav, described


def run_stream(
    bundle, audio: np.ndarray, annotations, block: int = 1600, hop_frames: int = DECISION_HOP_FRAMES
) -> dict:
    """The device loop (LiteRT) over ``audio``, deciding every ``hop_frames`` frames whatever the
    bundle's form: events, stream metrics, and the wall time the whole loop took per second of
    audio on this machine."""
    from edge_sed.core.events import event_metrics
    from edge_sed.core.loop import Detector

    det = Detector(bundle, hop_frames=None if bundle.form == "stateful" else hop_frames)
    events, inferences = [], 0
    t0 = time.perf_counter()
    for i in range(0, len(audio), block):
        for d in det.push(audio[i : i + block]):
            inferences += d.inferences
            if d.event is not None:
                events.append(d.event)
    wall = time.perf_counter() - t0
    duration = len(audio) / bundle.frontend.sample_rate
    labels = [l for l in bundle.labels if l != BACKGROUND]
    m = event_metrics(annotations, events, duration, labels=labels)
    m.pop("latencies_s", None)
    return {
        "metrics": m,
        "events": [e.to_dict() for e in events],
        "inferences": inferences,
        "hop_frames": hop_frames,
        "wall_s": wall,
        "duration_s": duration,
        "loop_wall_ms_per_s_audio": 1000 * wall / duration,
    }


def _stream_record(meas: dict, path: Path) -> dict:
    m = meas["metrics"]
    src = f"{path}#/metrics"
    return {
        "f1": m["f1"],
        "error_rate": m["error_rate"],
        "latency_median_s": m["latency_median_s"],
        "latency_p95_s": m["latency_p95_s"],
        "false_alarms_per_hour": m["false_alarms_per_hour"],
        "reference": m["reference"],
        "detected": m["detected"],
        "per_class_f1": {c: v["f1"] for c, v in m["per_class"].items()},
        "loop_wall_ms_per_s_audio": meas["loop_wall_ms_per_s_audio"],
        "sources": {
            "f1": f"{src}/f1",
            "error_rate": f"{src}/error_rate",
            "latency_median_s": f"{src}/latency_median_s",
            "latency_p95_s": f"{src}/latency_p95_s",
            "false_alarms_per_hour": f"{src}/false_alarms_per_hour",
            **{f"per_class_f1.{c}": f"{src}/per_class/{c}/f1" for c in m["per_class"]},
            "loop_wall_ms_per_s_audio": f"{path}#/loop_wall_ms_per_s_audio",
        },
    }


# ------------------------------------------------------------------------- devices

DEVICE_POINTERS = {
    # report field: (pointer inside a firmware_sim record, unit shown)
    "mcu": {
        "latency_ms": "cost/ms_per_decision",
        "duty_cycle": "clock/duty_cycle",
        "ram_bytes": "memory/ram_total_bytes",
        "flash_bytes": "memory/flash_total_bytes",
        "arena_bytes": "memory/ram/tensor_arena",
        "fits": "memory/fits",
        "f1": "events/f1",
        "latency_median_s": "events/latency_median_s",
        "worst_latency_ms": "clock/decision_latency_worst_ms",
        "overruns": "clock/overruns",
    },
    "pi": {
        "latency_ms": "cost/est_ms_per_inference",
        "duty_cycle": "clock/duty_cycle",
        "model_bytes": "model_bytes",
        "overall_error": "accuracy/overall_error",
        "f1": "events/f1",
        "latency_median_s": "events/latency_median_s",
        "worst_latency_ms": "clock/decision_latency_worst_ms",
        "overruns": "clock/overruns",
    },
}
LATENCY_UNIT = {"mcu": "ms per decision (front end + model + smoother)", "pi": "ms per inference (model)"}


def resolve_profiles(spec: str) -> list:
    """firmware_sim profiles for "all", "mcu", "pi", names, or a comma list of any of these;
    [] when firmware_sim is not installed (the report then says so)."""
    try:
        from firmware_sim.profiles import load_profiles
    except ImportError:
        return []
    found = {}
    for item in (t.strip() for t in spec.split(",")):
        if item and item != "host":
            found.update((p.name, p) for p in load_profiles(item))
    return list(found.values())


PI_LEVELS = ("fp32", "int8")
"""Levels the report emulates on Pi profiles by default: emulating LiteRT on an aarch64 core under
QEMU takes minutes per level and core; `edge-sed simulate BUNDLE --profile rpi-4` does any other."""


def simulate_devices(
    model_set: ModelSet, wav, profiles: str, out_path: Path, say, pi_levels=PI_LEVELS
) -> tuple[list[dict], str | None]:
    """Every profile x level of ``model_set`` through firmware_sim (``edge-sed simulate``'s Python
    entry, one level at a time) on the report's stream; the records are written to ``out_path``
    and every figure the report shows points into it. Pi profiles get the levels in
    ``pi_levels`` ("all": every one). ([], reason) when there is no simulator to ask."""
    try:
        from firmware_sim import simulate as sim
    except ImportError as exc:
        return [], f"no device simulator in this installation (firmware_sim: {exc}); {install_extra('sim')}"
    if wav is None:
        return [], "no labelled stream to simulate on (see the stream notes)"
    chosen = resolve_profiles(profiles)
    result = {"format": None, "stream": None, "calibration": None, "records": [], "not_simulated": []}
    for name, lv in model_set.levels.items():
        if lv["status"] != "ok":
            continue
        stateful = lv["manifest"].get("form") == "stateful"  # not emulated on Pi profiles by the report
        names = [
            p.name
            for p in chosen
            if p.kind != "pi" or not stateful and (pi_levels == "all" or name in pi_levels)
        ]
        for p in chosen:
            if p.name not in names:
                result["not_simulated"].append(
                    {
                        "profile": p.name,
                        "kind": p.kind,
                        "bundle": lv["path"],
                        "reason": (
                            "the report emulates windowed and streaming bundles on Pi profiles, "
                            "not stateful ones (QEMU takes minutes per level and core): "
                            f"edge-sed simulate BUNDLE --profile {p.name}"
                        )
                        if stateful
                        else (
                            f"the report emulates {', '.join(pi_levels)} on Pi profiles "
                            "(QEMU takes minutes per level and core): "
                            f"edge-sed simulate BUNDLE --profile {p.name}"
                        ),
                    }
                )
        if not names:
            continue
        say(f"simulating {name} on {', '.join(names)}")
        try:
            r = sim.run(lv["path"], ",".join(names), str(wav), log=say)
        except EdgeSedError as exc:  # e.g. the emulated Pi userland cannot be built here
            result["records"] += [
                {
                    "profile": n,
                    "kind": next(p.kind for p in chosen if p.name == n),
                    "bundle": lv["path"],
                    "skipped": f"simulator failed: {exc}",
                }
                for n in names
            ]
            continue
        result.update(format=r["format"], stream=r["stream"], calibration=r["calibration"])
        result["records"] += r["records"]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    from edge_sed.core.atomic import atomic_path

    with atomic_path(out_path) as tmp:
        tmp.write_text(sim.dumps(result))
    result = json.loads(out_path.read_text())
    devices: dict[str, dict] = {}
    for i, rec in enumerate(result["records"]):
        kind = rec.get("kind", "mcu")
        dev = devices.setdefault(
            rec["profile"],
            {
                "profile": rec["profile"],
                "kind": kind,
                "estimate": True,
                "device": rec.get("device"),
                "latency_unit": LATENCY_UNIT.get(kind),
                "levels": {},
            },
        )
        name = Path(rec["bundle"]).name
        if "skipped" in rec:
            dev["levels"][name] = {
                "status": "cannot run",
                "reason": rec["skipped"],
                "source": f"{out_path}#/records/{i}/skipped",
            }
            continue
        dev["device"] = rec.get("device") or dev["device"]
        dev["estimate_note"] = rec.get("estimate_note")
        cell = {"status": "ok", "estimate": True, "sources": {}}
        for key, pointer in DEVICE_POINTERS.get(kind, {}).items():
            v = rec
            try:
                for part in pointer.split("/"):
                    v = v[part]
            except (KeyError, TypeError):
                continue
            cell[key] = v
            cell["sources"][key] = f"{out_path}#/records/{i}/{pointer}"
        dev["levels"][name] = cell
    for i, rec in enumerate(result["not_simulated"]):
        dev = devices.setdefault(
            rec["profile"],
            {
                "profile": rec["profile"],
                "kind": rec["kind"],
                "estimate": True,
                "device": None,
                "latency_unit": LATENCY_UNIT.get(rec["kind"]),
                "levels": {},
            },
        )
        dev["levels"][Path(rec["bundle"]).name] = {
            "status": "not simulated",
            "reason": rec["reason"],
            "source": f"{out_path}#/not_simulated/{i}/reason",
        }
    for name, lv in model_set.levels.items():  # levels convert could not make: say so on every device
        for dev in devices.values():
            if name not in dev["levels"]:
                dev["levels"][name] = {
                    "status": "not built" if lv["status"] != "ok" else "not simulated",
                    "reason": lv["reason"] or "firmware_sim returned no record",
                }
    return list(devices.values()), None


# --------------------------------------------------------------------------- helpers


def _fmt(v, digits=3, suffix=""):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}{suffix}"


# ------------------------------------------------------------------------- the report


def build_report(
    bundles,
    out,
    data: str | None = None,
    profiles: str = "all",
    runs=(),
    stream_s: float = STREAM_S,
    stream_events: int = STREAM_EVENTS,
    latency_rounds: int = 30,
    plots: bool = True,
    say=None,
    progress=None,
    pi_levels=PI_LEVELS,
) -> dict:
    """Collect, measure, render. Returns report.json's content; writes report.json/.md/.html
    and the plots into ``out``."""
    say = say or (lambda *a: None)
    out = Path(out)
    meas_dir = out / MEAS
    meas_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sets = find_model_sets(bundles)
    if profiles not in ("", "none", "host"):
        resolve_profiles(profiles)  # an unknown profile fails now, not after the streams
    say(f"{len(sets)} model set(s): " + ", ".join(f"{s.name} ({s.objective}, seed {s.seed})" for s in sets))

    # 1. clip-level accuracy, per set and level (manifests)
    set_records = []
    variant = variant_labels(sets)
    for s in sets:
        rec = {
            "name": s.name,
            "path": str(s.path),
            "objective": variant[s.name],
            "seed": s.seed,
            "architecture": s.architecture,
            "dataset": s.provenance.get("dataset"),
            "run_dir": s.provenance.get("run_dir"),
            "model": s.provenance.get("model"),
            "levels": {},
        }
        for name, lv in s.levels.items():
            r = {"status": lv["status"], "reason": lv["reason"], "source": lv["source"]}
            if lv["status"] == "ok":
                m = lv["manifest"]
                r.update(
                    path=lv["path"],
                    form=m["form"],
                    level=m["level"],
                    model_bytes=m["model_bytes"],
                    arena_bytes=(m.get("tflm") or {}).get("arena_bytes"),
                    warnings=m.get("warnings", []),
                    clip=_clip_accuracy(lv),
                )
                r["sources"] = {"model_bytes": f"{lv['source']}#/model_bytes"}
                if r["arena_bytes"] is not None:
                    r["sources"]["arena_bytes"] = f"{lv['source']}#/tflm/arena_bytes"
            rec["levels"][name] = r
        set_records.append(rec)

    # 2. stream accuracy (device loop on LiteRT), per set and level
    stream_info = {}
    jobs = [
        (s, rec, name)
        for s, rec in zip(sets, set_records)
        for name, lv in s.levels.items()
        if lv["status"] == "ok"
    ]
    for k, (s, rec, name) in enumerate(jobs):
        key = s.name
        if key not in stream_info:
            try:
                audio, ann, wav, described = make_test_stream(
                    data, s.provenance, meas_dir, stream_s, stream_events
                )
                stream_info[key] = {
                    "audio": audio,
                    "annotations": ann,
                    "wav": str(wav),
                    "from": described,
                    "events": len(ann),
                    "duration_s": len(audio) / 16000,
                }
                say(
                    f"stream for {s.name}: {len(audio) / 16000:.0f} s, {len(ann)} events "
                    f"from {described} -> {wav}"
                )
            except EdgeSedError as exc:
                stream_info[key] = {"error": str(exc)}
                say(f"stream for {s.name}: not available: {exc}")
        info = stream_info[key]
        lvrec = rec["levels"][name]
        if "error" in info:
            lvrec["stream"] = {"status": "not available", "reason": info["error"]}
        else:
            meas = run_stream(s.levels[name]["bundle"], info["audio"], info["annotations"])
            meas.update(bundle=s.levels[name]["path"], stream=info["wav"], stream_from=info["from"])
            path = meas_dir / f"stream-{s.name.replace('/', '_')}-{name}.json"
            write_json(meas, path)
            lvrec["stream"] = _stream_record(meas, path)
        if progress:
            progress(k + 1, len(jobs))
    rep_stream = {
        k: {kk: vv for kk, vv in v.items() if kk not in ("audio", "annotations")}
        for k, v in stream_info.items()
    }

    # 3. host latency: the first set's bundles, interleaved
    first = sets[0]
    ok_paths = [lv["path"] for lv in first.levels.values() if lv["status"] == "ok"]
    say(f"measuring host latency of {len(ok_paths)} bundles of {first.name}, interleaved")
    host = measure_latency(ok_paths, rounds=latency_rounds) if ok_paths else None
    host_path = meas_dir / "host-latency.json"
    if host:
        write_json(host, host_path)

    # 4. devices: host (measured) + the simulators' profiles (estimated), on the first set's stream
    devices = [_host_device(first, host, host_path, set_records[0])]
    wav0 = (stream_info.get(first.name) or {}).get("wav")
    if profiles not in ("", "none", "host"):
        say(f"simulating {first.name} on device profiles '{profiles}' (firmware_sim)")
        sims, why_none = simulate_devices(first, wav0, profiles, meas_dir / "simulate.json", say, pi_levels)
        devices += sims
        if why_none:
            say(f"device estimates: not available: {why_none}")
            devices.append(
                {
                    "profile": "MCU and Pi profiles",
                    "kind": "device",
                    "estimate": True,
                    "status": "not available",
                    "reason": why_none,
                    "levels": {},
                }
            )

    # 5. the size curve: when the sets differ in size or rate, each architecture on the MCU profiles
    curve = None
    if len(set(variant.values())) > 1 and profiles not in ("", "none", "host"):
        curve = size_curve(
            sets, variant, stream_info, [d for d in devices if d["kind"] == "mcu"], profiles, meas_dir, say
        )

    # 6. training comparison
    training = training_comparison(runs) if runs else None

    report = {
        "format": REPORT_FORMAT,
        "title": "edge-sed report: accuracy and latency per quantization level and device",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": host["machine"] if host else machine(),
        "metrics_note": (
            "window level (one 1 s window per test clip, as scored at conversion): per-class error = 1 - "
            "recall, "
            "overall error = mean of the per-class errors, "
            "macro-F1, on the run's test split (LiteRT, at conversion). Stream level: event F1 and "
            "error rate, DCASE 2017 task 2 onset collar 0.5 s + 1 s causal delay; onset latency = "
            "decision time - reference onset. Host latency: measured. Device figures: ESTIMATES "
            "from firmware_sim."
        ),
        "model_sets": set_records,
        "streams": rep_stream,
        "host_latency": {"source": str(host_path), **host} if host else None,
        "devices": devices,
        "training": training,
    }
    report["summary"] = summarise(report)
    if curve:
        report["size_curve"] = attach_accuracy(curve, report["summary"])
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_report(report, out, plots=plots)
    return report


def size_curve(
    sets, variant: dict, stream_info: dict, first_mcu: list, profiles: str, meas_dir: Path, say
) -> dict | None:
    """Accuracy against device cost, one point per architecture x MCU profile x level (issue 15):
    the first set of each architecture is simulated on the MCU profiles on its own stream (the
    first set's figures are the device table's). None without an MCU profile or a simulator."""
    mcu = ",".join(p.name for p in resolve_profiles(profiles) if p.kind == "mcu")
    if not mcu:
        return None
    reps = {}
    for s in sets:
        reps.setdefault(variant[s.name], s)
    points, notes = [], []
    for k, (label, s) in enumerate(reps.items()):
        if k == 0:
            devs = first_mcu
        else:
            say(f"size curve: simulating {s.name} ({s.architecture}) on {mcu}")
            wav = (stream_info.get(s.name) or {}).get("wav")
            devs, why = simulate_devices(
                s, wav, mcu, meas_dir / f"simulate-{re.sub(r'[^A-Za-z0-9._-]', '_', s.name)}.json", say
            )
            if why:
                notes.append(f"{label}: not simulated: {why}")
        for d in devs:
            for level, c in d.get("levels", {}).items():
                if c.get("status") == "ok" and c.get("duty_cycle") is not None:
                    points.append(
                        {
                            "variant": label,
                            "architecture": s.architecture,
                            "set": s.name,
                            "profile": d["profile"],
                            "level": level,
                            **{
                                key: c.get(key)
                                for key in (
                                    "duty_cycle",
                                    "latency_ms",
                                    "ram_bytes",
                                    "flash_bytes",
                                    "arena_bytes",
                                    "fits",
                                    "f1",
                                    "overruns",
                                )
                            },
                            "sources": {
                                key: v
                                for key, v in c.get("sources", {}).items()
                                if key
                                in (
                                    "duty_cycle",
                                    "latency_ms",
                                    "ram_bytes",
                                    "flash_bytes",
                                    "arena_bytes",
                                    "fits",
                                    "f1",
                                    "overruns",
                                )
                            },
                        }
                    )
    return {"profiles": mcu.split(","), "points": points, "notes": notes}


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


def _host_device(first: ModelSet, host: dict | None, host_path: Path, first_record: dict) -> dict:
    dev = {
        "profile": "host",
        "kind": "host",
        "estimate": False,
        "machine": host["machine"] if host else None,
        "levels": {},
    }
    for name, lv in first.levels.items():
        if lv["status"] != "ok":
            dev["levels"][name] = {"status": "not built", "reason": lv["reason"]}
            continue
        h = host["levels"][Path(lv["path"]).name]
        stream = first_record["levels"][name].get("stream") or {}
        stream = stream if "f1" in stream else {}
        src = f"{host_path}#/levels/{Path(lv['path']).name}"
        dev["levels"][name] = {
            "status": "ok",
            "latency_ms": h["median_ms"],
            "latency_unit": h["unit"],
            "ms_per_s_audio": h["ms_per_s_audio"],
            "duty_cycle": h["duty_cycle"],
            "ratio_to_fp32": h["ratio_to_fp32"],
            "ratio_per_s_audio_to_fp32": h["ratio_per_s_audio_to_fp32"],
            "model_bytes": lv["manifest"]["model_bytes"],
            "fits": True,
            **{k: stream[k] for k in ("f1", "latency_median_s") if k in stream},
            "sources": {
                "latency_ms": f"{src}/median_ms",
                "ms_per_s_audio": f"{src}/ms_per_s_audio",
                "duty_cycle": f"{src}/duty_cycle",
                "ratio_to_fp32": f"{src}/ratio_to_fp32",
                "model_bytes": f"{lv['source']}#/model_bytes",
                **{k: stream["sources"][k] for k in ("f1", "latency_median_s") if k in stream},
            },
        }
    return dev


def summarise(report: dict) -> list[dict]:
    """One row per (objective, level): mean ± sd over the model sets of that objective."""
    by_obj: dict[str, list] = {}
    for s in report["model_sets"]:
        by_obj.setdefault(s["objective"], []).append(s)
    host = next((d for d in report["devices"] if d["kind"] == "host"), None)
    rows = []
    for objective, sets in by_obj.items():
        names = [n for n in LEVEL_ORDER if any(n in s["levels"] for s in sets)]
        names += sorted({n for s in sets for n in s["levels"]} - set(names))
        for name in names:
            lvs = [s["levels"].get(name) for s in sets]
            oks = [lv for lv in lvs if lv and lv["status"] == "ok"]
            row = {"objective": objective, "level": name, "sets": len(sets), "ok": len(oks)}
            if not oks:
                bad = next(lv for lv in lvs if lv)
                row.update(status=bad["status"], reason=bad["reason"])
                rows.append(row)
                continue
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
            if (
                h.get("status") == "ok" and objective == report["model_sets"][0]["objective"]
            ):  # host: first set's
                row["host"] = {
                    k: h[k]
                    for k in ("latency_ms", "latency_unit", "ms_per_s_audio", "duty_cycle", "ratio_to_fp32")
                }
            rows.append(row)
    return rows


# ------------------------------------------------------------------ training runs


def training_comparison(runs) -> dict:
    """Per-class test error of every run (metrics.json), grouped by objective; with paired
    seeds, the relative error reduction of each objective over weighted-ce."""
    rows = []
    for r in map(Path, runs):
        path = r / "metrics.json"
        if not path.exists():
            raise EdgeSedError(f"{r}: no metrics.json: not a finished training run")
        m = json.loads(path.read_text())
        t, sources = (
            _stream_test(m, path)
            if m.get("form") == "stateful"
            else (
                m["test"],
                {
                    "overall_error": f"{path}#/test/overall_error",
                    "macro_f1": f"{path}#/test/macro_f1",
                    **{
                        f"per_class_error.{c}": f"{path}#/test/per_class_error/{c}"
                        for c in m["test"]["per_class_error"]
                    },
                },
            )
        )
        rows.append(
            {
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
        )
    groups = {}
    for row in rows:
        groups.setdefault(row["objective"], []).append(row)
    summary = {}
    for objective, rs in groups.items():
        summary[objective] = {
            "runs": len(rs),
            "seeds": [r["seed"] for r in rs],
            "overall_error": mean_sd([r["overall_error"] for r in rs]),
            "macro_f1": mean_sd([r["macro_f1"] for r in rs]),
            "per_class_error": {
                c: mean_sd([r["per_class_error"].get(c) for r in rs]) for c in rs[0]["per_class_error"]
            },
        }
    base = {r["seed"]: r for r in groups.get("weighted-ce", [])}
    for objective, rs in groups.items():
        if objective == "weighted-ce":
            continue
        pairs = [(r, base[r["seed"]]) for r in rs if r["seed"] in base]
        if pairs:
            red = [
                (b["overall_error"] - a["overall_error"]) / b["overall_error"]
                for a, b in pairs
                if b["overall_error"]
            ]
            summary[objective]["vs_weighted_ce"] = {
                "paired_seeds": [a["seed"] for a, _ in pairs],
                "relative_error_reduction": mean_sd(red),
                "wins": sum(a["overall_error"] < b["overall_error"] for a, b in pairs),
            }
    stateful = (
        (
            "; of a stateful run its test streams: per-class error = 1 - event recall, "
            "overall error = their mean "
            "over the event classes, macro-F1 = mean event F1"
        )
        if any(r["form"] == "stateful" for r in rows)
        else ""
    )
    return {
        "runs": rows,
        "by_objective": summary,
        "note": f"test split of each run (metrics.json){stateful}; "
        "relative error reduction = (err_wce - err) / "
        "err_wce, paired by seed",
    }


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


# ----------------------------------------------------------------------- rendering


def _tables(report: dict) -> list[dict]:
    """Every table of the report as {id, title, headers, rows (strings), notes}: md and html are
    both rendered from these, so they cannot disagree."""
    tables = []
    summary = report["summary"]
    several = len({r["objective"] for r in summary}) > 1
    n_sets = max((r["sets"] for r in summary), default=1)
    seeds_note = (
        f"mean ± sd over {n_sets} models (seeds) per objective" if n_sets > 1 else "one model per objective"
    )
    host = next(d for d in report["devices"] if d["kind"] == "host")
    m = host.get("machine") or report["host"]
    rows = []
    for r in summary:
        first = [r["objective"]] if several else []
        if r["status"] != "ok":
            rows.append(first + [r["level"], f"{r['status']}: {r['reason']}"] + [""] * 8)
            continue
        h = r.get("host") or {}
        rows.append(
            first
            + [
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
        )
    tables.append(
        {
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
            "rows": rows,
            "notes": [
                f"Event F1 (a detection of the class from 0.5 s before to 1.5 s after the onset counts), "
                f"false "
                f"alarms per hour and onset latency: the device loop on a {report_stream_desc(report)} "
                f"({seeds_note}). "
                "Window error (windowed bundles only; n/a for stateful ones, which are measured on streams): "
                "overall error over one 1 s window per test clip of the run's test split, LiteRT at "
                "conversion. "
                "Host latency MEASURED on "
                f"{m['cpu']} ({m['cores']} cores, 1 thread, load {m['load_average_1min']}) on the bundles of "
                f"{report['model_sets'][0]['name']} ({_architecture_note(report)}). {_invoke_note(report)} "
                "Duty cycle = (model + front end) time per second of audio."
            ],
        }
    )

    classes = [c for c in LABELS if any(c in (r.get("per_class_error") or {}) for r in summary)]
    tables.append(
        {
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
            "notes": [seeds_note],
        }
    )

    dev_rows = []
    for d in report["devices"]:
        tag = d["profile"] + (" (estimate)" if d["estimate"] else " (measured)")
        if d.get("status") == "not available":
            dev_rows.append([d["profile"], "all", f"not available: {d['reason']}"] + [""] * 7)
            continue
        order = {n: i for i, n in enumerate(LEVEL_ORDER)}
        grouped: dict[str, list] = {}  # levels a device cannot run for the same reason share a row
        for name, c in sorted(d["levels"].items(), key=lambda kv: order.get(kv[0], 99)):
            if c["status"] != "ok":
                reason = re.sub(r"^level \S+: ", "", str(c.get("reason")))
                grouped.setdefault(f"{c['status']}: {reason}", []).append(name)
                continue
            per = {"mcu": "decision", "pi": "inference", "host": "invoke"}.get(d["kind"], "")
            ram = c.get("ram_bytes")
            flash = c.get("flash_bytes", c.get("model_bytes"))
            dev_rows.append(
                [
                    tag,
                    name,
                    f"{_fmt(c.get('latency_ms'), 3)} ms/{per}",
                    _fmt(c.get("duty_cycle") and 100 * c["duty_cycle"], 2, "%"),
                    _fmt(ram and ram / 1024, 1),
                    _fmt(flash and flash / 1024, 1),
                    "-" if c.get("fits") is None else ("yes" if c["fits"] else "DOES NOT FIT"),
                    _fmt(c.get("overall_error")),
                    _fmt(c.get("f1")),
                    _fmt(c.get("latency_median_s"), 2),
                ]
                + ([f"{c['overruns']} overruns"] if c.get("overruns") else [""])
            )
        for text, names in grouped.items():
            dev_rows.append([tag, ", ".join(names), text] + [""] * 8)
    dev_rows = [r[:10] + ([r[10]] if len(r) > 10 else [""]) for r in dev_rows]
    tables.append(
        {
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
            "rows": dev_rows,
            "notes": [
                "host: MEASURED (LiteRT, 1 thread; ms per invoke; duty cycle = model + front end per second "
                "of "
                "audio; flash = model size). Devices: ESTIMATES by firmware_sim on the first model's bundles "
                "and "
                "stream, never measured on a board. MCU: scores from tflite-micro's kernels; cycles = "
                "instruction "
                "counts of the project's C kernels on QEMU x the profile's assumed CPI; latency per decision "
                "(front end + model + smoother); RAM and flash from the memory plan (arena, audio ring, "
                "buffers, "
                "stated allowances for code and stack). Pi: the bundle in LiteRT on an emulated aarch64 "
                "core, "
                "instructions counted by QEMU x assumed CPI, latency per inference; 'error on device' = "
                "overall "
                "error of the emulated Pi's scores on the evaluation windows. Event F1 / onset latency / "
                "overruns: "
                "the device loop on the virtual device clock (each simulator's own decision hop). Rows that "
                "are "
                "not figures say why."
            ]
            + [f"{d['profile']}: {d['device']}" for d in report["devices"] if d.get("device")],
        }
    )

    curve = report.get("size_curve")
    if curve:
        kb = lambda b: _fmt(b and b / 1024, 1)  # noqa: E731
        tables.append(
            {
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
                    [
                        p["variant"],
                        p["level"],
                        p["profile"] + " (estimate)",
                        _fmt(100 * p["duty_cycle"], 1, "%"),
                        _fmt(p.get("latency_ms")),
                        kb(p.get("model_bytes")),
                        kb(p.get("arena_bytes")),
                        kb(p.get("ram_bytes")),
                        "-" if p.get("fits") is None else ("yes" if p["fits"] else "DOES NOT FIT"),
                        fmt_stat(p.get("event_f1")),
                        fmt_stat(p.get("false_alarms_per_hour"), 1),
                        _fmt(p.get("f1")),
                    ]
                    for p in sorted(curve["points"], key=lambda p: (p["profile"], p["duty_cycle"]))
                ],
                "notes": [
                    "One point per network size and rate, so a user can pick one for their chip. Duty cycle, "
                    "latency and memory: ESTIMATES by firmware_sim for the first model of each size, on its "
                    "own "
                    "test stream. Event F1 and false alarms/h: the device loop (LiteRT) on the test streams, "
                    f"{seeds_note}; event F1 on the device: tflite-micro on the first model's stream. These "
                    f"are test "
                    "figures: choose a size on validation streams (benchmarks/accuracy_vs_cycles.py), then "
                    "read "
                    "its test figures here."
                ]
                + curve["notes"],
            }
        )

    tr = report.get("training")
    if tr:
        rows = []
        for objective, s in tr["by_objective"].items():
            vs = s.get("vs_weighted_ce")
            rows.append(
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
        tables.append(
            {
                "id": "training",
                "title": "Training objectives: test error per class",
                "headers": ["objective", "runs"]
                + list(LABELS)
                + ["overall error", "macro-F1", "error reduction vs weighted-ce"],
                "rows": rows,
                "notes": [tr["note"] + "; mean ± sd over runs"],
            }
        )
    return tables


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


def _md_table(t: dict) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = [
        f"### {t['title']}",
        "",
        "| " + " | ".join(map(esc, t["headers"])) + " |",
        "|" + "---|" * len(t["headers"]),
    ]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in t["rows"]]
    lines += [""] + [n for n in t["notes"]] + [""]
    return "\n".join(lines)


def headline_markdown(report: dict) -> str:
    """The headline table alone (the demo prints it, the README shows it)."""
    return _md_table(_tables(report)[0])


def _warnings(report: dict) -> list[str]:
    return sorted(
        {f"{r['objective']} {r['level']}: {w}" for r in report["summary"] for w in r.get("warnings", [])}
    )


def render_markdown(report: dict, plots: dict) -> str:
    out = [
        f"# {report['title']}",
        "",
        f"Created {report['created_utc']} in {report['seconds']} s. " + report["metrics_note"],
        "",
    ]
    sets = report["model_sets"]
    out += [
        "Models: "
        + ", ".join(
            f"`{s['name']}` ({s['model']}, {s['objective']}, seed {s['seed']}, data {s['dataset']})"
            for s in sets
        ),
        "",
    ]
    for t in _tables(report):
        out.append(_md_table(t))
    warnings = _warnings(report)
    if warnings:
        out += ["### Warnings from conversion", ""] + [f"- {w}" for w in warnings] + [""]
    if plots:
        out += ["### Plots", ""] + [f"![{k}]({Path(v).name})" for k, v in plots.items()] + [""]
    out += ["Every number above is in report.json with the file and JSON field it came from (`sources`)."]
    return "\n".join(out) + "\n"


NUMERIC = re.compile(r"^[-+]?(\d|n/a$)")
CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
margin:24px auto;max-width:1200px;
color:#222;line-height:1.4;padding:0 16px}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right;vertical-align:top}th{background:#f0f3f7;text-align:left}td:first-child,th:first-child{text-align:left}
td.bad{color:#a33;text-align:left}td.txt{text-align:left}\
.note{color:#555;font-size:12px;max-width:1100px}img{max-width:100%;
border:1px solid #ddd;margin:6px 0}.warn{color:#8a5a00;font-size:12px}\
code{background:#f4f4f4;padding:0 3px}"""


def render_html(report: dict, plots: dict) -> str:
    e = html.escape
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(report['title'])}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(report['title'])}</h1>",
        f"<p class='note'>Created {e(report['created_utc'])} in {report['seconds']} s. "
        f"{e(report['metrics_note'])}</p>",
        "<p class='note'>Models: "
        + ", ".join(
            f"<code>{e(s['name'])}</code> ({e(str(s['model']))}, {e(s['objective'])}, seed "
            f"{e(str(s['seed']))})"
            for s in report["model_sets"]
        )
        + "</p>",
    ]
    for t in _tables(report):
        parts.append(
            f"<h2 id='{t['id']}'>{e(t['title'])}</h2><table><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in t["headers"])
            + "</tr>"
        )
        for r in t["rows"]:
            cells = []
            filled = len(r)
            while filled > 1 and r[filled - 1] == "":
                filled -= 1
            if (
                len(r) - filled < 3
            ):  # only a row that says why it has no figures gets one cell across the rest
                filled = len(r)
            for i, c in enumerate(r[:filled]):
                span = f" colspan='{len(r) - i}'" if i == filled - 1 and filled < len(r) else ""
                bad = any(
                    w in c
                    for w in (
                        "not available",
                        "cannot run",
                        "unsupported",
                        "failed",
                        "not built",
                        "DOES NOT FIT",
                        "invalid",
                        "missing",
                        "not simulated",
                    )
                )
                cls = "bad" if bad else "num" if NUMERIC.match(c) else "txt"
                cells.append(f"<td class='{cls}'{span}>{e(c)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>" + "".join(f"<p class='note'>{e(n)}</p>" for n in t["notes"]))
    warnings = _warnings(report)
    if warnings:
        parts.append(
            "<h2>Warnings from conversion</h2>" + "".join(f"<p class='warn'>{e(w)}</p>" for w in warnings)
        )
    if plots:
        parts.append("<h2>Plots</h2>")
        for name, path in plots.items():
            data = base64.b64encode(Path(path).read_bytes()).decode()
            parts.append(f"<p><img alt='{e(name)}' src='data:image/png;base64,{data}'></p>")
    parts.append(
        "<p class='note'>Every number above is in report.json with the file and JSON field it came "
        "from (<code>sources</code>).</p></body></html>"
    )
    return "\n".join(parts)


def write_report(report: dict, out: Path, plots: bool = True) -> dict:
    """report.json, report.md, report.html (+ PNGs) into ``out``; returns {name: png path}."""
    from edge_sed.core.atomic import atomic_path

    out = Path(out)
    pngs = {}
    if plots:
        pngs = draw_plots(report, out)
    report["plots"] = {k: str(v) for k, v in pngs.items()}
    write_json(report, out / "report.json")
    for name, text in (
        ("report.md", render_markdown(report, pngs)),
        ("report.html", render_html(report, pngs)),
    ):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    return pngs


# ------------------------------------------------------------ opening it as a person


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot_html(
    html_path, png_path, width: int = 1300, height: int = 3000, timeout_s: float = 120
) -> Path:
    """Render ``html_path`` with headless Chromium to ``png_path`` (what a person would see)."""
    exe = chromium()
    if not exe:
        raise EdgeSedError("no chromium on this machine: apt-get install chromium")
    png_path = Path(png_path).resolve()
    with tempfile.TemporaryDirectory(prefix="edge-sed-chromium-") as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            Path(html_path).resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if not png_path.exists():
        raise EdgeSedError(
            f"chromium wrote no screenshot (exit {proc.returncode}): "
            f"{(proc.stderr.strip().splitlines() or [''])[-1]}"
        )
    return png_path


# -------------------------------------------------------------------------- plots


def draw_plots(report: dict, out: Path) -> dict:
    """Every PNG of the report that its data allows; {name: path}."""
    pngs = {}
    for name, fn in (
        ("accuracy_vs_latency", plot_accuracy_vs_latency),
        ("accuracy_vs_cycles", plot_size_curve),
        ("per_class_error", plot_per_class_error),
        ("confusion_fp32_vs_int8", plot_confusions),
        ("training", plot_training),
    ):
        path = out / f"{name}.png"
        if fn(report, path):
            pngs[name] = path
    return pngs


def _objectives(report):
    return list(dict.fromkeys(r["objective"] for r in report["summary"]))


def plot_accuracy_vs_latency(report: dict, png: Path) -> bool:
    """One panel per device with figures: x = compute per second of audio (ms, log), y = overall
    error; one point per level (mean over seeds, one marker per objective)."""
    from edge_sed.report.plots import _pyplot, save_figure

    summary = {(r["objective"], r["level"]): r for r in report["summary"] if r["status"] == "ok"}
    panels = []
    for d in report["devices"]:
        pts = []
        for name, c in d.get("levels", {}).items():
            if c.get("status") != "ok":
                continue
            x = c.get("ms_per_s_audio")
            if x is None and c.get("duty_cycle") is not None:
                x = 1000 * c["duty_cycle"]
            if x is None:
                continue
            for objective in _objectives(report):
                r = summary.get((objective, name))
                if r and r["event_f1"]["mean"] is not None:
                    pts.append((objective, name, x, r["event_f1"]["mean"], r["event_f1"]["sd"]))
        if pts:
            panels.append((d, pts))
    if not panels:
        return False
    plt = _pyplot()
    import matplotlib.ticker

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    markers = dict(zip(_objectives(report), "os^Dv<>"))
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(LEVEL_ORDER)}
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    for ax, (d, pts) in zip(axes.ravel(), panels):
        for objective, name, x, y, sd in pts:
            ax.errorbar(
                x,
                y,
                yerr=sd or 0,
                fmt=markers[objective],
                color=colors.get(name, "k"),
                ms=7,
                capsize=3,
                label=name if objective == pts[0][0] else None,
            )
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # they overlap on a narrow range
        xs = [p[2] for p in pts]
        if max(xs) / min(xs) < 10:  # a narrow range has no decade tick: a few plain ones
            lo, hi = min(xs), max(xs)
            ax.set_xticks(
                sorted(
                    {float(f"{x:.3g}") for x in ((lo, (lo * hi) ** 0.5, hi) if hi > lo * 1.001 else (lo,))}
                )
            )
        ax.set_xlabel(
            "compute per second of audio, ms (log)" + (" - ESTIMATE" if d["estimate"] else " - measured")
        )
        ax.set_ylabel("event F1 on the test stream")
        ax.set_ylim(0, 1.02)
        ax.set_title(d["profile"], fontsize=10)
        ax.grid(alpha=0.3)
    if len(markers) > 1:
        axes.ravel()[0].legend(
            handles=[plt.Line2D([], [], marker=m, ls="", color="gray", label=o) for o, m in markers.items()],
            fontsize=7,
            loc="best",
        )
    fig.suptitle(
        "event F1 (device loop on a test stream) vs compute per device, one point per bundle", fontsize=11
    )
    fig.tight_layout()
    save_figure(fig, png)
    return True


def plot_size_curve(report: dict, png: Path) -> bool:
    """The size curve: x = MCU duty cycle (estimate), y = event F1 on the test streams (mean ± sd
    over seeds); one panel per MCU profile, one point per network size x level."""
    from edge_sed.report.plots import _pyplot, save_figure

    curve = report.get("size_curve") or {}
    pts = [p for p in curve.get("points", []) if (p.get("event_f1") or {}).get("mean") is not None]
    profiles = [n for n in curve.get("profiles", []) if any(p["profile"] == n for p in pts)]
    if not profiles:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.6 * len(profiles), 4.6), squeeze=False, sharey=True)
    keys = list(dict.fromkeys((p["architecture"], p["level"]) for p in pts))
    style = {k: (plt.cm.tab10(i % 10), "os^Dv<>P"[i % 8]) for i, k in enumerate(keys)}
    for ax, name in zip(axes.ravel(), profiles):
        for p in (p for p in pts if p["profile"] == name):
            f1 = p["event_f1"]
            color, marker = style[(p["architecture"], p["level"])]
            ax.errorbar(
                100 * p["duty_cycle"],
                f1["mean"],
                yerr=f1["sd"] or 0,
                fmt=marker,
                color=color,
                ms=7,
                capsize=3,
            )
        ax.axvline(10, ls="--", c="grey", lw=0.8)
        ax.set_xlabel("duty cycle, % of the core (ESTIMATE)")
        ax.set_xlim(0, max(11.0, 1.1 * max(100 * p["duty_cycle"] for p in pts if p["profile"] == name)))
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("event F1 on the test streams (mean ± sd)")
    fig.legend(
        handles=[
            plt.Line2D([], [], marker=m, ls="", color=c, label=f"{a} ({lv})")
            for (a, lv), (c, m) in style.items()
        ],
        loc="lower center",
        ncol=min(3, len(style)),
        fontsize=8,
    )
    fig.suptitle(
        "accuracy against device cost, one point per network size (dashed: 10 % of the core)", fontsize=11
    )
    fig.tight_layout(rect=(0, 0.06 * (1 + (len(style) - 1) // 3), 1, 1))
    save_figure(fig, png)
    return True


def plot_per_class_error(report: dict, png: Path) -> bool:
    from edge_sed.report.plots import _pyplot, save_figure

    rows = [r for r in report["summary"] if r["status"] == "ok" and r["per_class_error"]]  # clip-level rows
    objectives = [o for o in _objectives(report) if any(r["objective"] == o for r in rows)]
    if not rows:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(len(objectives), 1, figsize=(11, 3.3 * len(objectives)), squeeze=False)
    for ax, objective in zip(axes[:, 0], objectives):
        rs = [r for r in rows if r["objective"] == objective]
        classes = [c for c in LABELS if c in rs[0]["per_class_error"]]
        x = np.arange(len(rs))
        width = 0.8 / len(classes)
        for k, c in enumerate(classes):
            means = [r["per_class_error"][c]["mean"] or 0 for r in rs]
            sds = [r["per_class_error"][c]["sd"] or 0 for r in rs]
            ax.bar(
                x + (k - (len(classes) - 1) / 2) * width,
                means,
                width,
                label=c,
                **({"yerr": sds, "capsize": 2} if any(sds) else {}),
            )
        ax.set_xticks(x, [r["level"] for r in rs], fontsize=8)
        ax.set_ylabel("error (1 - recall)")
        n = rs[0]["sets"]
        ax.set_title(
            f"{objective}: per-class test error per level" + (f" (mean ± sd, {n} seeds)" if n > 1 else ""),
            fontsize=10,
        )
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=len(classes))
    fig.tight_layout()
    save_figure(fig, png)
    return True


def plot_confusions(report: dict, png: Path) -> bool:
    """fp32 vs int8 confusion matrices (test split, summed over seeds), row-normalised colour,
    counts written in."""
    from edge_sed.report.plots import _pyplot, save_figure

    objectives = _objectives(report)
    panels = []
    for objective in objectives:
        for level in ("fp32", "int8"):
            mats = [
                s["levels"][level]["clip"]["confusion_matrix"]
                for s in report["model_sets"]
                if s["objective"] == objective
                and s["levels"].get(level, {}).get("status") == "ok"
                and s["levels"][level]["clip"].get("confusion_matrix")
            ]
            if mats:
                panels.append((objective, level, np.sum(np.asarray(mats), axis=0), len(mats)))
    if not panels:
        return False
    plt = _pyplot()
    labels = list(LABELS)
    cols = 2
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    for ax, (objective, level, cm, n) in zip(axes.ravel(), panels):
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{cm[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if norm[i, j] > 0.6 else "black",
                )
        ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{objective} {level}" + (f" ({n} seeds summed)" if n > 1 else ""), fontsize=9)
    fig.suptitle("confusion matrices, test split: fp32 vs int8", fontsize=10)
    fig.tight_layout()
    save_figure(fig, png)
    return True


def plot_training(report: dict, png: Path) -> bool:
    """Per-class test error of each objective (bars: mean over seeds, dots: single seeds)."""
    from edge_sed.report.plots import _pyplot, save_figure

    tr = report.get("training")
    if not tr or not tr["runs"]:
        return False
    plt = _pyplot()
    objectives = list(tr["by_objective"])
    classes = list(LABELS) + ["overall"]
    fig, ax = plt.subplots(figsize=(8.5, 3.6))
    width = 0.8 / len(objectives)
    x = np.arange(len(classes))
    for k, objective in enumerate(objectives):
        s = tr["by_objective"][objective]
        stats = [s["per_class_error"].get(c) for c in LABELS] + [s["overall_error"]]
        pos = x + (k - (len(objectives) - 1) / 2) * width
        ax.bar(
            pos,
            [(st or {}).get("mean") or 0 for st in stats],
            width,
            label=f"{objective} ({s['runs']} runs)",
            alpha=0.8,
        )
        for r in (r for r in tr["runs"] if r["objective"] == objective):
            vals = [r["per_class_error"].get(c) for c in LABELS] + [r["overall_error"]]
            ax.scatter(pos, [v if v is not None else np.nan for v in vals], s=10, color="k", zorder=3)
    ax.set_xticks(x, classes)
    ax.set_ylabel("test error (1 - recall)")
    ax.set_title("training objectives: per-class test error (bars: mean, dots: seeds)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, png)
    return True
