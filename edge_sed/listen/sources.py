"""Where ``edge-sed listen`` gets its audio: :class:`MicSource` (a sounddevice.InputStream whose
callback only copies the block into a bounded queue and counts overflows) or :class:`FileSource`
(a file streamed in blocks, at real-time pace or as fast as possible). Both yield
``(block, arrival_time_s)``: 16 kHz mono float32 and the clock time at which the block became
available. sounddevice (PortAudio) is imported only when a microphone is used."""

from __future__ import annotations

import queue
import threading
import time

from edge_sed.core.audio_io import AudioStream, StreamingResampler
from edge_sed.core.errors import EdgeSedError
from edge_sed.core.settings import SAMPLE_RATE

BLOCK_MS = 20
"""Microphone/file block: 20 ms (320 samples at 16 kHz)."""
QUEUE_S = 2.0
"""The callback->worker queue holds this much audio; beyond it blocks are dropped (counted)."""
STALL_S = 3.0
"""No audio from a running input stream for this long means the device is gone."""


class DeviceError(EdgeSedError):
    """No usable input device, or the device went away mid-stream."""


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # libportaudio missing
        raise DeviceError(f"PortAudio is not available ({exc}); install libportaudio2") from None
    return sounddevice


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


PORTAUDIO_NOISE = (
    "Expression '",
    "ALSA lib ",
    "Cannot connect to server",
    "jack server",
    "JackShmReadWritePtr",
)
"""Lines PortAudio's ALSA layer prints on fd 2 (e.g. when a device disappears); ``listen`` keeps
them out of the terminal (core.quiet.silenced_fds with ``noise``) and writes back the rest."""
