"""The MCU simulator for one (bundle, profile): memory plan, stage costs, the firmware loop on the
virtual device clock with the int8 model run by tflite-micro (its scores are the MCU's), and
stream-level accuracy. ``simulate_profile`` returns one JSON-ready record.
"""

from __future__ import annotations

import math

import numpy as np

from edge_sed.core.bundle import Bundle
from edge_sed.core.errors import EdgeSedError
from edge_sed.core.events import event_metrics
from edge_sed.core.loop import Detector

from .calibrate import COUNTS_JSON, coefficients, load_counts
from .clock import simulate_stream, trace_blocks
from .cost import stage_costs
from .profiles import DeviceProfile
from .tflm import MicroBackend, find_arena_bytes

KB = 1024
GOALS = {
    "model_bytes": 48 * KB,
    "arena_bytes": 12 * KB,
    "ram_bytes": 40 * KB,
    "duty_cycle_at_80mhz": 0.10,
    "latency_median_s": 0.35,
}  # issue 15's always-on goals
MIN_RING_BLOCKS = 2  # ping-pong DMA buffer at least
MAX_RING_S = 2.0  # an audio ring longer than this is not a design anyone would ship
PCM_BYTES = 2  # int16 samples
MCU_LEVELS = {"int8"}


GOAL_NOTES = {
    "model_bytes<=48KB": "the .tflite file",
    "arena_bytes<=12KB": "smallest arena that allocates and invokes (host build, 64-bit pointers); "
    "the memory plan "
    "adds the 10 % margin",
    "ram<=40KB": "the memory plan's RAM total (arena, audio ring, front end, features, stack allowance)",
    "duty_cycle<=10%_at_80MHz": "this profile's busy cycles per second / 80 MHz",
    "no_overrun": "on this stream: no block's work ran past the next block's arrival",
    "latency_median<=0.35s": "onset -> detection on the device clock, this stream's detected events",
}


def judge_goals(
    model_bytes=None,
    arena_bytes=None,
    ram_bytes=None,
    duty_at_80mhz=None,
    overruns=None,
    latency_median_s=...,
    notes: bool = True,
) -> dict:
    """Issue 15's always-on goals (GOALS) for the figures given: {goal: {"value", "met"[, "note"]}}.
    A latency of None (nothing detected) is a goal not met; one not given is not judged."""
    checks = {
        "model_bytes<=48KB": (model_bytes, lambda v: v <= GOALS["model_bytes"]),
        "arena_bytes<=12KB": (arena_bytes, lambda v: v <= GOALS["arena_bytes"]),
        "ram<=40KB": (ram_bytes, lambda v: v <= GOALS["ram_bytes"]),
        "duty_cycle<=10%_at_80MHz": (duty_at_80mhz, lambda v: v <= GOALS["duty_cycle_at_80mhz"]),
        "no_overrun": (overruns, lambda v: v == 0),
        "latency_median<=0.35s": (latency_median_s, lambda v: v <= GOALS["latency_median_s"]),
    }
    out = {}
    for name, (value, ok) in checks.items():
        if value is ... or (value is None and name != "latency_median<=0.35s"):
            continue
        out[name] = {
            "value": value,
            "met": value is not None and bool(ok(value)),
            **({"note": GOAL_NOTES[name]} if notes else {}),
        }
    return out


# the project's tables the CMSIS-DSP front end (firmware_sim/c/frontend_cmsis.c) reads
FRONTEND_TABLES = ("kHannQ15", "kMelBand", "kMelWeightQ15", "kLog2Q16", "kRealCoefAQ15", "kRealCoefBQ15")


