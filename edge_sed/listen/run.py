"""``edge-sed listen``: the device loop on a microphone (or a file), live.

Stages (one object each, as in micro_speech):
- source: :class:`MicSource` (a sounddevice.InputStream whose callback only copies the block
  into a bounded queue and counts overflows) or :class:`FileSource` (a file streamed in blocks,
  at real-time pace or as fast as possible). Both yield ``(block, arrival_time_s)``: 16 kHz
  mono float32 and the clock time at which the block became available.
- detector: :class:`edge_sed.core.loop.Detector` (front end -> model -> smoother).
- sinks: :class:`ConsoleSink` (rich live display on a terminal, plain lines otherwise),
  :class:`JsonlSink` (one JSON object per event, flushed at once).
:func:`run_loop` wires them and returns the summary. The model backend (Detector) and the clock
(``clock=``) are injectable, so a simulated target can run the same loop.

Decision latency = clock time when the decision was made - arrival time of the block holding
the last sample the decision used (queueing + front end + model + smoother on this host).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import queue
import shutil
import signal
import sys
import threading
import time
from collections import Counter, deque
from contextlib import nullcontext as _nothing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_sed.core.audio_io import AudioStream, _kaiser_lowpass, resample_factors
from edge_sed.core.errors import AudioError, EdgeSedError, install_extra, printable
from edge_sed.core.settings import SAMPLE_RATE

BLOCK_MS = 20
"""Microphone/file block: 20 ms (320 samples at 16 kHz)."""
QUEUE_S = 2.0
"""The callback->worker queue holds this much audio; beyond it blocks are dropped (counted)."""
STALL_S = 3.0
"""No audio from a running input stream for this long means the device is gone."""


class DeviceError(EdgeSedError):
    """No usable input device, or the device went away mid-stream."""


class Stopped(BaseException):
    """SIGTERM asked the loop to stop (a BaseException, like KeyboardInterrupt)."""


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # libportaudio missing
        raise DeviceError(f"PortAudio is not available ({exc}); install libportaudio2") from None
    return sounddevice


# ------------------------------------------------------------------------------ resampling


class StreamingResampler:
    """Block-by-block form of edge_sed.core.audio_io.resample_poly (same Kaiser-windowed filter):
    the concatenated output equals resample_poly of the concatenated input, except the last
    few samples, which need input that has not arrived yet (half the filter: < 1 ms)."""

    def __init__(self, from_hz: int, to_hz: int = SAMPLE_RATE):
        self.up, self.down = resample_factors(from_hz, to_hz)  # bounded, as resample_poly's
        self.half_len = 10 * max(self.up, self.down)
        h = _kaiser_lowpass(2 * self.half_len + 1, 1.0 / max(self.up, self.down)) * self.up
        self.taps = -(-len(h) // self.up)
        phases = np.zeros((self.up, self.taps))
        for p in range(self.up):
            sub = h[p :: self.up]
            phases[p, : len(sub)] = sub
        self.phases = phases[:, ::-1]
        self._buf = np.zeros(self.taps - 1)  # padded input: buf[i] is x[i - (taps - 1) + offset]
        self._offset = 0  # x index of buf[taps - 1]
        self._n = 0  # next output index

    def push(self, block: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return np.asarray(block, np.float32)
        self._buf = np.concatenate([self._buf, np.asarray(block, np.float64).reshape(-1)])
        last_x = self._offset + len(self._buf) - self.taps  # last x index available
        # output n needs x up to (n * down + half_len) // up
        n_end = max(self._n, ((last_x + 1) * self.up - self.half_len + self.down - 1) // self.down)
        s = np.arange(self._n, n_end) * self.down + self.half_len
        centre = s // self.up - self._offset  # buf index of the last tap's x is centre + taps - 1
        windows = np.lib.stride_tricks.sliding_window_view(self._buf, self.taps)
        y = np.einsum("nk,nk->n", windows[centre], self.phases[s % self.up]) if len(s) else np.zeros(0)
        self._n = n_end
        # keep what the next output needs: from its first x minus taps - 1
        keep_from = (self._n * self.down + self.half_len) // self.up - self._offset
        keep_from = max(0, min(keep_from, len(self._buf) - self.taps + 1))
        self._buf = self._buf[keep_from:]
        self._offset += keep_from
        return y.astype(np.float32)


# ---------------------------------------------------------------------------------- sources


def input_devices() -> list[dict]:
    """PortAudio's input devices: index, name, host API, channels, default sample rate."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except Exception as exc:
        raise DeviceError(f"cannot list audio devices ({exc})") from None
    apis = {i: a["name"] for i, a in enumerate(sd.query_hostapis())}
    return [
        {
            "index": d["index"],
            "name": d["name"],
            "hostapi": apis.get(d["hostapi"], "?"),
            "input_channels": d["max_input_channels"],
            "default_samplerate": d["default_samplerate"],
            "default": d["index"] == default_in,
        }
        for d in devices
        if d["max_input_channels"] > 0
    ]


