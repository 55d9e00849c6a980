"""The virtual device clock: the firmware loop (edge_sed.core.loop.Detector: front end -> model ->
smoother) fed a stream in DMA blocks at device pace, its time advanced by what each block's work
costs on the device. Used by the MCU simulator (costs from firmware_sim.cost) and the Pi
simulator (its own costs), so both charge time the same way.

Timing model (one core, blocks processed in arrival order):
- block k (``block_samples`` samples) is complete, and its DMA interrupt fires, at
  ``arrive_k = (k + 1) * block_s``;
- its work starts at ``max(arrive_k, end of the previous block's work)`` and lasts
  ``work_s(frames, inferences, decisions)`` - the front-end frames, model invokes and smoother
  updates the Detector did for that block;
- overrun: the work of block k ends after block k+1 has arrived (a missed deadline: the backlog
  grows and must be caught up);
- drop: the DMA ring holds ``ring_blocks`` buffers; block k's buffer is refilled by block
  k + ring_blocks from ``arrive_{k + ring_blocks - 1}`` on. If block k's work has not started by
  then its audio is lost: the loop then sees zeros in its place (stream time stays aligned) and
  still pays for processing it;
- a decision's device time is the end of its block's work; decision latency = device time -
  the stream time of the end of the audio it used. Events carry the device time.
The Detector's scores do not depend on timing, so a stream is traced once (what each block
does) and replayed on any number of clocks; only a clock that drops blocks re-traces the stream
with those blocks zeroed (the work per block does not depend on the audio, so one re-trace is
exact).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edge_sed.core.events import Event


@dataclass
class BlockTrace:
    frames: int  # front-end frames computed for this block
    inferences: int  # model invokes
    decisions: list  # edge_sed.core.loop.Decision objects


def trace_blocks(
    detector,
    audio: np.ndarray,
    block_samples: int,
    zeroed: frozenset = frozenset(),
    progress: Callable[[int, int], None] | None = None,
) -> list[BlockTrace]:
    """Run the detector over the stream block by block and record each block's work."""
    detector.reset()
    n_blocks = len(audio) // block_samples
    trace = []
    for k in range(n_blocks):
        block = audio[k * block_samples : (k + 1) * block_samples]
        if k in zeroed:
            block = np.zeros_like(block)
        frames0, inf0 = detector.frames_seen, detector.inferences
        decisions = detector.push(block)
        trace.append(BlockTrace(detector.frames_seen - frames0, detector.inferences - inf0, decisions))
        if progress and (k % 100 == 0 or k == n_blocks - 1):
            progress(k + 1, n_blocks)
    return trace


@dataclass
class ClockResult:
    block_s: float
    blocks: int
    duration_s: float
    busy_s: float
    overruns: int  # blocks whose work ended after the next block arrived
    dropped: list[int]  # blocks whose audio was overwritten before processing
    max_backlog_blocks: int  # most blocks held at once (arrived, work not finished)
    events: list[Event]  # device-time events
    decision_latencies_s: np.ndarray  # device time - audio end, per decision
    decisions: int
    worst_block_work_s: float
    block_work_s: np.ndarray = field(repr=False)

    @property
    def duty_cycle(self) -> float:
        return self.busy_s / self.duration_s if self.duration_s else float("nan")

    def summary(self) -> dict:
        lat = self.decision_latencies_s
        return {
            "blocks": self.blocks,
            "block_ms": self.block_s * 1e3,
            "duration_s": self.duration_s,
            "busy_s": self.busy_s,
            "duty_cycle": self.duty_cycle,
            "overruns": self.overruns,
            "dropped_blocks": len(self.dropped),
            "max_backlog_blocks": self.max_backlog_blocks,
            "decisions": self.decisions,
            "decision_latency_median_ms": float(np.median(lat) * 1e3) if len(lat) else None,
            "decision_latency_worst_ms": float(lat.max() * 1e3) if len(lat) else None,
            "worst_block_work_ms": self.worst_block_work_s * 1e3,
            "mean_block_work_ms": float(self.block_work_s.mean() * 1e3) if len(self.block_work_s) else None,
        }


class DeviceClock:
    """The timing model (module docstring), one block at a time: :func:`run_clock` replays a trace
    on it, ``edge-sed listen --profile`` (firmware_sim.listen_mcu) a live stream."""

    def __init__(self, block_s: float, ring_blocks: int = 2):
        if ring_blocks < 1:
            raise ValueError("ring_blocks must be at least 1")
        self.block_s, self.ring_blocks = block_s, ring_blocks
        self.free_at = self.busy = 0.0
        self.blocks = self.overruns = self.max_backlog = 0
        self.dropped: list[int] = []
        self._in_flight: deque = deque()  # end times of blocks that have arrived

    def step(self, arrive: float, work_s: float) -> float:
        """Charge the next block, complete at ``arrive``, ``work_s`` seconds of work; returns the
        device time its work ends (the device time of its decisions)."""
        k = self.blocks
        start = max(arrive, self.free_at)
        # (k + ring_blocks) * block_s = arrive_{k + ring_blocks - 1}: the DMA refills block k's buffer
        if start > (k + self.ring_blocks) * self.block_s:
            self.dropped.append(k)
        end = start + work_s
        self.busy += work_s
        self.free_at = end
        if end > arrive + self.block_s:
            self.overruns += 1
        while self._in_flight and self._in_flight[0] <= arrive:
            self._in_flight.popleft()
        self._in_flight.append(end)
        self.max_backlog = max(self.max_backlog, len(self._in_flight))
        self.blocks += 1
        return end


def run_clock(
    trace: list[BlockTrace], block_s: float, work_s: Callable[[int, int, int], float], ring_blocks: int = 2
) -> ClockResult:
    """Replay a trace on a device whose work per block costs ``work_s(frames, inferences,
    decisions)`` seconds (timing model: module docstring)."""
    clock = DeviceClock(block_s, ring_blocks)
    n = len(trace)
    events, latencies = [], []
    work = np.zeros(n)
    for k, b in enumerate(trace):
        w = work_s(b.frames, b.inferences, len(b.decisions))
        work[k] = w
        end = clock.step((k + 1) * block_s, w)
        for d in b.decisions:
            latencies.append(end - d.t_s)
            if d.event is not None:
                events.append(
                    Event(d.event.label, d.event.score, end, d.event.onset_s)
                )  # heard when it began
    return ClockResult(
        block_s,
        n,
        n * block_s,
        clock.busy,
        clock.overruns,
        clock.dropped,
        clock.max_backlog,
        events,
        np.asarray(latencies),
        sum(len(b.decisions) for b in trace),
        float(work.max()) if n else 0.0,
        work,
    )


def simulate_stream(
    detector,
    audio: np.ndarray,
    block_samples: int,
    sample_rate: int,
    work_s: Callable[[int, int, int], float],
    ring_blocks: int = 2,
    trace: list[BlockTrace] | None = None,
    progress=None,
) -> tuple[ClockResult, list[BlockTrace]]:
    """Trace (unless given) and replay; re-trace with dropped blocks zeroed if the clock drops
    any. Returns (result, the trace without drops for reuse on other clocks)."""
    clean = trace if trace is not None else trace_blocks(detector, audio, block_samples, progress=progress)
    block_s = block_samples / sample_rate
    result = run_clock(clean, block_s, work_s, ring_blocks)
    if result.dropped:
        lossy = trace_blocks(
            detector, audio, block_samples, zeroed=frozenset(result.dropped), progress=progress
        )
        result = run_clock(lossy, block_s, work_s, ring_blocks)
    return result, clean
