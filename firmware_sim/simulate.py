"""``edge-sed simulate``: bundles x device profiles on a labelled stream -> one record per
(bundle level, profile), printed as a table per device and written as JSON.

Dispatch by profile kind: "mcu" -> firmware_sim.mcu (this package); "pi" -> firmware_sim.pi,
when that module exists, through the same call:
    simulate_profile(model, profile, audio, annotations, stream_info, progress=None) -> dict
where ``model = prepare(bundle)`` is built once per bundle by the kind's module (``McuModel``
here) so that work shared by all profiles (arena search, traces) is done once.

JSON (``--out``, default simulate.json): {"format": "edge-sed-simulate/1", "stream": {...},
"calibration": {...DS-CNN check...}, "records": [record, ...]}; a record has at least
"kind", "bundle", "level", "form", "profile", and either the figures, "skipped": reason or
"error": message (a device whose simulation failed; the others still run).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

from edge_sed.core.audio_io import read_audio
from edge_sed.core.bundle import MANIFEST_FILE, load_bundle
from edge_sed.core.errors import EdgeSedError
from edge_sed.core.events import read_annotations

from .mcu import MCU_LEVELS
from .profiles import load_profiles


FORMAT = "edge-sed-simulate/1"
AUDIO_SUFFIXES = {".wav", ".flac"}


def find_bundles(path: Path) -> list[Path]:
    """A bundle directory, or a directory of bundles (convert's output)."""
    path = Path(path)
    if (path / MANIFEST_FILE).is_file():
        return [path]
    found = sorted(p.parent for p in path.glob(f"*/{MANIFEST_FILE}"))
    if not found:
        raise EdgeSedError(f"{path}: neither a bundle (no {MANIFEST_FILE}) nor a folder of bundles")
    return found


def load_stream(
    spec: str | Path,
    duration_s: float = 600.0,
    n_events: int = 60,
    seed: int = 0,
    annotations_path: str | Path | None = None,
):
    """(audio, annotations, info). A .wav/.flac with its annotation CSV (default <stem>.csv), or a
    split CSV / data set folder from which edge_sed.data.streams.make_stream builds a stream."""
    spec = Path(spec)
    if spec.suffix.lower() in AUDIO_SUFFIXES:
        ann = Path(annotations_path) if annotations_path else spec.with_suffix(".csv")
        if not ann.is_file():
            raise EdgeSedError(
                f"{spec}: no annotation file {ann} (onset_s,offset_s,label); give --annotations"
            )
        audio = read_audio(spec)
        annotations = read_annotations(ann)
        info = {"source": str(spec), "annotations": str(ann)}
    elif spec.exists():
        from edge_sed.data.streams import make_stream

        audio, annotations = make_stream(spec, duration_s, n_events, seed=seed)
        info = {
            "source": str(spec),
            "built_with": "edge_sed.data.streams.make_stream",
            "seed": seed,
            "requested_events": n_events,
        }
    else:
        raise EdgeSedError(
            f"{spec}: no such stream (a .wav/.flac with <stem>.csv, a split CSV or a data set)"
        )
    info.update(
        {
            "duration_s": len(audio) / 16000,
            "events": len(annotations),
            "events_per_label": {
                l: sum(a.label == l for a in annotations) for l in sorted({a.label for a in annotations})
            },
        }
    )
    return np.asarray(audio, np.float32), annotations, info


def _kind_module(kind: str):
    name = {"mcu": "firmware_sim.mcu", "pi": "firmware_sim.pi"}[kind]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def run(
    bundle_path,
    profile_spec: str,
    stream,
    duration_s=600.0,
    n_events=60,
    seed=0,
    annotations_path=None,
    log=None,
    progress=None,
) -> dict:
    """Simulate every bundle under ``bundle_path`` on every profile of ``profile_spec``;
    ``progress(done, total)`` follows the blocks of the stream being traced."""
    from .calibrate import dscnn_check, load_counts

    profiles = load_profiles(profile_spec)
    if not profiles:
        raise EdgeSedError(f"no device profile matches {profile_spec!r}")
    bundles = [load_bundle(p) for p in find_bundles(bundle_path)]
    audio, annotations, info = load_stream(stream, duration_s, n_events, seed, annotations_path)
    records = []
    for bundle in bundles:
        prepared = {}
        for profile in profiles:
            base = {
                "kind": profile.kind,
                "bundle": str(bundle.path),
                "level": bundle.level,
                "form": bundle.form,
                "profile": profile.name,
            }
            module = _kind_module(profile.kind)
            if module is None:
                records.append(
                    {**base, "skipped": f"no simulator for kind {profile.kind!r} (firmware_sim.pi not built)"}
                )
                continue
            if profile.kind == "mcu" and bundle.level not in MCU_LEVELS:
                records.append(
                    {
                        **base,
                        "skipped": f"level {bundle.level}: the MCU simulator runs full-integer int8 bundles",
                    }
                )
                continue
            try:
                if profile.kind not in prepared:
                    if log:
                        log(f"{bundle.path.name}: preparing for {profile.kind} profiles")
                    prepared[profile.kind] = module.prepare(bundle)
                if log:
                    log(f"{bundle.path.name} on {profile.name}")
                records.append(
                    module.simulate_profile(
                        prepared[profile.kind], profile, audio, annotations, info, progress=progress
                    )
                )
            except EdgeSedError as exc:  # one device failing must not lose the others' figures
                if len(bundles) * len(profiles) == 1:
                    raise
                if log:
                    log(f"{bundle.path.name} on {profile.name}: error: {exc}")
                records.append({**base, "error": str(exc)})
    counts = load_counts()
    return {
        "format": FORMAT,
        "stream": info,
        "records": records,
        "calibration": {
            "counts": "firmware_sim/c/counts.json",
            "toolchain": counts.get("toolchain"),
            "qemu": counts.get("qemu"),
            "dscnn": dscnn_check(counts),
        },
    }


def _kb(n) -> str:
    return f"{n / 1024:.1f} KB"


def format_tables(report: dict) -> str:
    """A plain-text table per device."""
    lines = []
    s = report["stream"]
    lines.append(f"stream: {s['source']} ({s['duration_s']:.0f} s, {s['events']} events)")
    for r in report["records"]:
        lines.append("")
        lines.append(f"== {r['profile']} ({r['kind']}) | {Path(r['bundle']).name}: {r['level']} {r['form']}")
        if "skipped" in r or "error" in r:
            lines.append(
                f"   {'skipped' if 'skipped' in r else 'error'}: {r.get('skipped') or r.get('error')}"
            )
            continue
        if r["kind"] != "mcu":
            for key in ("summary", "verdict"):
                if key in r:
                    lines.append(f"   {r[key]}")
            ev, ck = r.get("events", {}), r.get("clock", {})
            if ev:
                lines.append(
                    f"   event F1 {ev.get('f1', float('nan')):.3f}, "
                    f"error rate {ev.get('error_rate', float('nan')):.3f}"
                )
            if ck:
                lines.append(
                    f"   duty cycle {ck.get('duty_cycle', float('nan')):.1%}, overruns {ck.get('overruns')}"
                )
            continue
        m, c, ck, ev = r["memory"], r["cost"], r["clock"], r["events"]
        lines.append(f"   {r['device']}")
        lines.append(f"   memory      {m['verdict']}")
        lines.append(
            f"               RAM {_kb(m['ram_total_bytes'])} of {_kb(m['ram_bytes'])}: "
            + ", ".join(f"{k} {_kb(v)}" for k, v in m["ram"].items())
        )
        lines.append(
            f"               flash {_kb(m['flash_total_bytes'])} of {_kb(m['flash_bytes'])}: "
            + ", ".join(f"{k} {_kb(v)}" for k, v in m["flash"].items())
        )
        lines.append(
            f"   per decision {c['cycles_per_decision'] / 1e6:.2f} M cycles = {c['ms_per_decision']:.2f} ms "
            f"(model {c['model_ms_per_decision']:.2f} ms, {c['invokes_per_decision']:.1f} invokes, "
            f"{c['frames_per_decision']:.0f} front-end frames at "
            f"{c['frontend_cycles_per_frame'] / 1e3:.1f} k cycles); "
            f"{c['decisions_per_s']:.2f} decisions/s"
        )
        lines.append(
            f"   clock       duty cycle {ck['duty_cycle']:.1%}; "
            f"overruns {ck['overruns']} of {ck['blocks']} blocks "
            f"(done after the next block arrived; a {m['audio_ring_blocks']}-block ring absorbs them); "
            f"dropped blocks {ck['dropped_blocks']}; worst decision latency "
            f"{ck['decision_latency_worst_ms']:.1f} ms; RAM high-water {_kb(r['ram_high_water_bytes'])}"
        )
        lat = ev.get("latency_median_s")
        lines.append(
            f"   events      F1 {ev['f1']:.3f}, error rate {ev['error_rate']:.3f}, P {ev['precision']:.3f} "
            f"R {ev['recall']:.3f}, onset->detection latency median "
            + (f"{lat * 1e3:.0f} ms, p95 {ev['latency_p95_s'] * 1e3:.0f} ms" if lat is not None else "n/a")
            + f", false alarms {ev['false_alarms_per_hour']:.1f}/h"
        )
        goals = ", ".join(f"{k} {'met' if g['met'] else 'NOT met'}" for k, g in r["goals"].items())
        lines.append(f"   goals       {goals}")
    d = report["calibration"]["dscnn"]
    lines.append("")
    lines.append(
        "cost model check, MLPerf Tiny KWS DS-CNN: "
        + "; ".join(
            f"{x['device']} {x['estimated_ms']:.1f} ms vs {x['published_ms']:.0f} ms published "
            f"(ratio {x['ratio']:.2f})"
            for x in d["devices"]
        )
    )
    return "\n".join(lines)


def list_profiles_text() -> str:
    lines = []
    for p in load_profiles("all"):
        ram = p.ram_bytes / 1024
        flash = f"{p.flash_bytes / 1024:.0f} KB flash" if p.flash_bytes else "no flash limit"
        lines.append(
            f"{p.name:20s} {p.kind:4s} {p.clock_hz / 1e6:6.0f} MHz  {ram:9.0f} KB RAM  {flash:16s} "
            f"cpi {p.data.get('cpi', '-')}  {p.description}"
        )
    return "\n".join(lines)


def dumps(report: dict) -> str:
    return json.dumps(report, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