def resolve_device(device) -> dict:
    """The input device for ``device`` (None: the default; an int or digit string: an index;
    else a case-insensitive substring of the name); DeviceError naming `edge-sed devices`."""
    sd = _sounddevice()
    hint = "run `edge-sed devices` to list the input devices"
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device)
    try:
        info = sd.query_devices(device, "input")
    except (ValueError, sd.PortAudioError) as exc:
        if device is None:
            raise DeviceError(f"no microphone: PortAudio finds no default input device; {hint}") from None
        raise DeviceError(f"no input device {device!r} ({str(exc).splitlines()[0]}); {hint}") from None
    if info["max_input_channels"] < 1:
        raise DeviceError(f"device {device!r} ({info['name']}) has no input channels; {hint}")
    return info


class MicSource:
    """A microphone through sounddevice.InputStream. ``capture_hz`` None tries 16 kHz and falls
    back to the device's default rate (resampled to 16 kHz here, in the worker)."""

    def __init__(
        self,
        device=None,
        block_ms: float = BLOCK_MS,
        capture_hz: int | None = None,
        clock=time.monotonic,
        stall_s: float = STALL_S,
    ):
        self.info = resolve_device(device)
        self.device = self.info["index"]
        self.block_ms = block_ms
        self.clock = clock
        self.stall_s = stall_s
        self.overflows = 0
        self.dropped_blocks = 0
        self.capture_hz = capture_hz
        self.name = f"{self.info['name']} (device {self.device})"
        self._queue: queue.Queue = queue.Queue(maxsize=max(4, int(QUEUE_S * 1000 / block_ms)))
        self._stream = None
        self._finished = threading.Event()

    def _callback(self, indata, frames, time_info, status):
        # real-time thread: copy, count, never block
        if status.input_overflow:
            self.overflows += 1
        try:
            self._queue.put_nowait((indata[:, 0].copy(), self.clock()))
        except queue.Full:
            self.dropped_blocks += 1

    def _open(self, rate: int):
        sd = _sounddevice()
        stream = sd.InputStream(
            device=self.device,
            channels=1,
            samplerate=rate,
            dtype="float32",
            blocksize=int(round(rate * self.block_ms / 1000)),
            callback=self._callback,
            finished_callback=self._finished.set,
        )
        stream.start()
        return stream

    def __enter__(self):
        sd = _sounddevice()
        rates = [self.capture_hz] if self.capture_hz else [SAMPLE_RATE, int(self.info["default_samplerate"])]
        error = None
        for rate in dict.fromkeys(rates):
            try:
                self._stream = self._open(rate)
                self.capture_hz = rate
                break
            except (sd.PortAudioError, ValueError) as exc:
                error = exc
        if self._stream is None:
            raise DeviceError(
                f"cannot open {self.name} at {' or '.join(map(str, dict.fromkeys(rates)))} Hz "
                f"({str(error).splitlines()[0]}); run `edge-sed devices`"
            )
        self._resampler = StreamingResampler(self.capture_hz) if self.capture_hz != SAMPLE_RATE else None
        return self

    def __exit__(self, *exc):
        if self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:  # closing a lost device can fail too; nothing left to save
                pass
            self._stream = None

    def blocks(self):
        """Yield (16 kHz block, arrival clock time) until the stream ends; DeviceError when the
        device stops delivering audio."""
        last = self.clock()
        while True:
            try:
                block, arrived = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._finished.is_set() or (self._stream is not None and not self._stream.active):
                    raise DeviceError(f"input device {self.name} stopped (unplugged or its server went away)")
                if self.clock() - last > self.stall_s:
                    raise DeviceError(
                        f"input device {self.name} delivered no audio for {self.stall_s:g} s "
                        "(unplugged or its server went away)"
                    )
                continue
            last = self.clock()
            if self._resampler is not None:
                block = self._resampler.push(block)
            yield block, arrived


