"""The Raspberry Pi simulator: the exact bundle, run by LiteRT on emulated ARM.

For a Pi profile (firmware_sim/profiles/rpi-*.json, kind "pi") and one or more bundles:
1. the bundle runs in an emulated aarch64 Debian userland (firmware_sim.pi_root: Debian arm64
   python3, the aarch64 ai-edge-litert and numpy wheels, qemu-aarch64 -cpu <the profile's core>)
   on the given windows, through the same ``edge_sed.bundle.BundleRunner`` a Pi runs
   (firmware_sim/pi_guest.py);
2. its scores are compared with the host's LiteRT run of the same windows (max |difference|,
   top-1 agreement) and scored against the labels (accuracy on the test split);
3. QEMU's TCG plugin counts the guest instructions of every ``invoke()`` (model only), every
   ``predict()`` (model + the Python glue around it) and every audio block pushed through the
   device loop (``edge_sed.loop.Detector``: front end + model + smoother), between markers
   dropped by the guest — so Python's and LiteRT's start-up are not in the figures;
4. ESTIMATED time = instructions x the profile's CPI / its clock, one thread. It is an estimate
   from emulated instruction counts and an assumed CPI (see each profile's "sources"), not a
   measurement on a board: QEMU counts the instructions the ARM code executes (with the CPU
   features of that core, e.g. the A76's dot product), not cycles, caches or memory.

``measure_pi`` does 1-3 for one emulated CPU, ``simulate_pi`` for bundles x profiles, and
``loop_costs`` turns a measurement into the per-frame and per-inference costs the virtual device
clock (firmware_sim.clock, shared with the MCU simulator) charges. Entry point for the
``edge-sed simulate`` command: ``simulate_pi``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_sed.bundle import BundleRunner, load_bundle
from edge_sed.errors import EdgeSedError

from . import pi_root
from .profiles import DeviceProfile, load_profiles

GUEST_SCRIPT = Path(__file__).with_name("pi_guest.py")
DEFAULT_LEVELS = ("fp32", "fp16", "dynamic-int8", "int8")
KIND_EMPTY, KIND_INVOKE, KIND_PREDICT, KIND_BLOCK = 1, 2, 3, 4  # as in pi_guest.py
KINDS = {KIND_INVOKE: "invoke", KIND_PREDICT: "predict", KIND_BLOCK: "block"}
LOOP_AUDIO_S = 3.0
ESTIMATE_NOTE = ("estimated ms = emulated instructions x assumed CPI / clock (1 thread): an estimate from "
                 "QEMU TCG instruction counts on the profile's core, not a measurement on a board")


def parse_marks(text: str) -> tuple[dict, int]:
    """Marker log of pi_marks.c -> ({(kind, bundle): [instructions of each region]}, total).
    A region's count excludes the markers: one marker's own cost (measured on empty regions)
    and that of every marker nested inside it (an invoke inside a predict)."""
    events, total = [], None
    for line in text.splitlines():
        a, b = line.split()
        if a == "total":
            total = int(b)
        else:
            events.append((int(a), int(b)))
    stack, raw = [], {}
    for tag, count in events:
        key, end = divmod(tag >> 1, 64), tag & 1
        key = (key[0], key[1])
        if not end:
            stack.append([key, count, 0])
            continue
        if not stack or stack[-1][0] != key:
            raise EdgeSedError(f"instruction markers out of order at tag {tag}")
        k, start, inner = stack.pop()
        raw.setdefault(k, []).append((count - start, inner))
        if stack:
            stack[-1][2] += inner + 2
    empty = [d for d, _ in raw.pop((KIND_EMPTY, 0), [])]
    per_mark = float(np.median(empty)) if empty else 0.0
    regions = {k: [d - per_mark * (1 + inner) for d, inner in v] for k, v in raw.items()}
    return regions, total


def measure_pi(bundle_paths: list, cpu: str, windows: np.ndarray | None = None, audio: np.ndarray | None = None,
               block_samples: int = 320, log=None) -> dict:
    """Run the bundles in the emulated Pi on ``cpu`` (a QEMU -cpu name) with instruction counting.
    Returns {"cpu", "seconds", "total_insns", "bundles": [{"scores", "invoke", "predict",
    "blocks"}...]} (instruction counts per region, arrays)."""
    root = pi_root.ensure_root(log)
    plugin = pi_root.ensure_plugins(log)["marks"]
    with tempfile.TemporaryDirectory(prefix="edge-sed-pi-") as tmp:
        tmp = Path(tmp)
        app = pi_root.stage_edge_sed(tmp / "app")
        shutil.copy2(GUEST_SCRIPT, tmp / "pi_guest.py")
        req = {"bundles": [str(Path(p).resolve()) for p in bundle_paths], "out": str(tmp / "out.json"),
               "block_samples": block_samples, "threads": 1}
        if windows is not None:
            np.save(tmp / "windows.npy", np.asarray(windows, np.float32))
            req["windows"] = str(tmp / "windows.npy")
        if audio is not None:
            np.save(tmp / "audio.npy", np.asarray(audio, np.float32))
            req["audio"] = str(tmp / "audio.npy")
        (tmp / "request.json").write_text(json.dumps(req))
        cmd, env = pi_root.guest_command(root, ["python3", str(tmp / "pi_guest.py"), str(tmp / "request.json")],
                                         cpu, plugin, f"out={tmp / 'marks.txt'}", extra_path=[str(app)])
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or not (tmp / "out.json").exists():
            lines = [l for l in proc.stderr.strip().splitlines() if l.strip()] or ["no output"]
            raise pi_root.PiRootError(f"the emulated Pi run ({cpu}) failed (exit {proc.returncode}): {lines[-1]}")
        out = json.loads((tmp / "out.json").read_text())
        regions, total = parse_marks((tmp / "marks.txt").read_text())
    bundles = []
    for b, res in enumerate(out["results"]):
        entry = {"bundle": res["bundle"], "scores": np.asarray(res.get("scores", []), np.float32)}
        for kind, name in KINDS.items():
            entry[name] = np.asarray(regions.get((kind, b), []), np.float64)
        entry["block_work"] = np.asarray(res.get("blocks", []), np.int64).reshape(-1, 3)  # frames, inferences, decisions
        bundles.append(entry)
    if out.get("machine") != "aarch64":
        raise pi_root.PiRootError(f"the guest reported machine {out.get('machine')!r}, not aarch64")
    return {"cpu": cpu, "seconds": seconds, "total_insns": total, "bundles": bundles}


def per_inference(counts: np.ndarray) -> float:
    """Instructions of one inference: the median, leaving out the first (one-time set-up on the
    first invoke, e.g. kernel workspace allocation)."""
    counts = np.asarray(counts, np.float64)
    if counts.size == 0:
        return float("nan")
    return float(np.median(counts[1:] if counts.size > 1 else counts))


def loop_costs(entry: dict) -> dict:
    """Per-frame and per-inference instructions of the device loop, from the blocks pushed
    through Detector: blocks without an inference give the front end's (and the loop's) cost
    per frame; the rest of a block with inferences is the model + smoother per inference."""
    work, insns = entry["block_work"], entry["block"]
    if len(work) == 0:
        return {}
    frames, infer = work[:, 0], work[:, 1]
    quiet = (infer == 0) & (frames > 0)
    frame = float(np.median(insns[quiet] / frames[quiet])) if quiet.any() else 0.0
    busy = infer > 0
    inference = float(np.median((insns[busy] - frame * frames[busy]) / infer[busy])) if busy.any() else 0.0
    return {"frame_insns": frame, "inference_insns": inference, "blocks": int(len(work))}


def estimate_ms(insns: float, profile: DeviceProfile) -> float:
    """ESTIMATED milliseconds on the profile's core (one thread): instructions x CPI / clock."""
    return insns * profile.cpi / profile.clock_hz * 1e3


