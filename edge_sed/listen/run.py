"""``edge-sed listen``: the device loop on a microphone (or a file), live.

Stages (one object each, as in micro_speech): a source (edge_sed.listen.sources: microphone or
file, 16 kHz blocks with their arrival times) -> the detector (:class:`edge_sed.core.loop.Detector`:
front end -> model -> smoother) -> sinks (edge_sed.listen.sinks, edge_sed.listen.console: event
log, recording, console). :func:`run_loop` wires them and returns the summary. The detector and
the clock (``clock=``) are injectable, and :func:`listen`'s ``target`` hook swaps in another
detector and an extra sink, so a simulated target (firmware_sim.listen_mcu) runs the same loop.

Decision latency = clock time when the decision was made - arrival time of the block holding
the last sample the decision used (queueing + front end + model + smoother on this host).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections import Counter, deque
from contextlib import contextmanager
from contextlib import nullcontext as _nothing
from dataclasses import dataclass, field

import numpy as np

from edge_sed.core.errors import AudioError, EdgeSedError
from edge_sed.core.quiet import silenced_fds
from edge_sed.core.settings import SAMPLE_RATE
from edge_sed.listen.console import ConsoleSink, summary_text
from edge_sed.listen.sinks import JsonlSink, RecordSink, warn
from edge_sed.listen.sources import BLOCK_MS, DeviceError, FileSource, MicSource, PORTAUDIO_NOISE


class Stopped(BaseException):
    """SIGTERM asked the loop to stop (a BaseException, like KeyboardInterrupt)."""


@dataclass
class Stats:
    """What run_loop counts for the summary."""

    audio_samples: int = 0
    decisions: int = 0
    inferences: int = 0
    model_ms: list = field(default_factory=list)
    latency_ms: list = field(default_factory=list)
    events: Counter = field(default_factory=Counter)
    detected: list = field(default_factory=list)
    nonfinite: int = 0

    def add_decision(self, d, latency_s: float) -> None:
        self.decisions += 1
        self.inferences += d.inferences
        self.model_ms.append(d.model_s * 1000)
        self.latency_ms.append(latency_s * 1000)
        if d.scores is not None and not np.isfinite(d.scores).all():
            if not self.nonfinite:
                warn(
                    f"the model gave non-finite scores at {d.t_s:.2f} s: such decisions are ignored "
                    "(never an event) and counted in the summary (nonfinite_decisions)"
                )
            self.nonfinite += 1

    def add_event(self, event, latency_s: float) -> None:
        self.events[event.label] += 1
        self.detected.append(
            {
                "class": event.label,
                "stream_s": round(event.t_s, 4),
                "onset_s": round(event.estimated_onset_s, 4),
                "score": round(float(event.score), 4),
                "decision_latency_ms": round(latency_s * 1000, 2),
            }
        )


def pct(values, q):
    """The q-th percentile of ``values`` rounded to 3 decimals; None for no values."""
    return round(float(np.percentile(values, q)), 3) if values else None


def run_loop(
    detector,
    source,
    sinks,
    duration_s: float | None = None,
    clock=time.monotonic,
    cpu_clock=time.process_time,
) -> dict:
    """Feed ``source`` blocks through ``detector`` into ``sinks`` until the source ends,
    ``duration_s`` of audio has gone through, Ctrl-C (KeyboardInterrupt) or SIGTERM
    (:class:`Stopped`), or a DeviceError. Returns the summary; ``summary['stopped_by']`` says
    which ("end", "duration", "interrupt", "terminate", "error: ...")."""
    stats = Stats()
    wall0, cpu0 = clock(), cpu_clock()
    stopped_by = "end"
    error = None
    limit = int(duration_s * SAMPLE_RATE) if duration_s else None
    # arrival time of the most recent blocks, by the stream sample where each ends
    arrivals: deque = deque(maxlen=512)
    try:
        for block, arrived in source.blocks():
            if limit is not None:
                block = block[: max(0, limit - stats.audio_samples)]
            stats.audio_samples += len(block)
            arrivals.append((stats.audio_samples, arrived))
            _run_block(detector, block, arrived, arrivals, sinks, stats, clock)
            if limit is not None and stats.audio_samples >= limit:
                stopped_by = "duration"
                break
    except KeyboardInterrupt:
        stopped_by = "interrupt"
    except Stopped:
        stopped_by = "terminate"
    except (DeviceError, AudioError) as exc:
        stopped_by, error = f"error: {exc}", exc
    wall, cpu = clock() - wall0, cpu_clock() - cpu0
    summary = _summary(detector, source, stats, wall, cpu, stopped_by)
    for sink in sinks:
        sink.close(summary)
    if error is not None:
        summary["_error"] = error
    return summary


def _run_block(detector, block, arrived: float, arrivals, sinks, stats: Stats, clock) -> None:
    """One block through the detector and every sink; its decisions' latencies from ``arrivals``."""
    level = float(np.sqrt(np.mean(np.square(block)))) if len(block) else 0.0
    level_db = 20 * np.log10(level + 1e-9)
    for sink in sinks:
        sink.audio(block)
    frames0, inferences0 = detector.frames_seen, detector.inferences
    decisions = detector.push(block)
    frames, inferences = detector.frames_seen - frames0, detector.inferences - inferences0
    for sink in sinks:
        sink.block(len(block), frames, inferences, decisions)
    for d in decisions:
        now = clock()
        end_sample = int(round(d.t_s * SAMPLE_RATE))
        arrived_at = next((t for s, t in arrivals if s >= end_sample), arrived)
        latency = max(0.0, now - arrived_at)
        stats.add_decision(d, latency)
        for sink in sinks:
            sink.decision(d, level_db)
        if d.event is not None:
            stats.add_event(d.event, latency)
            for sink in sinks:
                sink.event(d.event, latency)