class FileSource:
    """A file, a named pipe or standard input ("-") streamed in blocks (never loaded whole: an
    edge_sed.core.audio_io.AudioStream, opened once); ``realtime`` releases each block when its last
    sample would have been recorded, else as fast as the loop takes them."""

    overflows = dropped_blocks = 0

    def __init__(
        self, path, block_ms: float = BLOCK_MS, realtime: bool = False, clock=time.monotonic, sleep=time.sleep
    ):
        self.stream = AudioStream(path)
        self.capture_hz = self.stream.sample_rate
        self.block_ms, self.realtime, self.clock, self.sleep = block_ms, realtime, clock, sleep
        self.name = self.stream.name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()

    def blocks(self):
        rate = self.capture_hz
        resampler = StreamingResampler(rate) if rate != SAMPLE_RATE else None
        start, samples = self.clock(), 0
        for block in self.stream.blocks(int(round(rate * self.block_ms / 1000))):
            samples += len(block)
            if self.realtime:
                due = start + samples / rate
                wait = due - self.clock()
                if wait > 0:
                    self.sleep(wait)
            arrived = self.clock()
            yield (resampler.push(block) if resampler else block), arrived


# ------------------------------------------------------------------------------------ sinks


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _warn(message: str) -> None:
    try:
        print(f"warning: {printable(message)}", file=sys.stderr, flush=True)
    except OSError:
        pass


