"""``edge-sed listen --profile``: the live stream on a simulated MCU. The model is the bundle's int8
model run by tflite-micro (firmware_sim.tflm: the scores are the MCU's), and the device clock
(firmware_sim.clock.DeviceClock, kept up block by block) charges each block the profile's
estimated cycles for the frames, invokes and smoother updates it caused. The summary gains the
device's decision latency, duty cycle, overruns (work ending after the next block arrived) and
the always-on goals judged on the run (firmware_sim.mcu.judge_goals).

The CLI passes :func:`target_for` to edge_sed.listen.run.listen as its ``target`` hook; edge_sed
itself imports nothing from firmware_sim."""

from __future__ import annotations

from edge_sed.core.errors import EdgeSedError, install_extra
from edge_sed.core.settings import SAMPLE_RATE
from edge_sed.listen.run import pct
from edge_sed.listen.sinks import Sink
from firmware_sim.clock import DeviceClock


class McuClockSink(Sink):
    """The device clock as a listen sink: block k arrives at the stream time of its last sample;
    its work costs ``work_s(frames, inferences, decisions)`` seconds; a decision's device latency
    is the end of its block's work - the stream time of the end of the audio it used."""

    def __init__(self, profile, work_s, block_s: float, goals=None):
        self.profile, self.work_s = profile, work_s
        self.goals = goals  # (duty cycle at 80 MHz, overruns) -> firmware_sim.mcu.judge_goals' verdicts
        self.clock = DeviceClock(block_s)
        self.latency_s: list = []
        self.stream_s = 0.0

    def block(self, n_samples: int, frames: int, inferences: int, decisions) -> None:
        self.stream_s += n_samples / SAMPLE_RATE
        end = self.clock.step(self.stream_s, self.work_s(frames, inferences, len(decisions)))
        self.latency_s += [end - d.t_s for d in decisions]

    def figures(self) -> dict:
        lat = [x * 1000 for x in self.latency_s]
        duty = round(self.clock.busy / self.stream_s, 4) if self.stream_s else None
        goals = (
            self.goals(round(duty * self.profile.clock_hz / 80e6, 4), self.clock.overruns)
            if self.goals and duty is not None
            else {}
        )
        return {
            "profile": self.profile.name,
            "device": self.profile.description,
            "goals": goals,
            "duty_cycle": duty,
            "decision_latency_ms_p50": pct(lat, 50),
            "decision_latency_ms_p95": pct(lat, 95),
            "decision_latency_ms_max": round(max(lat), 3) if lat else None,
            "overruns": self.clock.overruns,
            "note": "estimated device time (firmware_sim cost model on the profile), not measured",
        }

    def close(self, summary) -> None:
        summary["device"] = self.figures()


def mcu_target(bundle, profile_name: str, hop_frames, smoother):
    """(Detector on tflite-micro, McuClockSink, DMA block ms) for an MCU profile (the simulators'
    modules are imported here only: tflite-micro is the [sim] extra)."""
    try:
        from firmware_sim.calibrate import coefficients, load_counts
        from firmware_sim.cost import stage_costs
        from firmware_sim.mcu import MCU_LEVELS, judge_goals
        from firmware_sim.profiles import load_profile
        from firmware_sim.tflm import MicroBackend, find_arena_bytes
    except ImportError as exc:
        raise EdgeSedError(f"--profile needs the simulators ({exc}): {install_extra('sim')}") from None
    from edge_sed.core.loop import Detector

    profile = load_profile(profile_name)
    if profile.kind != "mcu":
        raise EdgeSedError(
            f"--profile {profile_name}: a {profile.kind} profile; listen runs MCU profiles live "
            "(a Pi profile needs its emulated measurement: use `edge-sed simulate`)"
        )
    if bundle.level not in MCU_LEVELS or bundle.form not in ("windowed", "stateful"):
        raise EdgeSedError(
            f"--profile runs a full-integer int8 bundle (windowed or stateful) on the MCU; "
            f"{bundle.path} is {bundle.level} {bundle.form}"
        )
    arena = find_arena_bytes(bundle.model_bytes)
    backend = MicroBackend(bundle.model_bytes, arena["arena_bytes"])
    costs = stage_costs(bundle, profile, coefficients(profile.kernel_build, load_counts()))
    hz = float(profile.clock_hz)
    block_s = profile.dma_block_samples / profile.sample_rate
    sink = McuClockSink(
        profile,
        lambda f, i, d: costs.block_cycles(f, i, d) / hz,
        block_s,
        goals=lambda duty_80, overruns: judge_goals(
            model_bytes=len(bundle.model_bytes),
            arena_bytes=arena["arena_min_bytes"],
            duty_at_80mhz=duty_80,
            overruns=overruns,
            notes=False,
        ),
    )
    return Detector(bundle, backend=backend, hop_frames=hop_frames, smoother=smoother), sink, block_s * 1000


def target_for(profile_name: str):
    """edge_sed.listen.run.listen's ``target`` hook for ``--profile profile_name``."""
    return lambda bundle, hop_frames, smoother: mcu_target(bundle, profile_name, hop_frames, smoother)