def _summary(detector, source, stats: Stats, wall: float, cpu: float, stopped_by: str) -> dict:
    return {
        "source": source.name,
        "capture_hz": getattr(source, "capture_hz", SAMPLE_RATE),
        "bundle": str(detector.bundle.path),
        "form": detector.bundle.form,
        "level": detector.bundle.level,
        "hop_ms": round(detector.hop_frames * detector.frame_s * 1000, 3),
        "audio_s": round(stats.audio_samples / SAMPLE_RATE, 3),
        "wall_s": round(wall, 3),
        "decisions": stats.decisions,
        "inferences": stats.inferences,
        "inference_ms_p50": pct(stats.model_ms, 50),
        "inference_ms_p99": pct(stats.model_ms, 99),
        "inference_note": (
            "model time per decision (streaming: every frame's invokes of the staggered states)"
        ),
        "decision_latency_ms_p50": pct(stats.latency_ms, 50),
        "decision_latency_ms_p95": pct(stats.latency_ms, 95),
        "cpu_percent_one_core": round(100.0 * cpu / wall, 1) if wall > 0 else None,
        "cpu_note": "process CPU time (all threads) / wall time; 100 = one core busy",
        "overflows": int(source.overflows),
        "dropped_blocks": int(source.dropped_blocks),
        "events": sum(stats.events.values()),
        "events_by_class": dict(stats.events),
        "nonfinite_decisions": stats.nonfinite,
        "stopped_by": stopped_by,
        "detected": stats.detected,
    }


def _raise_stopped(signum, frame):
    raise Stopped()


WINDOWED_HOP_MS = 250.0
"""listen's decision hop for windowed bundles (a stateful bundle decides every frame)."""


def _smoother(bundle, threshold, thresholds, average_window_ms, suppression_ms, minimum_count):
    """The smoother: defaults are what the bundle was calibrated with (a stateful bundle's manifest
    'smoother'), else the smoother's own; every option given overrides its part."""
    from edge_sed.core.smoother import (
        DEFAULT_AVERAGE_WINDOW_MS,
        DEFAULT_MINIMUM_COUNT,
        DEFAULT_SUPPRESSION_MS,
        DEFAULT_THRESHOLD,
        Smoother,
    )

    calibrated = bundle.manifest.get("smoother") or {}
    base = calibrated.get("thresholds", DEFAULT_THRESHOLD)
    th = threshold if threshold is not None else base
    if thresholds:
        th = {**({l: th for l in bundle.labels} if not isinstance(th, dict) else th), **thresholds}

    def pick(given, key, default):
        return given if given is not None else calibrated.get(key, default)

    return Smoother(
        bundle.labels,
        threshold=th,
        average_window_ms=pick(average_window_ms, "average_window_ms", DEFAULT_AVERAGE_WINDOW_MS),
        suppression_ms=pick(suppression_ms, "suppression_ms", DEFAULT_SUPPRESSION_MS),
        minimum_count=pick(minimum_count, "minimum_count", DEFAULT_MINIMUM_COUNT),
    )