class JsonlSink:
    """Appends one JSON object per event and flushes it at once, so a crash or kill loses
    nothing already reported. A write that fails (a full disk) does not stop the detector:
    one warning line, the half-written line is cut off, and the events that could not be
    logged are counted in the summary (``events_not_logged``)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.error: str | None = None
        self.not_logged = 0
        self._f = None
        try:
            self._f = open(self.path, "ab", buffering=0)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise EdgeSedError(f"{self.path}: cannot open the event log ({exc.strerror})") from None
            self.error = exc.strerror
            _warn(
                f"{self.path}: no event log ({self.error}); detection goes on, events not logged are counted "
                "in the summary"
            )

    def event(self, event, latency_s: float) -> None:
        if self.error is not None:
            self.not_logged += 1
            return
        record = {
            "time": _iso_now(),
            "stream_s": round(event.t_s, 4),
            "onset_s": round(event.estimated_onset_s, 4),
            "class": event.label,
            "score": round(float(event.score), 4),
            "decision_latency_ms": round(latency_s * 1000, 2),
        }
        line = (json.dumps(record) + "\n").encode()
        fd = self._f.fileno()
        start = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(line):
                written += self._f.write(line[written:])
            os.fsync(fd)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            self.not_logged += 1
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)  # no half line for the next reader
            _warn(
                f"{self.path}: the event log is lost from {event.t_s:.2f} s on ({self.error}); "
                "detection goes on, events not logged are counted in the summary"
            )

    def decision(self, decision, level_db: float) -> None:
        pass

    def close(self, summary) -> None:
        with contextlib.suppress(OSError):
            if self._f is not None:
                self._f.close()
        if self.error is not None:
            summary["log_error"] = f"{self.path}: {self.error}"
            summary["events_not_logged"] = self.not_logged


class RecordSink:
    """Writes the 16 kHz audio that went through the loop to a 16-bit WAV as it goes (what the
    microphone heard, for replay with --file); the header is final once closed. A full disk
    (at the start or later) loses the recording, with one warning line, not the detector."""

    FULL_BYTES = 64 * 1024
    """Less free space than this when soundfile fails: the disk is full (libsndfile says only
    "System error")."""

    def __init__(self, path):
        import soundfile as sf

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.error: str | None = None
        self.samples = 0
        self._f = None
        try:
            self._f = sf.SoundFile(str(self.path), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16")
        except Exception as exc:
            if not self._disk_full():
                raise EdgeSedError(f"{self.path}: cannot record here ({str(exc).splitlines()[0]})") from None
            self._lost(exc)

    def _disk_full(self) -> bool:
        try:
            return shutil.disk_usage(self.path.parent).free < self.FULL_BYTES
        except OSError:
            return False

    def _lost(self, exc) -> None:
        self.error = (
            "disk full"
            if self._disk_full()
            else str(exc).splitlines()[0]
            if str(exc).strip()
            else type(exc).__name__
        )
        _warn(
            f"{self.path}: the recording is lost after {self.samples / SAMPLE_RATE:.2f} s ({self.error}); "
            "detection goes on"
        )

    def audio(self, block) -> None:
        if self.error is not None:
            return
        try:
            self._f.write(np.clip(block, -1.0, 1.0))
            self.samples += len(block)
        except (OSError, RuntimeError) as exc:  # soundfile's LibsndfileError is a RuntimeError
            self._lost(exc)

    def event(self, event, latency_s: float) -> None:
        pass

    def decision(self, decision, level_db: float) -> None:
        pass

    def close(self, summary) -> None:
        try:
            if self._f is not None:
                self._f.close()
        except (OSError, RuntimeError) as exc:
            if self.error is None:
                self._lost(exc)
        if self.error is not None:
            summary["record_error"] = f"{self.path}: {self.error}"


class DeviceClock:
    """``--profile``: the live stream on a simulated MCU. The model is the bundle's int8 model run
    by tflite-micro (firmware_sim's TFLM backend: the scores are the MCU's), and a virtual device
    clock (firmware_sim.clock's timing model, kept up block by block) charges each block the
    profile's estimated cycles for the frames, invokes and smoother updates it caused: device
    time of a block = max(its arrival, end of the previous block's work) + work. Reports device
    decision latency, duty cycle and overruns (work ending after the next block arrived)."""

    def __init__(self, profile, work_s, block_s: float, goals=None):
        self.profile, self.work_s, self.block_s = profile, work_s, block_s
        self.goals = goals  # (duty cycle at 80 MHz, overruns) -> firmware_sim.mcu.judge_goals' verdicts
        self.free_at = self.busy = 0.0
        self.blocks = self.overruns = 0
        self.latency_s: list = []
        self.stream_s = 0.0

    def block(self, n_samples: int, frames: int, inferences: int, decisions) -> None:
        self.stream_s += n_samples / SAMPLE_RATE
        arrive = self.stream_s
        w = self.work_s(frames, inferences, len(decisions))
        end = max(arrive, self.free_at) + w
        self.busy += w
        self.free_at = end
        self.blocks += 1
        if end > arrive + self.block_s:
            self.overruns += 1
        self.latency_s += [end - d.t_s for d in decisions]

    def figures(self) -> dict:
        lat = [x * 1000 for x in self.latency_s]
        duty = round(self.busy / self.stream_s, 4) if self.stream_s else None
        goals = (
            self.goals(round(duty * self.profile.clock_hz / 80e6, 4), self.overruns)
            if self.goals and duty is not None
            else {}
        )
        return {
            "profile": self.profile.name,
            "device": self.profile.description,
            "goals": goals,
            "duty_cycle": duty,
            "decision_latency_ms_p50": _pct(lat, 50),
            "decision_latency_ms_p95": _pct(lat, 95),
            "decision_latency_ms_max": round(max(lat), 3) if lat else None,
            "overruns": self.overruns,
            "note": "estimated device time (firmware_sim cost model on the profile), not measured",
        }

    def event(self, event, latency_s: float) -> None:
        pass

    def decision(self, decision, level_db: float) -> None:
        pass

    def close(self, summary) -> None:
        summary["device"] = self.figures()


def mcu_target(bundle, profile_name: str, hop_frames, smoother):
    """(Detector on tflite-micro, DeviceClock, DMA block ms) for an MCU profile of firmware_sim
    (imported here only: the [sim] extra)."""
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
    clock = DeviceClock(
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
    return Detector(bundle, backend=backend, hop_frames=hop_frames, smoother=smoother), clock, block_s * 1000


class ConsoleSink:
    """Live rich display on a terminal (input level, top class and score, recent events), else
    one plain line per event on stdout. ``quiet`` (for --json) prints nothing."""

    def __init__(self, labels, source_name: str, live: bool | None = None, quiet: bool = False):
        self.labels, self.source_name, self.quiet = labels, source_name, quiet
        self.live_mode = (sys.stdout.isatty() if live is None else live) and not quiet
        self.recent: deque = deque(maxlen=8)
        self.level_db, self.top, self.score, self.t_s = -120.0, "-", 0.0, 0.0
        self._live = None
        self._last_draw = 0.0
        if self.live_mode:
            from rich.live import Live

            self._live = Live(self._render(), refresh_per_second=8, transient=False)
            self._live.start()

    def _render(self):
        from rich.table import Table

        bar_n = int(max(0.0, min(1.0, (self.level_db + 60) / 60)) * 30)
        t = Table.grid(padding=(0, 2))
        t.add_row("source", self.source_name)
        t.add_row("stream", f"{self.t_s:8.1f} s")
        t.add_row("level", f"[green]{'#' * bar_n}[/green]{'.' * (30 - bar_n)} {self.level_db:6.1f} dBFS")
        t.add_row("top", f"[bold]{self.top}[/bold] {self.score:.2f}")
        for e, lat in reversed(self.recent):
            t.add_row(
                "[yellow]event[/yellow]",
                f"{e.t_s:8.2f} s  [bold]{e.label}[/bold]  {e.score:.2f}  ({lat * 1000:.0f} ms)",
            )
        return t

    def event(self, event, latency_s: float) -> None:
        self.recent.append((event, latency_s))
        if self.quiet:
            return
        if not self.live_mode:
            print(
                f"{event.t_s:9.2f} s  {event.label:<10} {event.score:.2f}  "
                f"(began {event.estimated_onset_s:.2f} s; "
                f"decided in {latency_s * 1000:.1f} ms)",
                flush=True,
            )

    def decision(self, decision, level_db: float) -> None:
        avg = decision.average if decision.average is not None else decision.scores
        top = int(np.argmax(avg))
        self.top, self.score, self.level_db, self.t_s = (
            self.labels[top],
            float(avg[top]),
            level_db,
            decision.t_s,
        )
        if self._live is not None and time.monotonic() - self._last_draw > 0.1:
            self._live.update(self._render())
            self._last_draw = time.monotonic()

    def close(self, summary) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()


# ------------------------------------------------------------------------------------- loop


@dataclass
class Stats:
    audio_samples: int = 0
    decisions: int = 0
    inferences: int = 0
    model_ms: list = field(default_factory=list)
    latency_ms: list = field(default_factory=list)
    events: Counter = field(default_factory=Counter)
    detected: list = field(default_factory=list)
    peak_queue_s: float = 0.0
    nonfinite: int = 0


def _pct(values, q):
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
            level = float(np.sqrt(np.mean(np.square(block)))) if len(block) else 0.0
            level_db = 20 * np.log10(level + 1e-9)
            for sink in sinks:
                if hasattr(sink, "audio"):
                    sink.audio(block)
            frames0, inferences0 = detector.frames_seen, detector.inferences
            decisions = detector.push(block)
            for sink in sinks:
                if hasattr(sink, "block"):
                    sink.block(
                        len(block),
                        detector.frames_seen - frames0,
                        detector.inferences - inferences0,
                        decisions,
                    )
            for d in decisions:
                now = clock()
                end_sample = int(round(d.t_s * SAMPLE_RATE))
                arrived_at = next((t for s, t in arrivals if s >= end_sample), arrived)
                latency = max(0.0, now - arrived_at)
                stats.decisions += 1
                stats.inferences += d.inferences
                stats.model_ms.append(d.model_s * 1000)
                stats.latency_ms.append(latency * 1000)
                if d.scores is not None and not np.isfinite(d.scores).all():
                    if not stats.nonfinite:
                        _warn(
                            f"the model gave non-finite scores at {d.t_s:.2f} s: such decisions are ignored "
                            "(never an event) and counted in the summary (nonfinite_decisions)"
                        )
                    stats.nonfinite += 1
                for sink in sinks:
                    sink.decision(d, level_db)
                if d.event is not None:
                    stats.events[d.event.label] += 1
                    stats.detected.append(
                        {
                            "class": d.event.label,
                            "stream_s": round(d.event.t_s, 4),
                            "onset_s": round(d.event.estimated_onset_s, 4),
                            "score": round(float(d.event.score), 4),
                            "decision_latency_ms": round(latency * 1000, 2),
                        }
                    )
                    for sink in sinks:
                        sink.event(d.event, latency)
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
    audio_s = stats.audio_samples / SAMPLE_RATE
    summary = {
        "source": source.name,
        "capture_hz": getattr(source, "capture_hz", SAMPLE_RATE),
        "bundle": str(detector.bundle.path),
        "form": detector.bundle.form,
        "level": detector.bundle.level,
        "hop_ms": round(detector.hop_frames * detector.frame_s * 1000, 3),
        "audio_s": round(audio_s, 3),
        "wall_s": round(wall, 3),
        "decisions": stats.decisions,
        "inferences": stats.inferences,
        "inference_ms_p50": _pct(stats.model_ms, 50),
        "inference_ms_p99": _pct(stats.model_ms, 99),
        "inference_note": (
            "model time per decision (streaming: every frame's invokes of the staggered states)"
        ),
        "decision_latency_ms_p50": _pct(stats.latency_ms, 50),
        "decision_latency_ms_p95": _pct(stats.latency_ms, 95),
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
    for sink in sinks:
        sink.close(summary)
    if error is not None:
        summary["_error"] = error
    return summary


def summary_text(s: dict) -> str:
    by = ", ".join(f"{k} {v}" for k, v in sorted(s["events_by_class"].items())) or "none"
    lost = "".join(
        [
            f"; NON-FINITE model scores in {s['nonfinite_decisions']} decisions (ignored)"
            if s.get("nonfinite_decisions")
            else "",
            f"; event log lost ({s['log_error']}): {s['events_not_logged']} events not logged"
            if s.get("log_error")
            else "",
            f"; recording lost ({s['record_error']})" if s.get("record_error") else "",
        ]
    )
    return (
        f"{s['audio_s']:.1f} s of audio from {printable(str(s['source']))} ({s['level']} {s['form']}, "
        f"hop {s['hop_ms']:g} ms): "
        f"{s['events']} events ({by}); "
        + (
            f"inference {s['inference_ms_p50']} ms p50 / {s['inference_ms_p99']} ms p99 per decision; "
            f"decision latency {s['decision_latency_ms_p50']} ms p50; "
            if s["inference_ms_p50"] is not None
            else "no decision yet (less than one window of audio); "
        )
        + f"CPU {s['cpu_percent_one_core']} % of one core; overflows {s['overflows']}, "
        f"dropped blocks {s['dropped_blocks']}; stopped by {printable(s['stopped_by'])}"
        + printable(lost)
        + (
            f"\non {s['device']['profile']} (estimated): "
            f"duty cycle {100 * (s['device']['duty_cycle'] or 0):.1f} %, "
            f"device decision latency {s['device']['decision_latency_ms_p50']} ms p50 / "
            f"{s['device']['decision_latency_ms_max']} ms max, overruns {s['device']['overruns']}"
            + (
                "; goals: "
                + ", ".join(
                    f"{k} {'met' if g['met'] else 'NOT met'}" for k, g in s["device"]["goals"].items()
                )
                if s["device"].get("goals")
                else ""
            )
            if s.get("device")
            else ""
        )
    )


def _raise_stopped(signum, frame):
    raise Stopped()


class _FilteredStderr:
    """PortAudio's ALSA layer prints "Expression '...' failed" and ALSA "ALSA lib ..." lines on
    fd 2 (e.g. when a device disappears); they would bury the one-line error. fd 2 goes to a
    temporary file while the stream runs and everything else in it is written back after."""

    NOISE = ("Expression '", "ALSA lib ", "Cannot connect to server", "jack server", "JackShmReadWritePtr")

    def __enter__(self):
        import tempfile

        sys.stderr.flush()
        self._tmp = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._tmp.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        kept = [
            l
            for l in self._tmp.read().decode(errors="replace").splitlines()
            if l.strip() and not l.startswith(self.NOISE)
        ]
        self._tmp.close()
        if kept:
            print("\n".join(kept), file=sys.stderr, flush=True)


WINDOWED_HOP_MS = 250.0
"""listen's decision hop for windowed bundles (a stateful bundle decides every frame)."""


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
    profile=None,
) -> int:
    """The ``edge-sed listen`` command: runs until the end of the file, ``duration_s``, Ctrl-C
    or SIGTERM, prints the summary (JSON with ``as_json``) and returns the exit code: 0 at the
    end, after ``duration_s`` or on SIGTERM; 130 on Ctrl-C. A lost device raises DeviceError
    after the summary is printed and the log closed (every event already in it)."""
    from edge_sed.core.bundle import load_bundle
    from edge_sed.core.loop import Detector
    from edge_sed.core.smoother import (
        DEFAULT_AVERAGE_WINDOW_MS,
        DEFAULT_MINIMUM_COUNT,
        DEFAULT_SUPPRESSION_MS,
        DEFAULT_THRESHOLD,
        Smoother,
    )

    for option, value in (("--hop-ms", hop_ms), ("--duration", duration_s)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise EdgeSedError(f"{option} {value!r}: must be a finite number > 0")
    bundle = load_bundle(bundle_path)  # checks the checksum before anything runs
    # defaults: what the bundle was calibrated with (a stateful bundle's manifest 'smoother'), else the
    # smoother's own; every option given overrides its part
    calibrated = bundle.manifest.get("smoother") or {}
    base = calibrated.get("thresholds", DEFAULT_THRESHOLD)
    th = threshold if threshold is not None else base
    if thresholds:
        th = {**({l: th for l in bundle.labels} if not isinstance(th, dict) else th), **thresholds}

    def pick(given, key, default):
        return given if given is not None else calibrated.get(key, default)

    smoother = Smoother(
        bundle.labels,
        threshold=th,
        average_window_ms=pick(average_window_ms, "average_window_ms", DEFAULT_AVERAGE_WINDOW_MS),
        suppression_ms=pick(suppression_ms, "suppression_ms", DEFAULT_SUPPRESSION_MS),
        minimum_count=pick(minimum_count, "minimum_count", DEFAULT_MINIMUM_COUNT),
    )
    if hop_ms is None and bundle.form != "stateful":
        hop_ms = WINDOWED_HOP_MS
    frame_ms = bundle.frontend.hop_ms
    hop_frames = max(1, int(round(hop_ms / frame_ms))) if hop_ms else None
    fe = bundle.frontend
    smoother.check_hop((hop_frames or bundle.hop_frames) * fe.hop_samples / fe.sample_rate)
    block_ms, device_sinks = BLOCK_MS, []
    if profile:
        detector, device_clock, block_ms = mcu_target(bundle, profile, hop_frames, smoother)
        device_sinks = [device_clock]
    else:
        detector = Detector(bundle, hop_frames=hop_frames, smoother=smoother)
    with _FilteredStderr() if not file else _nothing():
        source = (
            FileSource(file, realtime=realtime, block_ms=block_ms)
            if file
            else MicSource(device, capture_hz=capture_hz, block_ms=block_ms)
        )
    sinks = ([JsonlSink(log)] if log else []) + ([RecordSink(record)] if record else []) + device_sinks
    previous = None
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C stops listen even where the shell started it with SIGINT ignored (a background job)
        previous = (
            signal.signal(signal.SIGTERM, _raise_stopped),
            signal.signal(signal.SIGINT, signal.default_int_handler),
        )
    try:
        with _FilteredStderr() if not file else _nothing(), source:
            # the console last: an event is on disk (JSONL, fsync'd) before it is shown, so a kill
            # can never leave a shown event out of the log
            sinks.append(ConsoleSink(bundle.labels, source.name, live=live, quiet=as_json))
            summary = run_loop(detector, source, sinks, duration_s=duration_s)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])
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