def frontend_table_bytes(pcen: bool = False, kernel_build: str = "cortex-m4") -> int:
    """Constant tables of the device front end in flash: the window, mel and log tables
    and the RFFT split coefficients
    (firmware_sim/c/tables.h), what CMSIS-DSP's 256-point q15 CFFT links (its sizes as measured
    in the calibration image, counts.json), and with ``pcen`` the PCEN stage's exp2 table."""
    from .calibrate import load_counts
    from .kernels_ref import C_TYPES, pcen_tables, tables

    size = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4}
    held = {name: a for name, a in tables().items() if name in FRONTEND_TABLES}
    held.update(pcen_tables() if pcen else {})
    cmsis = load_counts()["builds"][kernel_build]["cmsis_frontend_tables"]
    return sum(a.size * size[C_TYPES[name]] for name, a in held.items()) + sum(cmsis.values())


def ring_blocks_for(worst_block_s: float, block_s: float) -> int:
    """Audio ring size (blocks) that absorbs the longest block's work without losing audio: the
    blocks arriving while it runs, plus the one being filled; at least ping-pong, at most
    MAX_RING_S of audio."""
    need = math.ceil(worst_block_s / block_s - 1e-9) + 1
    return int(min(max(MIN_RING_BLOCKS, need), max(MIN_RING_BLOCKS, round(MAX_RING_S / block_s))))


def memory_plan(
    bundle: Bundle,
    profile: DeviceProfile,
    arena: dict,
    detector_states: int,
    ring_blocks: int = MIN_RING_BLOCKS,
) -> dict:
    """RAM and flash the firmware needs on this profile, item by item, and the verdict."""
    fe = bundle.frontend
    n_mels = fe.n_mels
    inputs = {d["role"]: d for d in bundle.manifest["inputs"]}
    if bundle.form == "windowed":
        feature_bytes = bundle.window_frames * n_mels * np.dtype(inputs["window"]["dtype"]).itemsize
        feature_note = (
            f"{bundle.window_frames} frames x {n_mels} mels, {inputs['window']['dtype']} "
            "(ring of the model window)"
        )
    else:
        h = inputs["h"]
        per_state = 2 * int(np.prod(h["shape"])) * np.dtype(h["dtype"]).itemsize
        if bundle.form == "stateful":  # one carried state, and the conv's context of the last frames
            k = bundle.window_frames
            feature_bytes = per_state + k * n_mels * np.dtype(inputs["frame"]["dtype"]).itemsize
            feature_note = f"one carried LSTM state (h, c) + the last {k} frame(s)"
        else:
            feature_bytes = detector_states * per_state + n_mels * np.dtype(inputs["frame"]["dtype"]).itemsize
            feature_note = f"{detector_states} live LSTM state(s) (h, c) + one frame"
    pcen = getattr(fe, "compression", "log") == "pcen"
    ram = {
        "tensor_arena": arena["arena_bytes"],
        "audio_ring": ring_blocks * profile.dma_block_samples * PCM_BYTES + fe.window_samples * PCM_BYTES,
        # the windowed frame and the spectrum (int16, CMSIS-DSP's RFFT), mel energies; PCEN: its
        # smoother's state, a uint64 per band
        "frontend_scratch": fe.n_fft * 2 + 2 * fe.n_fft * 2 + n_mels * 8 + (n_mels * 8 if pcen else 0),
        "feature_buffer": feature_bytes,
        "reserved_stack_globals": profile.reserved_ram_bytes,
    }
    flash = {
        "model": len(bundle.model_bytes),
        "frontend_tables": frontend_table_bytes(pcen, profile.kernel_build),
        "code_allowance": profile.code_flash_bytes,
    }
    ram_total, flash_total = sum(ram.values()), sum(flash.values())
    ram_spare, flash_spare = profile.ram_bytes - ram_total, profile.flash_bytes - flash_total
    fits = ram_spare >= 0 and flash_spare >= 0
    if fits:
        verdict = f"fits, with {ram_spare / KB:.1f} KB RAM and {flash_spare / KB:.1f} KB flash to spare"
    else:
        parts = []
        if ram_spare < 0:
            parts.append(f"needs {ram_total / KB:.1f} KB RAM, has {profile.ram_bytes / KB:.0f} KB")
        if flash_spare < 0:
            parts.append(f"needs {flash_total / KB:.1f} KB flash, has {profile.flash_bytes / KB:.0f} KB")
        verdict = "does not fit: " + "; ".join(parts)
    return {
        "ram": ram,
        "flash": flash,
        "ram_total_bytes": ram_total,
        "flash_total_bytes": flash_total,
        "ram_bytes": profile.ram_bytes,
        "flash_bytes": profile.flash_bytes,
        "ram_spare_bytes": ram_spare,
        "flash_spare_bytes": flash_spare,
        "fits": fits,
        "verdict": verdict,
        "arena": arena,
        "feature_buffer_note": feature_note,
        "audio_ring_blocks": ring_blocks,
        "notes": (
            f"audio ring: {ring_blocks} DMA blocks (sized to absorb the longest block's work, at most "
            f"{MAX_RING_S:g} s) + one front-end window of int16 PCM; front-end scratch: the 512 int16 "
            "windowed samples and 512 complex int16 spectrum values of CMSIS-DSP's RFFT + 40 int64 mel "
            "energies "
            "(+ 40 uint64 PCEN states with PCEN); code and "
            "stack are stated allowances from the "
            "profile, not measured"
        ),
    }


