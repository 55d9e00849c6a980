"""The Raspberry Pi simulator: the exact bundle, run by LiteRT on emulated ARM, and the device loop
on the virtual device clock with costs counted under that emulation.

For a Pi profile (firmware_sim/profiles/rpi-*.json, kind "pi") and a bundle:
1. the bundle runs in an emulated aarch64 Debian userland (firmware_sim.pi_root: Debian arm64
   python3, the aarch64 ai-edge-litert and numpy wheels, ``qemu-aarch64 -cpu <the profile's
   core>``) through the same ``edge_sed.core.bundle.BundleRunner`` a Pi runs (firmware_sim/pi_guest.py),
   on evaluation windows (the test split of the bundle's data set when it is on this machine,
   else the bundle's check.npz windows) and on a few seconds of the stream through
   ``edge_sed.core.loop.Detector``;
2. its scores are compared with the host's LiteRT run of the same windows (max |difference|,
   top-1 agreement, within ``edge_sed.core.bundle.output_tolerance``) and scored against the labels;
3. a QEMU TCG plugin (pi_marks.c) counts the guest instructions of every ``invoke()`` (the model
   only), every ``predict()`` (model + Python glue) and, in the loop, of the front end, the model
   and the smoother, between markers the guest drops: Python's and LiteRT's start-up are not in
   the figures;
4. ESTIMATED time = instructions x the profile's CPI / its clock, one thread. An estimate from
   emulated instruction counts and an assumed CPI (each profile's "sources"), not a measurement
   on a board: QEMU counts the instructions the ARM code executes with that core's features
   (e.g. the A76's dot product), not cycles, caches or memory stalls;
5. the device loop runs on the virtual device clock (firmware_sim.clock, shared with the MCU
   simulator) with those per-frame / per-inference / per-decision costs: event F1, onset latency,
   duty cycle on the stream. The stream's scores come from the host's LiteRT, which step 2 shows
   gives the emulated Pi's scores.

``edge-sed simulate`` calls ``prepare(bundle)`` once per bundle and ``simulate_profile`` per Pi
profile (the same interface as firmware_sim.mcu). ``simulate_pi`` makes the level x profile table
without a stream (``python -m firmware_sim.pi BUNDLES --profiles pi --data run``).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_sed.core.bundle import Bundle, BundleRunner, load_bundle, output_tolerance
from edge_sed.core.errors import EdgeSedError

from . import pi_root
from .profiles import DeviceProfile, load_profiles

GUEST_SCRIPT = Path(__file__).with_name("pi_guest.py")
DEFAULT_LEVELS = ("fp32", "fp16", "dynamic-int8", "int8")
KIND_EMPTY = 1  # the kinds of pi_guest.py's markers
KINDS = {2: "invoke", 3: "predict", 4: "block", 5: "frontend", 6: "smoother"}
LOOP_AUDIO_S = 3.0
RING_S = 2.0  # audio the Pi can hold while busy: edge_sed.listen.sources' callback queue (QUEUE_S = 2 s)
ESTIMATE_NOTE = (
    "estimate: ms = instructions x assumed CPI / clock, 1 thread; instructions counted by a QEMU "
    "TCG plugin while the bundle ran in LiteRT on the emulated core (qemu-aarch64 user mode), "
    "not measured on a board"
)


# ------------------------------------------------------------------- counting under emulation


def parse_marks(text: str) -> tuple[dict, int | None]:
    """Marker log of pi_marks.c -> ({(kind, bundle): [instructions of each region]}, total).
    A region's count excludes the markers: one marker's own cost (measured on empty regions)
    and that of every marker nested inside it (e.g. an invoke inside a predict)."""
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


def measure_pi(
    bundle_paths: list,
    cpu: str,
    windows: np.ndarray | None = None,
    audio: np.ndarray | None = None,
    block_samples: int = 320,
    log=None,
) -> dict:
    """Run the bundles in the emulated Pi on ``cpu`` (a QEMU -cpu name) with instruction counting.
    Returns {"cpu", "seconds", "total_insns", "bundles": [{"bundle", "scores", "invoke",
    "predict", "block", "frontend", "smoother", "block_work"}, ...]}: instruction counts per
    region (arrays); block_work = (frames, inferences, decisions) of each loop block."""
    root = pi_root.ensure_root(log)
    plugin = pi_root.ensure_plugins(log)["marks"]
    with tempfile.TemporaryDirectory(prefix="edge-sed-pi-") as tmp:
        tmp = Path(tmp)
        app = pi_root.stage_edge_sed(tmp / "app")
        shutil.copy2(GUEST_SCRIPT, tmp / "pi_guest.py")
        req = {
            "bundles": [str(Path(p).resolve()) for p in bundle_paths],
            "out": str(tmp / "out.json"),
            "block_samples": int(block_samples),
            "threads": 1,
        }
        for name, value in (("windows", windows), ("audio", audio)):
            if value is not None:
                np.save(tmp / f"{name}.npy", np.asarray(value, np.float32))
                req[name] = str(tmp / f"{name}.npy")
        (tmp / "request.json").write_text(json.dumps(req))
        cmd, env = pi_root.guest_command(
            root,
            ["python3", str(tmp / "pi_guest.py"), str(tmp / "request.json")],
            cpu,
            plugin,
            f"out={tmp / 'marks.txt'}",
            extra_path=[str(app)],
        )
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or not (tmp / "out.json").exists():
            lines = [l for l in proc.stderr.strip().splitlines() if l.strip()] or ["no output"]
            raise pi_root.PiRootError(
                f"the emulated Pi run ({cpu}) failed (exit {proc.returncode}): {lines[-1]}"
            )
        out = json.loads((tmp / "out.json").read_text())
        regions, total = parse_marks((tmp / "marks.txt").read_text())
    if out.get("machine") != "aarch64":
        raise pi_root.PiRootError(f"the guest reported machine {out.get('machine')!r}, not aarch64")
    bundles = []
    for b, res in enumerate(out["results"]):
        entry = {
            "bundle": res["bundle"],
            "scores": np.asarray(res.get("scores", []), np.float32),
            "xnnpack_applied": res.get("delegated"),
        }
        for kind, name in KINDS.items():
            entry[name] = np.asarray(regions.get((kind, b), []), np.float64)
        entry["block_work"] = np.asarray(res.get("blocks", []), np.int64).reshape(-1, 3)
        bundles.append(entry)
    return {"cpu": cpu, "seconds": seconds, "total_insns": total, "bundles": bundles}


def per_inference(counts: np.ndarray) -> float:
    """Instructions of one inference: the median, leaving out the first (one-time work on the
    first invoke, e.g. kernel scratch allocation)."""
    counts = np.asarray(counts, np.float64)
    if counts.size == 0:
        return float("nan")
    return float(np.median(counts[1:] if counts.size > 1 else counts))


def loop_costs(entry: dict) -> dict:
    """Instructions of the device loop's stages, from the blocks pushed through Detector in the
    guest: front end per frame; the loop's own work per frame on blocks without a decision (the
    window roll); model (predict + the Detector's glue) per inference = the rest of a block with
    inferences; smoother per decision."""
    work, block = entry["block_work"], entry["block"]
    if len(work) == 0:
        raise EdgeSedError("the emulated run pushed no audio through the device loop")
    frames, infer, decisions = work[:, 0], work[:, 1], work[:, 2]
    fe, sm = entry["frontend"], entry["smoother"]
    if len(fe) != len(work) or len(sm) != decisions.sum():
        raise EdgeSedError("instruction markers of the device loop do not match its blocks")
    sm_per_block = np.zeros(len(work))
    np.add.at(sm_per_block, np.repeat(np.arange(len(work)), decisions), sm)
    has = frames > 0
    frame = float(np.median(fe[has] / frames[has]))
    quiet = has & (infer == 0)
    other = float(np.median((block[quiet] - fe[quiet]) / frames[quiet])) if quiet.any() else 0.0
    busy = infer > 0
    rest = block - fe - sm_per_block - other * frames
    inference = float(np.median(rest[busy] / infer[busy])) if busy.any() else float("nan")
    decision = float(np.median(sm)) if len(sm) else 0.0
    return {
        "frontend_insns_per_frame": frame,
        "loop_insns_per_frame": other,
        "model_insns_per_inference": inference,
        "smoother_insns_per_decision": decision,
        "blocks_counted": int(len(work)),
    }


def estimate_ms(insns: float, profile: DeviceProfile) -> float:
    """ESTIMATED milliseconds on the profile's core (one thread): instructions x CPI / clock."""
    return insns * profile.cpi / profile.clock_hz * 1e3


# ------------------------------------------------------------------------- evaluation windows


def evaluation_windows(bundle: Bundle, data: str | None = "auto") -> tuple[np.ndarray, np.ndarray, str]:
    """(windows, labels, what they are). ``data``: "check" or None - the bundle's check.npz (a few
    test windows stored at conversion); "run" - the test split of the data set in the bundle's
    provenance; a path - that data set's test split (split with the provenance's ratio and seed);
    "auto" - "run" when that data set is on this machine, else "check". A stateful bundle has no
    windows: its check.npz feature sequence, as one (1, frames, n_mels) "window" run step by
    step with the state carried, and no labels (its accuracy is the stream's events)."""
    if bundle.form == "stateful":
        check = bundle.check_data()
        if check is None:
            raise EdgeSedError(
                f"{bundle.path}: a stateful bundle without check.npz: nothing to run on the emulated Pi"
            )
        x = np.asarray(check["x"], np.float32)[None]
        steps = len(range(bundle.hop_frames - 1, x.shape[1], bundle.hop_frames))
        return x, None, f"the check sequence (check.npz: {x.shape[1]} frames, {steps} steps, state carried)"
    prov = bundle.manifest["provenance"]
    if data == "auto":
        source = prov.get("dataset")
        data = "run" if source and (source == "synthetic" or Path(source).exists()) else "check"
    if data in (None, "check"):
        check = bundle.check_data()
        if check is None:
            raise EdgeSedError(f"{bundle.path}: no check.npz; give the data set (--data)")
        return check["x"], check["y"], f"{len(check['x'])} check windows (check.npz)"
    source = prov.get("dataset") if data == "run" else data
    if not source:
        raise EdgeSedError(f"{bundle.path}: the manifest records no data set; give one")
    try:
        from train.data import run_test_split
    except ImportError as exc:
        raise EdgeSedError(f"test-split windows need the project's train package: {exc}") from None
    split = run_test_split(prov, source)
    x, y = split.x, split.y
    return x, y, f"test split of {source} ({len(x)} windows)"


def run_windows(runner: BundleRunner, x: np.ndarray) -> np.ndarray:
    """Scores of ``evaluation_windows``' x: one per window, or for a stateful bundle one per step of
    each sequence (the guest runs the same)."""
    if runner.carried:
        return np.concatenate([runner.run_stream(seq) for seq in x])
    return runner.predict_many(x)


def clip_accuracy(y, scores: np.ndarray, labels) -> dict | None:
    """Accuracy on labelled windows; None for a stateful bundle's unlabelled check sequence."""
    from edge_sed.core.metrics import classification_metrics

    return None if y is None else classification_metrics(y, scores.argmax(1), labels)


def loop_audio(seconds: float = LOOP_AUDIO_S, seed: int = 0) -> np.ndarray:
    """Audio for counting the loop's stage costs when no stream is given (a synthetic clip; the
    costs do not depend on what is heard)."""
    from edge_sed.data.synth import make_clip

    return make_clip("dog", 0, seed, clip_s=seconds)[0]


def parity(bundle: Bundle, emulated: np.ndarray, host: np.ndarray) -> dict:
    diff = np.abs(emulated - host)
    tol = output_tolerance(bundle)
    top1 = float((emulated.argmax(1) == host.argmax(1)).mean()) if len(host) else float("nan")
    return {
        "max_abs_diff_vs_host": float(diff.max()) if diff.size else 0.0,
        "top1_agreement": top1,
        "windows_differing": int((diff.max(1) > 0).sum()) if diff.size else 0,
        "tolerance": tol,
        "ok": bool(diff.size and diff.max() <= tol and top1 == 1.0),
        "host": f"{platform.machine()} {platform.system()}, LiteRT on the host (the reference scores)",
    }


# ------------------------------------------------------------------- simulate (per profile)


class PiModel:
    """What a bundle needs on any Pi profile, computed once: the host detector (and its stream
    trace per block size), the evaluation windows with the host's scores, and one emulated run
    per core."""

    def __init__(self, bundle: Bundle, data: str | None = "auto"):
        from edge_sed.core.loop import Detector

        self.bundle = bundle
        self.detector = Detector(bundle)
        self.x, self.y, self.windows_what = evaluation_windows(bundle, data)
        self.host_scores = run_windows(self.detector.runner, self.x)
        self.trace: dict = {}
        self.runs: dict = {}

    def emulated(self, cpu: str, audio: np.ndarray, block_samples: int, log=None) -> dict:
        if cpu not in self.runs:
            run = measure_pi([self.bundle.path], cpu, self.x, audio, block_samples, log)
            self.runs[cpu] = dict(run["bundles"][0], seconds=run["seconds"], total_insns=run["total_insns"])
        return self.runs[cpu]


def prepare(bundle: Bundle, data: str | None = "auto") -> PiModel:
    return PiModel(bundle, data)


def _emulate(model: PiModel, profile: DeviceProfile, audio: np.ndarray, log) -> dict:
    """The emulated run on the profile's core: the evaluation windows, and the first
    LOOP_AUDIO_S of the stream (or a synthetic clip, for a shorter stream) through the loop."""
    n_loop = int(LOOP_AUDIO_S * profile.sample_rate)
    sample = audio[:n_loop] if len(audio) >= n_loop else loop_audio()
    return model.emulated(profile.qemu_cpu, sample, profile.dma_block_samples, log)


def _run_clock(model: PiModel, profile: DeviceProfile, audio: np.ndarray, costs: dict, progress):
    """The stream through the host detector on the virtual device clock, each block's work
    costed with the emulated instruction counts (``costs``) on the profile's core."""
    from .clock import simulate_stream

    block = profile.dma_block_samples
    scale = profile.cpi / profile.clock_hz

    def work_s(frames, inferences, decisions):
        return scale * (
            frames * (costs["frontend_insns_per_frame"] + costs["loop_insns_per_frame"])
            + inferences * costs["model_insns_per_inference"]
            + decisions * costs["smoother_insns_per_decision"]
        )

    ring = max(2, int(round(RING_S * profile.sample_rate / block)))
    result, clean = simulate_stream(
        model.detector,
        audio,
        block,
        profile.sample_rate,
        work_s,
        ring,
        trace=model.trace.get(block),
        progress=progress,
    )
    model.trace[block] = clean
    return result


def _emulation(e: dict, profile: DeviceProfile) -> dict:
    return {
        "root": str(pi_root.root_dir()),
        "qemu": "qemu-aarch64 " + pi_root.qemu_source_version(),
        "cpu": profile.qemu_cpu,
        "seconds": e["seconds"],
        "guest_total_insns": e["total_insns"],
        "xnnpack_applied": e["xnnpack_applied"],
    }


def _accuracy(model: PiModel, e: dict) -> dict:
    """The emulated scores against the evaluation windows' labels (none for a stateful bundle)."""
    acc = clip_accuracy(model.y, e["scores"], model.bundle.labels)
    if not acc:
        return {"overall_error": None, "note": "stateful: no clip labels; see events (the stream)"}
    host_acc = clip_accuracy(model.y, model.host_scores, model.bundle.labels)
    return {
        "overall_error": acc["overall_error"],
        "macro_f1": acc["macro_f1"],
        "per_class_error": acc.get("per_class_error"),
        "host_overall_error": host_acc["overall_error"],
    }


def _cost(e: dict, costs: dict, profile: DeviceProfile) -> dict:
    """Instructions per inference (the model alone, and with the Python glue), their spread and
    ESTIMATED ms, and the loop's stage costs."""
    invoke, predict = per_inference(e["invoke"]), per_inference(e["predict"])
    rest = e["invoke"][1:] if len(e["invoke"]) > 1 else e["invoke"]
    return {
        "insns_per_inference": invoke,
        "insns_per_predict": predict,
        "insns_first_inference": float(e["invoke"][0]) if len(e["invoke"]) else None,
        "insns_spread": float((rest.max() - rest.min()) / invoke) if len(rest) else None,
        "est_ms_per_inference": estimate_ms(invoke, profile),
        "est_ms_per_predict": estimate_ms(predict, profile),
        **costs,
        "est_ms_per_frame": estimate_ms(
            costs["frontend_insns_per_frame"] + costs["loop_insns_per_frame"], profile
        ),
        "est_ms_per_decision_model": estimate_ms(costs["model_insns_per_inference"], profile),
    }


def _summary(record: dict, model: PiModel, profile: DeviceProfile) -> str:
    c, par, acc = record["cost"], record["parity"], record["accuracy"]
    bundle = model.bundle
    stateful = bundle.form == "stateful"
    unit = f"step ({bundle.hop_frames} frames)" if stateful else "inference"
    return (
        f"emulated {profile.qemu_cpu}: {c['insns_per_inference'] / 1e6:.2f} M insns/{unit} -> "
        f"est. {c['est_ms_per_inference']:.2f} ms "
        f"(CPI {profile.cpi}, {profile.clock_hz / 1e9:g} GHz, 1 thread; "
        f"{c['insns_per_predict'] / 1e6:.2f} M per "
        f"{'step' if stateful else 'window'} with the Python glue); "
        f"front end {c['frontend_insns_per_frame'] / 1e3:.0f} k insns/frame; scores vs host: max |d| "
        f"{par['max_abs_diff_vs_host']:.1e}, top-1 {par['top1_agreement']:.0%} on {record['windows']}"
        + (f"; overall error {acc['overall_error']:.3f}" if model.y is not None else "")
    )


def _verdict(clock: dict, par: dict) -> str:
    return (
        f"{'real time' if clock['overruns'] == 0 and clock['dropped_blocks'] == 0 else 'NOT real time'}: "
        f"est. duty cycle {clock['duty_cycle']:.1%} of one core, worst decision latency "
        f"{clock['decision_latency_worst_ms']:.1f} ms; "
        f"scores {'match' if par['ok'] else 'DO NOT match'} the host"
    )


def simulate_profile(
    model: PiModel,
    profile: DeviceProfile,
    audio: np.ndarray,
    annotations,
    stream_info: dict,
    progress=None,
    log=None,
) -> dict:
    """One record: emulated scores vs host, instructions and estimated ms per inference, the loop's
    stage costs, and the stream on the virtual device clock (events, latency, duty cycle)."""
    from edge_sed.core.events import event_metrics

    bundle = model.bundle
    profile.check_runs(bundle, "pi")
    e = _emulate(model, profile, audio, log)
    par = parity(bundle, e["scores"], model.host_scores)
    accuracy = _accuracy(model, e)
    costs = loop_costs(e)
    result = _run_clock(model, profile, audio, costs, progress)
    metrics = event_metrics(
        annotations, result.events, result.duration_s, labels=[l for l in bundle.labels if l != "background"]
    )
    clock = result.summary()
    record = {
        "kind": "pi",
        "bundle": str(bundle.path),
        "level": bundle.level,
        "form": bundle.form,
        "labels": bundle.labels,
        "profile": profile.name,
        "device": profile.description,
        "core": profile.core,
        "qemu_cpu": profile.qemu_cpu,
        "clock_hz": profile.clock_hz,
        "cpi": profile.cpi,
        "threads": 1,
        "profile_sources": profile.sources,
        "estimate_note": ESTIMATE_NOTE,
        "model_bytes": len(bundle.model_bytes),
        "emulation": _emulation(e, profile),
        "windows": model.windows_what,
        "n_windows": int(len(model.x)),
        "parity": par,
        "accuracy": accuracy,
        "cost": _cost(e, costs, profile),
        "clock": clock,
        "stream": stream_info,
        "events": {k: v for k, v in metrics.items() if k != "latencies_s"},
    }
    record["summary"] = _summary(record, model, profile)
    record["verdict"] = _verdict(clock, par)
    return record


# ---------------------------------------------------------------- level x profile table


def resolve_bundles(path, levels=DEFAULT_LEVELS) -> list[Path]:
    """A bundle directory, or a bundles directory: its levels in ``levels`` ("all": every one)."""
    path = Path(path)
    if (path / "manifest.json").exists():
        return [path]
    if not path.is_dir():
        raise EdgeSedError(f"{path}: not a bundle or bundles directory")
    found = {
        p.name: p
        for p in sorted(path.iterdir())
        if (p / "manifest.json").exists() and not p.name.startswith(".")
    }
    if not found:
        raise EdgeSedError(f"{path}: no manifest.json here or in its sub-directories: not a bundle")
    if levels in ("all", ("all",)):
        return list(found.values())
    wanted = [l for l in levels if l in found]
    if not wanted:
        raise EdgeSedError(f"{path}: none of the levels {', '.join(levels)} (it has {', '.join(found)})")
    return [found[l] for l in wanted]


def simulate_pi(bundle, profiles="pi", levels=DEFAULT_LEVELS, data: str | None = "auto", log=None) -> dict:
    """Every (level, Pi profile) without a stream: model bytes, instructions per inference,
    estimated ms, score agreement with the host's LiteRT and accuracy on the evaluation windows.
    Profiles with the same core share one emulated run (all levels in one guest process)."""

    if isinstance(profiles, str):
        profiles = load_profiles(profiles)
    profiles = [p for p in profiles if p.kind == "pi"]
    if not profiles:
        raise EdgeSedError("no Pi profile given (rpi-zero-2w, rpi-4, rpi-5, or 'pi' for all)")
    bundles = [load_bundle(p) for p in resolve_bundles(bundle, levels)]
    x, y, what = evaluation_windows(bundles[0], data)
    labels = bundles[0].labels
    if len({b.form for b in bundles}) > 1:
        raise EdgeSedError("the bundles mix stateful and windowed forms: give one run's bundles")
    host = [run_windows(BundleRunner(b), x) for b in bundles]
    runs = {}
    for cpu in sorted({p.qemu_cpu for p in profiles}):
        if log:
            log(
                f"pi: emulating {cpu}: {len(bundles)} bundle(s) x {len(x)} windows + "
                f"{LOOP_AUDIO_S:g} s of device loop"
            )
        runs[cpu] = measure_pi(
            [b.path for b in bundles], cpu, x, loop_audio(), profiles[0].dma_block_samples, log
        )
    rows = []
    for b, bundle in enumerate(bundles):
        for p in profiles:
            e = runs[p.qemu_cpu]["bundles"][b]
            invoke, predict = per_inference(e["invoke"]), per_inference(e["predict"])
            m = clip_accuracy(y, e["scores"], labels) or {"overall_error": None, "macro_f1": None}
            rows.append(
                {
                    "level": bundle.level,
                    "form": bundle.form,
                    "bundle": str(bundle.path),
                    "profile": p.name,
                    "cpu": p.qemu_cpu,
                    "model_bytes": len(bundle.model_bytes),
                    "insns_per_inference": invoke,
                    "insns_per_predict": predict,
                    "est_ms_per_inference": estimate_ms(invoke, p),
                    "est_ms_per_predict": estimate_ms(predict, p),
                    **parity(bundle, e["scores"], host[b]),
                    "overall_error": m["overall_error"],
                    "macro_f1": m["macro_f1"],
                    "xnnpack_applied": e["xnnpack_applied"],
                    "host_overall_error": (clip_accuracy(y, host[b], labels) or {}).get("overall_error"),
                    **loop_costs(e),
                }
            )
    return {
        "note": ESTIMATE_NOTE,
        "windows": what,
        "n_windows": int(len(x)),
        "profiles": {
            p.name: {"core": p.core, "qemu_cpu": p.qemu_cpu, "clock_hz": p.clock_hz, "cpi": p.cpi}
            for p in profiles
        },
        "emulation": {
            cpu: {"seconds": r["seconds"], "guest_total_insns": r["total_insns"]} for cpu, r in runs.items()
        },
        "rows": rows,
    }


def format_table(report: dict) -> str:
    lines = [
        f"Pi simulator on {report['windows']}. {report['note']}.",
        f"{'level':<13} {'profile':<12} {'bytes':>8} {'insns/inference':>15} {'est ms':>7} {'+glue':>7} "
        f"{'max|d| host':>11} {'top-1':>6} {'error':>6} {'F1':>6}",
    ]
    for r in report["rows"]:
        lines.append(
            f"{r['level']:<13} {r['profile']:<12} {r['model_bytes']:>8} {r['insns_per_inference']:>15,.0f} "
            f"{r['est_ms_per_inference']:>7.2f} {r['est_ms_per_predict']:>7.2f} "
            f"{r['max_abs_diff_vs_host']:>11.1e} {r['top1_agreement']:>6.1%} "
            + (
                "     -      -"
                if r["overall_error"] is None
                else f"{r['overall_error']:>6.3f} {r['macro_f1']:>6.3f}"
            )
        )
    lines.append(
        "est ms: the model's invoke(); +glue: BundleRunner.predict (quantize, state reset, invoke, "
        "dequantize; a stateful bundle: one step); error: overall error (1 - balanced accuracy) of the "
        "emulated scores (- for a stateful bundle: it is scored on streams)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(
        prog="python -m firmware_sim.pi",
        description="Level x Pi profile table "
        "(instructions per inference under emulation, estimated ms, parity, accuracy).",
    )
    ap.add_argument("bundle")
    ap.add_argument("--profiles", default="pi")
    ap.add_argument("--levels", default=",".join(DEFAULT_LEVELS), help="comma-separated, or 'all'")
    ap.add_argument("--data", default="auto", help="check | run | auto | a data set path")
    ap.add_argument("--json", help="also write the report here")
    args = ap.parse_args()
    try:
        levels = "all" if args.levels == "all" else tuple(args.levels.split(","))
        rep = simulate_pi(
            args.bundle, args.profiles, levels, args.data, log=lambda m: print(m, file=sys.stderr)
        )
    except EdgeSedError as exc:
        sys.exit(f"error: {exc}")
    print(format_table(rep))
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))