def _hop_frames(bundle, hop_ms, smoother):
    """The decision hop in front-end frames (None: a stateful bundle's own stride), refused when
    the smoother could never fire at that hop."""
    if hop_ms is None and bundle.form != "stateful":
        hop_ms = WINDOWED_HOP_MS
    frame_ms = bundle.frontend.hop_ms
    hop_frames = max(1, int(round(hop_ms / frame_ms))) if hop_ms else None
    fe = bundle.frontend
    smoother.check_hop((hop_frames or bundle.hop_frames) * fe.hop_samples / fe.sample_rate)
    return hop_frames


def listen(
    bundle_path,
    *,
    device=None,
    file=None,
    realtime=False,
    threshold=None,
    thresholds=None,
    average_window_ms=None,
    suppression_ms=None,
    minimum_count=None,
    hop_ms=None,
    duration_s=None,
    log=None,
    record=None,
    as_json=False,
    live=None,
    capture_hz=None,
    target=None,
) -> int:
    """The ``edge-sed listen`` command: runs until the end of the file, ``duration_s``, Ctrl-C
    or SIGTERM, prints the summary (JSON with ``as_json``) and returns the exit code: 0 at the
    end, after ``duration_s`` or on SIGTERM; 130 on Ctrl-C. A lost device raises DeviceError
    after the summary is printed and the log closed (every event already in it). ``target``
    (``listen --profile``: firmware_sim.listen_mcu) is called as ``target(bundle, hop_frames,
    smoother)`` and returns (detector, an extra sink or None, block ms) to run instead of the
    host's detector and 20 ms blocks."""
    from edge_sed.core.bundle import load_bundle
    from edge_sed.core.loop import Detector

    for option, value in (("--hop-ms", hop_ms), ("--duration", duration_s)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise EdgeSedError(f"{option} {value!r}: must be a finite number > 0")
    bundle = load_bundle(bundle_path)  # checks the checksum before anything runs
    smoother = _smoother(bundle, threshold, thresholds, average_window_ms, suppression_ms, minimum_count)
    hop_frames = _hop_frames(bundle, hop_ms, smoother)
    if target is not None:
        detector, target_sink, block_ms = target(bundle, hop_frames, smoother)
    else:
        detector = Detector(bundle, hop_frames=hop_frames, smoother=smoother)
        target_sink, block_ms = None, BLOCK_MS
    with _nothing() if file else silenced_fds((2,), noise=PORTAUDIO_NOISE):
        source = (
            FileSource(file, realtime=realtime, block_ms=block_ms)
            if file
            else MicSource(device, capture_hz=capture_hz, block_ms=block_ms)
        )
    sinks = [JsonlSink(log)] if log else []
    sinks += [RecordSink(record)] if record else []
    sinks += [target_sink] if target_sink is not None else []
    with _stop_signals(), _nothing() if file else silenced_fds((2,), noise=PORTAUDIO_NOISE), source:
        # the console last: an event is on disk (JSONL, fsync'd) before it is shown, so a kill
        # can never leave a shown event out of the log
        sinks.append(ConsoleSink(bundle.labels, source.name, live=live, quiet=as_json))
        summary = run_loop(detector, source, sinks, duration_s=duration_s)
    return _report(summary, as_json)


@contextmanager
def _stop_signals():
    """SIGTERM stops listen (``Stopped``), and so does Ctrl-C even where the shell started it
    with SIGINT ignored (a background job); the old handlers come back after. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = (
        signal.signal(signal.SIGTERM, _raise_stopped),
        signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def _report(summary: dict, as_json: bool) -> int:
    """Print the summary; the exit code (a lost device's DeviceError raised after it)."""
    error = summary.pop("_error", None)
    code = 130 if summary["stopped_by"] == "interrupt" else (error.exit_code if error else 0)
    summary["exit_code"] = code
    if as_json:
        print(json.dumps(summary, indent=2), flush=True)
    else:
        print(summary_text(summary), flush=True)
    if error is not None:
        raise error
    if code == 130:
        raise KeyboardInterrupt  # the CLI's main() turns it into exit status 130
    return code