class McuModel:
    """What a bundle needs on any MCU, computed once: the TFLM arena and the TFLM detector."""

    def __init__(self, bundle: Bundle):
        if bundle.level not in MCU_LEVELS:
            raise EdgeSedError(
                f"{bundle.path}: level {bundle.level} is not an MCU level (the MCU simulator runs "
                "full-integer int8 bundles: int8, int8-streaming)"
            )
        self.bundle = bundle
        self.arena = find_arena_bytes(bundle.model_bytes)
        self.backend = MicroBackend(bundle.model_bytes, self.arena["arena_bytes"])
        self.detector = Detector(bundle, backend=self.backend)
        self.traces = {}  # DMA block size -> the detector's work per block on the stream


def prepare(bundle: Bundle) -> McuModel:
    """Per-bundle state shared by every MCU profile (the dispatch in firmware_sim.simulate)."""
    return McuModel(bundle)


def simulate_profile(
    model: McuModel,
    profile: DeviceProfile,
    audio: np.ndarray,
    annotations,
    stream_info: dict,
    counts: dict | None = None,
    progress=None,
) -> dict:
    """One record: memory plan, costs, clock figures and event metrics of the bundle on the profile."""
    bundle = model.bundle
    profile.check_runs(bundle, "mcu")
    counts = counts or load_counts()
    costs = stage_costs(bundle, profile, coefficients(profile.kernel_build, counts))
    result, clean, ring = _run_clock(model, profile, audio, costs, progress)
    metrics = event_metrics(
        annotations, result.events, result.duration_s, labels=[l for l in bundle.labels if l != "background"]
    )
    clock = result.summary()
    plan, ram_high_water = _memory(model, profile, ring, clock)
    return {
        **_header(bundle, profile, counts),
        "memory": plan,
        "cost": _cost(costs, clean, result, float(profile.clock_hz)),
        "clock": clock,
        "ram_high_water_bytes": ram_high_water,
        "stream": stream_info,
        "events": {k: v for k, v in metrics.items() if k != "latencies_s"},
        "goals": judge_goals(
            model_bytes=len(bundle.model_bytes),
            arena_bytes=model.arena["arena_min_bytes"],
            ram_bytes=plan["ram_total_bytes"],
            duty_at_80mhz=result.duty_cycle * profile.clock_hz / 80e6,
            overruns=clock["overruns"],
            latency_median_s=metrics.get("latency_median_s"),
        ),
    }


