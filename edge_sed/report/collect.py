"""The report's first stage: collect and measure. Reads the convert outputs (one directory per
trained model, ``<dir>/<level>/`` bundles plus ``convert-report.json``), measures what has to be
measured on this machine, and asks the device simulator (when one is given) for its estimates.

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
- device latency, memory, fits, duty cycle: ESTIMATES from the simulator (firmware_sim's, which
  the CLI and the demo pass in), written to ``measurements/simulate*.json``; a level a device
  cannot run is shown with the reason.

numpy only at import; LiteRT is loaded when a bundle runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_sed.core.atomic import write_json
from edge_sed.core.bundle import MANIFEST_FILE, load_bundle
from edge_sed.core.errors import DatasetError, EdgeSedError, install_extra
from edge_sed.core.settings import BACKGROUND, BUNDLE_NAMES
from edge_sed.eval.bench import DECISION_HOP_FRAMES, bundle_dirs, measure_latency

LEVEL_ORDER = BUNDLE_NAMES
"""The bundles ``edge-sed convert`` writes, in the order the report lists them."""
CONVERT_REPORT = "convert-report.json"
STREAM_S = 240.0
STREAM_EVENTS = 40
MEAS = "measurements"
NO_DEVICES = ("", "none", "host")
"""``profiles`` values that ask for the host only."""


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


def test_clips(data: str | None, provenance: dict):
    """(clips, description): the test split of the run a bundle came from, ``data`` (or the run's
    own data set) split as the trainer split it (edge_sed.data.datasets.run_clip_splits with the
    run's ratio and seed), or test.csv of a prepared-splits folder. A synthetic run's set is looked
    for in the cache, not made."""
    from edge_sed.data.datasets import data_source, is_prepared_splits, run_clip_splits

    source = data or provenance.get("dataset")
    if not source:
        raise DatasetError("no data for the stream: give --data (the bundles' provenance names none)")
    seed = int(provenance.get("seed") or 0)
    source = data_source(source, seed, provenance.get("synth_counts"), make=False)
    if not source.exists():
        raise DatasetError(f"{source}: the data for the stream is not on this machine (give --data)")
    ratio = provenance.get("ratio")
    clips = run_clip_splits(source, ratio, seed, names=("test",))["test"]
    if is_prepared_splits(source):
        return clips, str(source / "test.csv")
    return clips, f"{source} (test split: ratio {ratio}, seed {provenance.get('seed')})"


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


# ------------------------------------------------------------------ the collect steps


def set_record(s: ModelSet, objective: str) -> dict:
    """One model set as report.json lists it: provenance and, per level, the manifest's figures."""
    rec = {
        "name": s.name,
        "path": str(s.path),
        "objective": objective,
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
    return rec


def _set_stream(s: ModelSet, data, meas_dir: Path, stream_s: float, stream_events: int, say) -> dict:
    """The labelled test stream of one model set, or {"error": why not}."""
    try:
        audio, ann, wav, described = make_test_stream(data, s.provenance, meas_dir, stream_s, stream_events)
    except EdgeSedError as exc:
        say(f"stream for {s.name}: not available: {exc}")
        return {"error": str(exc)}
    say(f"stream for {s.name}: {len(audio) / 16000:.0f} s, {len(ann)} events from {described} -> {wav}")
    return {
        "audio": audio,
        "annotations": ann,
        "wav": str(wav),
        "from": described,
        "events": len(ann),
        "duration_s": len(audio) / 16000,
    }


def _level_stream(s: ModelSet, name: str, info: dict, meas_dir: Path) -> dict:
    """One level's device loop over its set's stream, written to measurements/stream-*.json."""
    if "error" in info:
        return {"status": "not available", "reason": info["error"]}
    meas = run_stream(s.levels[name]["bundle"], info["audio"], info["annotations"])
    meas.update(bundle=s.levels[name]["path"], stream=info["wav"], stream_from=info["from"])
    path = meas_dir / f"stream-{s.name.replace('/', '_')}-{name}.json"
    write_json(meas, path)
    return _stream_record(meas, path)


def measure_streams(
    sets, set_records, data, meas_dir: Path, stream_s: float, stream_events: int, say, progress=None
) -> dict:
    """Stream accuracy (the device loop on LiteRT) of every ok level, into each level's record;
    returns {set name: its stream (audio and annotations included) or {"error": why not}}."""
    streams = {}
    jobs = [
        (s, rec, name)
        for s, rec in zip(sets, set_records)
        for name, lv in s.levels.items()
        if lv["status"] == "ok"
    ]
    for k, (s, rec, name) in enumerate(jobs):
        if s.name not in streams:
            streams[s.name] = _set_stream(s, data, meas_dir, stream_s, stream_events, say)
        rec["levels"][name]["stream"] = _level_stream(s, name, streams[s.name], meas_dir)
        if progress:
            progress(k + 1, len(jobs))
    return streams


def measure_host(first: ModelSet, meas_dir: Path, rounds: int, say) -> tuple[dict | None, Path]:
    """Host latency of the first set's bundles, interleaved; (measurement or None, its file)."""
    ok_paths = [lv["path"] for lv in first.levels.values() if lv["status"] == "ok"]
    say(f"measuring host latency of {len(ok_paths)} bundles of {first.name}, interleaved")
    host = measure_latency(ok_paths, rounds=rounds) if ok_paths else None
    host_path = meas_dir / "host-latency.json"
    if host:
        write_json(host, host_path)
    return host, host_path


def host_device(first: ModelSet, host: dict | None, host_path: Path, first_record: dict) -> dict:
    """The host as a device of the device table: measured, the first set's bundles."""
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


def _simulate(simulator, model_set: ModelSet, wav, profiles: str, out_path: Path, say, pi_levels=None):
    """(devices, None) from the simulator, or ([], why there are none)."""
    if simulator is None:
        return [], f"no device simulator was given to the report; {install_extra('sim')}"
    return simulator.devices(model_set, wav, profiles, out_path, say, pi_levels)


def device_estimates(
    first: ModelSet, streams: dict, profiles: str, meas_dir: Path, say, pi_levels, simulator
) -> list[dict]:
    """The simulator's devices for the first set, on its stream; one "not available" device that
    says why when there are none."""
    say(f"simulating {first.name} on device profiles '{profiles}' (firmware_sim)")
    wav = (streams.get(first.name) or {}).get("wav")
    devices, why_none = _simulate(simulator, first, wav, profiles, meas_dir / "simulate.json", say, pi_levels)
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
    return devices


CURVE_FIELDS = (
    "duty_cycle",
    "latency_ms",
    "ram_bytes",
    "flash_bytes",
    "arena_bytes",
    "fits",
    "f1",
    "overruns",
)
"""A device cell's figures that a size-curve point keeps."""


def _curve_points(label: str, s: ModelSet, devices: list) -> list[dict]:
    return [
        {
            "variant": label,
            "architecture": s.architecture,
            "set": s.name,
            "profile": d["profile"],
            "level": level,
            **{key: c.get(key) for key in CURVE_FIELDS},
            "sources": {key: v for key, v in c.get("sources", {}).items() if key in CURVE_FIELDS},
        }
        for d in devices
        for level, c in d.get("levels", {}).items()
        if c.get("status") == "ok" and c.get("duty_cycle") is not None
    ]


def size_curve(
    sets, variant: dict, streams: dict, first_mcu: list, profiles: str, meas_dir: Path, say, simulator
) -> dict | None:
    """Accuracy against device cost, one point per architecture x MCU profile x level (issue 15):
    the first set of each architecture is simulated on the MCU profiles on its own stream (the
    first set's figures are the device table's). None without an MCU profile or a simulator."""
    chosen = simulator.profiles(profiles) if simulator else []
    mcu = ",".join(p.name for p in chosen if p.kind == "mcu")
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
            wav = (streams.get(s.name) or {}).get("wav")
            out_path = meas_dir / f"simulate-{re.sub(r'[^A-Za-z0-9._-]', '_', s.name)}.json"
            devs, why = _simulate(simulator, s, wav, mcu, out_path, say)
            if why:
                notes.append(f"{label}: not simulated: {why}")
        points += _curve_points(label, s, devs)
    return {"profiles": mcu.split(","), "points": points, "notes": notes}