def resolve_bundles(path, levels=DEFAULT_LEVELS) -> list[Path]:
    """A bundle directory, or a bundles directory: its levels in ``levels`` ("all": every one)."""
    path = Path(path)
    if (path / "manifest.json").exists():
        return [path]
    if not path.is_dir():
        raise EdgeSedError(f"{path}: not a bundle or bundles directory")
    found = {p.name: p for p in sorted(path.iterdir()) if (p / "manifest.json").exists() and not p.name.startswith(".")}
    if not found:
        raise EdgeSedError(f"{path}: no manifest.json here or in its sub-directories: not a bundle")
    if levels == "all" or levels == ("all",):
        return list(found.values())
    wanted = [l for l in levels if l in found]
    if not wanted:
        raise EdgeSedError(f"{path}: none of the levels {', '.join(levels)} (has {', '.join(found)})")
    return [found[l] for l in wanted]


def test_windows(bundle_path, data: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(windows, labels, description). data=None: the bundle's check.npz (a few test windows
    stored at conversion); "run": the test split of the data set in the bundle's provenance;
    otherwise a data set path (split as at training, by the provenance's ratio and seed)."""
    bundle = load_bundle(bundle_path)
    if data is None:
        check = bundle.check_data()
        if check is None:
            raise EdgeSedError(f"{bundle_path}: no check.npz; give --data run or a data set")
        return check["x"], check["y"], f"{len(check['x'])} check windows of {bundle_path} (check.npz)"
    try:
        from train.data import load_splits
    except ImportError as exc:
        raise EdgeSedError(f"--data needs the project's train package (pip install 'edge-sed[train]'): {exc}") from None
    prov = bundle.manifest["provenance"]
    source = prov.get("dataset") if data == "run" else data
    if not source:
        raise EdgeSedError(f"{bundle_path}: the manifest records no data set; give --data PATH")
    split = load_splits(source, prov.get("ratio"), prov.get("seed", 0), prov.get("synth_counts") or "120:120:60:1560")["test"]
    return split.x, split.y, f"test split of {source} ({len(split.x)} windows)"


def loop_audio(seconds: float = LOOP_AUDIO_S, seed: int = 0) -> np.ndarray:
    """A few seconds of synthetic audio for counting the device loop's per-frame cost (the cost
    does not depend on what is heard; an event clip keeps the smoother busy anyway)."""
    from edge_sed.synth import make_clip

    return make_clip("dog", 0, seed, clip_s=seconds)[0]


def simulate_pi(bundle, profiles="pi", levels=DEFAULT_LEVELS, data: str | None = None, log=None,
                progress=None) -> dict:
    """Every (level, Pi profile): model bytes, instructions per inference (emulated), estimated
    ms, score agreement with the host's LiteRT and accuracy on the windows. Profiles with the
    same core share one emulated run. Returns a JSON-able report."""
    if isinstance(profiles, str):
        profiles = load_profiles(profiles)
    profiles = [p for p in profiles if p.kind == "pi"]
    if not profiles:
        raise EdgeSedError("no Pi profile given (known: rpi-zero-2w, rpi-4, rpi-5, or 'pi' for all)")
    paths = resolve_bundles(bundle, levels)
    x, y, what = test_windows(paths[0], data)
    bundles = [load_bundle(p) for p in paths]
    labels = bundles[0].labels
    from edge_sed.metrics import classification_metrics

    host = [BundleRunner(b).predict_many(x) for b in bundles]
    audio = loop_audio()
    cpus = sorted({p.qemu_cpu for p in profiles})
    runs = {}
    for n, cpu in enumerate(cpus):
        if log:
            log(f"pi: emulating {cpu}: {len(bundles)} bundle(s) x {len(x)} windows + {LOOP_AUDIO_S:.0f} s of device loop")
        runs[cpu] = measure_pi(paths, cpu, x, audio, block_samples=profiles[0].dma_block_samples, log=log)
        if progress:
            progress(n + 1, len(cpus))
    rows = []
    for b, bundle in enumerate(bundles):
        for p in profiles:
            e = runs[p.qemu_cpu]["bundles"][b]
            diff = np.abs(e["scores"] - host[b])
            m = classification_metrics(y, e["scores"].argmax(1), labels)
            invoke, predict = per_inference(e["invoke"]), per_inference(e["predict"])
            loop = loop_costs(e)
            rows.append({
                "level": bundle.level, "form": bundle.form, "bundle": str(bundle.path), "profile": p.name,
                "cpu": p.qemu_cpu, "model_bytes": len(bundle.model_bytes),
                "insns_per_inference": invoke, "insns_per_predict": predict,
                "insns_spread": float((e["invoke"][1:].max() - e["invoke"][1:].min()) / invoke) if len(e["invoke"]) > 2 else 0.0,
                "est_ms_per_inference": estimate_ms(invoke, p), "est_ms_per_predict": estimate_ms(predict, p),
                "loop_frame_insns": loop.get("frame_insns"), "loop_inference_insns": loop.get("inference_insns"),
                "est_ms_per_frame": estimate_ms(loop.get("frame_insns", 0.0), p),
                "max_abs_diff_vs_host": float(diff.max()),
                "top1_agreement": float((e["scores"].argmax(1) == host[b].argmax(1)).mean()),
                "overall_error": m["overall_error"], "macro_f1": m["macro_f1"],
                "host_overall_error": classification_metrics(y, host[b].argmax(1), labels)["overall_error"],
            })
    return {"note": ESTIMATE_NOTE, "windows": what, "n_windows": int(len(x)),
            "profiles": {p.name: {"core": p.core, "qemu_cpu": p.qemu_cpu, "clock_hz": p.clock_hz, "cpi": p.cpi}
                         for p in profiles},
            "emulation": {cpu: {"seconds": r["seconds"], "total_insns": r["total_insns"]} for cpu, r in runs.items()},
            "rows": rows}


def format_table(report: dict) -> str:
    lines = [f"Pi simulator: {report['windows']}; {report['note']}.",
             f"{'level':<13} {'profile':<12} {'bytes':>8} {'insns/inf':>11} {'est ms':>8} {'+glue ms':>8} "
             f"{'max|d|':>8} {'top1':>6} {'err':>6} {'F1':>6}"]
    for r in report["rows"]:
        lines.append(f"{r['level']:<13} {r['profile']:<12} {r['model_bytes']:>8} {r['insns_per_inference']:>11,.0f} "
                     f"{r['est_ms_per_inference']:>8.2f} {r['est_ms_per_predict']:>8.2f} {r['max_abs_diff_vs_host']:>8.1e} "
                     f"{r['top1_agreement']:>6.1%} {r['overall_error']:>6.3f} {r['macro_f1']:>6.3f}")
    return "\n".join(lines)