def _run_clock(model: McuModel, profile: DeviceProfile, audio: np.ndarray, costs, progress):
    """The stream through the detector on the device clock, each block's work costed in cycles
    at the profile's clock; the detector's work per block is traced once per DMA block size.
    Returns (clock result, the clean trace, ring blocks)."""
    hz = float(profile.clock_hz)

    def work_s(frames, inferences, decisions):
        return costs.block_cycles(frames, inferences, decisions) / hz

    block_samples = profile.dma_block_samples
    clean = model.traces.get(block_samples)
    if clean is None:
        clean = model.traces[block_samples] = trace_blocks(
            model.detector, audio, block_samples, progress=progress
        )
    block_s = block_samples / profile.sample_rate
    ring = ring_blocks_for(max(work_s(b.frames, b.inferences, len(b.decisions)) for b in clean), block_s)
    result, _ = simulate_stream(
        model.detector,
        audio,
        block_samples,
        profile.sample_rate,
        work_s,
        ring,
        trace=clean,
        progress=progress,
    )
    return result, clean, ring


def _memory(model: McuModel, profile: DeviceProfile, ring: int, clock: dict) -> tuple[dict, int]:
    """The memory plan with that ring, and the RAM high-water mark over the stream."""
    bundle = model.bundle
    plan = memory_plan(
        bundle,
        profile,
        model.arena,
        ring_blocks=ring,
        detector_states=max(1, math.ceil(bundle.window_frames / model.detector.hop_frames)),
    )
    # the ring is allocated whole; what varies is how much of it holds audio not yet processed
    ram_high_water = (
        plan["ram_total_bytes"]
        - plan["ram"]["audio_ring"]
        + fe_history_bytes(bundle)
        + min(ring, clock["max_backlog_blocks"] + 1) * profile.dma_block_samples * PCM_BYTES
    )
    return plan, ram_high_water


def _header(bundle: Bundle, profile: DeviceProfile, counts: dict) -> dict:
    """What was simulated where, and what the estimate rests on."""
    return {
        "kind": "mcu",
        "bundle": str(bundle.path),
        "level": bundle.level,
        "form": bundle.form,
        "labels": bundle.labels,
        "profile": profile.name,
        "device": profile.description,
        "core": profile.core,
        "clock_hz": profile.clock_hz,
        "cpi": profile.cpi,
        "kernel_build": profile.kernel_build,
        "profile_sources": profile.sources,
        "estimate_note": (
            f"estimate: cycles = instructions x cpi {profile.cpi} (profile assumption); instructions "
            f"= graph work x coefficients fitted to the project's C kernels counted on QEMU "
            f"({counts['builds'][profile.kernel_build]['board']}, {COUNTS_JSON.name}); scores from "
            "tflite-micro's kernels (x86-64 host build)"
        ),
    }


def _cost(costs, clean, result, hz: float) -> dict:
    """Cycles per stage and per decision over the stream."""
    n_dec = max(result.decisions, 1)
    inferences = sum(b.inferences for b in clean)
    frames = sum(b.frames for b in clean)
    cycles_per_decision = result.busy_s * hz / n_dec
    return {
        "frontend_cycles_per_frame": costs.frontend_frame_cycles,
        "invoke_cycles": costs.invoke_cycles,
        "model_macs_per_invoke": costs.model["macs"],
        "ops": [{k: v for k, v in o.items() if k != "index"} for o in costs.model["ops"]],
        "smoother_cycles_per_decision": costs.decision_cycles,
        "frames_per_decision": frames / n_dec,
        "invokes_per_decision": inferences / n_dec,
        "cycles_per_decision": cycles_per_decision,
        "ms_per_decision": cycles_per_decision / hz * 1e3,
        "model_ms_per_decision": costs.invoke_cycles * inferences / n_dec / hz * 1e3,
        "decisions_per_s": result.decisions / result.duration_s if result.duration_s else float("nan"),
        "cycles_per_audio_s": result.busy_s * hz / result.duration_s if result.duration_s else None,
    }


def fe_history_bytes(bundle: Bundle) -> int:
    return bundle.frontend.window_samples * PCM_BYTES
