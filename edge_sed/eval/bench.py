"""Host inference latency of bundles, side by side: every level measured in the same run,
interleaved (round-robin, the order rotated every round), so a machine that gets busier or
quieter half-way changes every level alike and the ratios to fp32 stay meaningful.

What is timed is what a device does per model call, through edge_sed.core.bundle.BundleRunner on
LiteRT with one thread: a windowed bundle's ``predict(window)`` (quantize, reset the LSTM state,
invoke, dequantize) and a streaming bundle's ``step(frame)`` (one frame with the carried state).
"Per second of audio" multiplies by the invokes the device loop (edge_sed.core.loop.Detector) makes
per second deciding every hop_frames frames (50 = 0.5 s by default, for every level): windowed
100 / hop, streaming 100 x ceil(window / hop) (staggered states).
numpy only; LiteRT is loaded when a bundle is.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from edge_sed.core.bundle import MANIFEST_FILE, BundleRunner, load_bundle
from edge_sed.core.errors import EdgeSedError
from edge_sed.core.frontend import StreamingLogMel


def bundle_dirs(path: str | os.PathLike) -> list[Path]:
    """The bundle directories of a convert output (``path/<level>/manifest.json``), or
    ``[path]`` when ``path`` is itself a bundle. Hidden (temporary) directories are skipped."""
    path = Path(path)
    if (path / MANIFEST_FILE).exists():
        return [path]
    if not path.is_dir():
        raise EdgeSedError(f"{path}: no such bundles directory")
    return sorted(
        p
        for p in path.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILE).exists()
    )


DECISION_HOP_FRAMES = 50
"""Frames between decisions used for every level in the report and the benchmark (the windowed
bundles' own hop, 0.5 s), so every level decides at the same moments."""


def invokes_per_second(bundle, hop_frames: int | None = DECISION_HOP_FRAMES) -> float:
    """Model invokes per second of audio in the device loop (edge_sed.core.loop.Detector) deciding
    every ``hop_frames`` frames (None: the bundle's own hop)."""
    fe = bundle.frontend
    hop = hop_frames or bundle.hop_frames
    frames_per_s = fe.sample_rate / fe.hop_samples
    if (
        bundle.form == "stateful"
    ):  # one step every stride (manifest hop_frames) frames, whatever the decision hop
        return frames_per_s / bundle.hop_frames
    if bundle.form == "streaming-explicit-state":  # staggered states: ceil(window / hop) alive
        return frames_per_s * math.ceil(bundle.window_frames / hop)
    return frames_per_s / hop


def machine() -> dict:
    """What the host measurements were taken on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from edge_sed.core.runtime import interpreter_class

    try:
        runtime = interpreter_class()[1].split(".")[0]
        from importlib.metadata import version

        runtime += " " + version(runtime.replace("_", "-"))
    except Exception:  # no runtime, or no metadata: say what we know
        runtime = "unknown"
    return {
        "cpu": cpu,
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "runtime": runtime,
        "threads": 1,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def _call(runner):
    """A zero-argument function doing one model call of ``runner`` on a real window/frame."""
    b = runner.bundle
    check = b.check_data()
    if check is not None and len(check["x"]):
        window = np.asarray(check["x"][0], np.float32)
    else:  # no stored test window: a log-mel-like one, seeded
        window = (
            np.random.default_rng(0)
            .normal(-6.0, 2.0, (b.window_frames, b.frontend.n_mels))
            .astype(np.float32)
        )
    if runner.carried:  # the stored feature sequence, stacked as the loop stacks it; never reset
        k = b.window_frames
        seq = np.asarray(check["x"], np.float32) if check is not None else window
        padded = np.concatenate([np.repeat(seq[:1], k - 1, 0), seq])
        contexts = [padded[t : t + k] for t in range(b.hop_frames - 1, len(seq), b.hop_frames)] or [
            padded[-k:]
        ]
        position = {"t": 0}

        def carried_step():
            runner.step(contexts[position["t"] % len(contexts)])
            position["t"] += 1

        return carried_step
    if runner.streaming:
        frames = iter(())

        def step():
            nonlocal frames
            frame = next(frames, None)
            if frame is None:  # a fresh window from a zero state, as the loop does every hop
                runner.reset()
                frames = iter(window)
                frame = next(frames)
            runner.step(frame)

        return step
    return lambda: runner.predict(window)


def frontend_ms_per_s(rounds: int = 5, block: int = 512, cfg=None) -> float:
    """Median ms to turn 1 s of audio into features with StreamingLogMel (``cfg``: a bundle's
    front end; None: the default log-mel)."""
    audio = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    times = []
    for _ in range(rounds):
        fe = StreamingLogMel(cfg) if cfg is not None else StreamingLogMel()
        t0 = time.perf_counter()
        for i in range(0, len(audio), block):
            fe.push(audio[i : i + block])
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def measure_latency(
    paths,
    rounds: int = 30,
    per_round: int = 10,
    warmup: int = 5,
    progress=None,
    hop_frames: int | None = DECISION_HOP_FRAMES,
) -> dict:
    """Interleaved host latency of every bundle in ``paths`` (dirs). Returns
    {"machine", "method", "frontend_ms_per_s_audio", "levels": {name: {...}}}; each level has the
    median/p10/p90 ms per invoke over rounds x per_round calls, invokes and ms per second of
    audio, the host duty cycle (model + front end) and the ratio of its median to fp32's."""
    runners = {}
    for p in paths:
        b = load_bundle(p)
        runners[Path(p).name] = BundleRunner(b)
    if not runners:
        raise EdgeSedError("no bundles to measure")
    calls = {name: _call(r) for name, r in runners.items()}
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:  # rotate the order: no level always goes first
            call = calls[name]
            for _ in range(per_round):
                t0 = time.perf_counter_ns()
                call()
                times[name].append((time.perf_counter_ns() - t0) / 1e6)
        if progress:
            progress(r + 1, rounds)
    fe_ms_of = {}
    levels = {}
    for name, runner in runners.items():
        fe_cfg = runner.bundle.frontend
        if fe_cfg not in fe_ms_of:
            fe_ms_of[fe_cfg] = frontend_ms_per_s(cfg=fe_cfg)
        fe_ms = fe_ms_of[fe_cfg]
        t = np.asarray(times[name])
        per_s = invokes_per_second(runner.bundle, hop_frames)
        median = float(np.median(t))
        levels[name] = {
            "path": str(runners[name].bundle.path),
            "form": runner.bundle.form,
            "level": runner.bundle.level,
            "unit": "ms per invoke (" + ("one frame step" if runner.streaming else "one window") + ")",
            "median_ms": median,
            "p10_ms": float(np.percentile(t, 10)),
            "p90_ms": float(np.percentile(t, 90)),
            "calls": int(len(t)),
            "invokes_per_s_audio": per_s,
            "ms_per_s_audio": median * per_s,
            "duty_cycle": (median * per_s + fe_ms) / 1000.0,
            "frontend_ms_per_s_audio": fe_ms,
        }
    ref = levels.get("fp32")
    for v in levels.values():
        v["ratio_to_fp32"] = v["median_ms"] / ref["median_ms"] if ref else None
        v["ratio_per_s_audio_to_fp32"] = v["ms_per_s_audio"] / ref["ms_per_s_audio"] if ref else None
    return {
        "machine": machine(),
        "method": (
            f"LiteRT, 1 thread, BundleRunner calls timed one by one; {rounds} rounds x {per_round} calls "
            f"per level, interleaved (order rotated every round), {warmup} warm-up calls; median. Per second "
            f"of audio: deciding every {hop_frames or 'bundle hop'} frames"
        ),
        "hop_frames": hop_frames,
        "frontend_ms_per_s_audio": fe_ms,
        "levels": levels,
    }


def latency_table(result: dict) -> str:
    """The measurement as a Markdown table."""
    lines = [
        "| bundle | form | ms/invoke (median) | p10-p90 | invokes/s audio | ms per s audio "
        "| host duty | vs fp32 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in result["levels"].items():
        ratio = (
            f"{v['ratio_to_fp32']:.2f}x ({v['ratio_per_s_audio_to_fp32']:.2f}x per s)"
            if v["ratio_to_fp32"] is not None
            else "-"
        )
        lines.append(
            f"| {name} | {v['form']} | {v['median_ms']:.3f} | {v['p10_ms']:.3f}-{v['p90_ms']:.3f} | "
            f"{v['invokes_per_s_audio']:.0f} | {v['ms_per_s_audio']:.2f} | {v['duty_cycle']:.2%} | {ratio} |"
        )
    m = result["machine"]
    lines.append("")
    lines.append(
        f"Measured on {m['cpu']} ({m['cores']} cores, load {m['load_average_1min']}), {m['runtime']}; "
        f"{result['method']}. Front end: {result['frontend_ms_per_s_audio']:.2f} ms per s of audio."
    )
    return "\n".join(lines)
