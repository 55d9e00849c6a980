"""The device loop: audio blocks -> front end -> model -> smoother -> decisions. The same object
runs in ``edge-sed listen`` (wall clock), in firmware_sim (a virtual device clock advanced by
the cost of what each decision reports it did) and in stream evaluation (no clock).

Decisions are taken every ``hop_frames`` front-end frames once a whole model window
(``window_frames`` frames) exists: the first at frame ``window_frames``, then every hop.
- windowed bundle: the model runs on the last ``window_frames`` frames (one invoke a decision);
- streaming bundle (per-frame LSTM with explicit state): every frame steps the states that are
  alive; a state starts from zero every ``hop_frames`` frames and is read out after
  ``window_frames`` frames, so its scores are the windowed model's on the same window
  (the manifest's "staggered states"; ceil(window / hop) of them are alive, one per frame when
  hop = window). Same decisions as the windowed form, within quantization tolerance.
- stateful bundle (the streaming detector): one invoke every manifest ``hop_frames`` frames (its
  stride: 1 = every frame) on the last ``window_frames`` frames (the first frame repeated before
  the stream has that many), the state carried from the first frame of the stream to the last,
  never reset; a decision every ``hop_frames`` frames (the stride by default; a hop given here
  must be a multiple of it). The smoother defaults to the manifest's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edge_sed.core.bundle import Bundle, BundleRunner
from edge_sed.core.errors import EdgeSedError
from edge_sed.core.events import Event
from edge_sed.core.frontend import StreamingLogMel
from edge_sed.core.settings import BACKGROUND
from edge_sed.core.smoother import Smoother

SILENCE_POWER = 1e-5
"""Mel-band power below which a frame counts as silent (the front end's log floor is 1e-6;
a -30 dBFS noise bed is ~1e-1): a window of silent frames is background, never an event."""


SILENT_FRAMES_MIN = 25
"""A stateful bundle's context is a few frames: the silence gate still wants 250 ms of silence."""


def bundle_smoother(bundle: Bundle, **overrides) -> Smoother:
    """The smoother a bundle was calibrated with (manifest ``smoother``), else the defaults;
    ``overrides`` (average_window_ms, threshold, suppression_ms, minimum_count) win."""
    kw = {}
    sm = bundle.manifest.get("smoother")
    if sm:
        kw = {
            "average_window_ms": sm["average_window_ms"],
            "minimum_count": sm["minimum_count"],
            "suppression_ms": sm["suppression_ms"],
            "threshold": sm["thresholds"],
        }
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return Smoother(bundle.labels, **kw)


@dataclass
class Decision:
    """One model decision. ``t_s``: stream time (s) of the end of the audio it used;
    ``scores``: one probability per label; ``event``: what the smoother made of it;
    ``frames``/``inferences``: front-end frames and model invokes done since the previous
    decision (what a device clock charges for)."""

    t_s: float
    scores: np.ndarray
    event: Event | None
    frames: int
    inferences: int
    model_s: float = 0.0  # host seconds spent in the model since the previous decision (wall clock)
    silent: bool = False  # the whole window was below the silence floor: the smoother saw background
    average: np.ndarray | None = field(default=None, repr=False)  # the smoother's running average


class Detector:
    """``push(block) -> [Decision]`` for blocks of 16 kHz float32 audio of any size."""

    def __init__(
        self,
        bundle: Bundle,
        backend=None,
        hop_frames: int | None = None,
        smoother: Smoother | None = None,
        runner: BundleRunner | None = None,
        silence_power: float | None = SILENCE_POWER,
    ):
        self.bundle = bundle
        self.labels = bundle.labels
        self.runner = runner or BundleRunner(bundle, backend=backend)
        self.frontend = StreamingLogMel(bundle.frontend)
        self.window_frames = bundle.window_frames
        self.hop_frames = int(hop_frames or bundle.hop_frames)
        if not 1 <= self.hop_frames:
            raise EdgeSedError(f"hop of {self.hop_frames} frames: must be at least 1")
        self.streaming = self.runner.streaming
        self.carried = getattr(self.runner, "carried", False)  # a stand-in runner need not say
        self.step_frames = bundle.hop_frames if self.carried else 1
        if self.hop_frames % self.step_frames:
            raise EdgeSedError(
                f"hop of {self.hop_frames} frames: this stateful bundle steps every "
                f"{self.step_frames} frames, so the hop must be a multiple of {self.step_frames}"
            )
        self.smoother = smoother if smoother is not None else bundle_smoother(bundle)
        # silence gate: a window whose every mel band of every frame is below silence_power
        # (digital silence, a muted input) is background, whatever the model says of it
        self._silence_log = (
            None if silence_power is None else float(np.log(silence_power + bundle.frontend.log_floor))
        )
        self._silence_scores = None  # what the smoother hears for a silent window: background
        if BACKGROUND in self.labels:
            self._silence_scores = np.zeros(len(self.labels), np.float32)
            self._silence_scores[self.labels.index(BACKGROUND)] = 1.0
        self.frame_s = bundle.frontend.hop_samples / bundle.frontend.sample_rate
        self.window_s = bundle.frontend.window_samples / bundle.frontend.sample_rate
        self.reset()

    def reset(self) -> None:
        """A new stream: front end, smoother, frame buffer and (stateful) the carried model state."""
        self.frontend.reset()
        self.smoother.reset()
        if self.carried:
            self.runner.reset()
        self._window = np.zeros((self.window_frames, self.bundle.frontend.n_mels), np.float32)
        self._states: list[list] = []  # streaming: [frames seen, h, c]
        self.frames_seen = 0
        self._silent_run = 0  # consecutive frames below the silence floor
        self._frames_since = 0
        self._inferences_since = 0
        self._model_s = 0.0
        self.inferences = 0

    def frame_end_s(self, n_frames: int) -> float:
        """Stream time (s) at which the ``n_frames``-th frame is complete."""
        return (n_frames - 1) * self.frame_s + self.window_s

    def push(self, block: np.ndarray) -> list[Decision]:
        out = []
        frames = self.frontend.push(block)
        for frame, peak in zip(frames, self.frontend.peaks):
            decision = self._frame(frame, peak)
            if decision is not None:
                out.append(decision)
        return out

    def _frame(self, frame: np.ndarray, peak: float) -> Decision | None:
        """One front-end frame; ``peak``: log(its loudest band's energy + floor), for the gate."""
        n = self.frames_seen  # index of this frame
        self.frames_seen += 1
        self._frames_since += 1
        quiet = self._silence_log is not None and float(peak) < self._silence_log
        self._silent_run = self._silent_run + 1 if quiet else 0
        if self.carried:
            decide = (n + 1) % self.hop_frames == 0
        else:
            decide = n + 1 >= self.window_frames and (n + 1 - self.window_frames) % self.hop_frames == 0
        start = time.perf_counter()
        if self.carried:
            if n == 0:  # before the stream has a full context: the first frame repeated
                self._window[:] = frame
            else:
                self._window = np.roll(self._window, -1, axis=0)
                self._window[-1] = frame
            scores = None
            if (n + 1) % self.step_frames == 0:
                scores = self.runner.step(self._window)
                self._count(1)
        elif self.streaming:
            scores = self._step_states(frame, n, decide)
        else:
            self._window = np.roll(self._window, -1, axis=0)
            self._window[-1] = frame
            scores = None
            if decide:
                scores = self.runner.predict(self._window)
                self._count(1)
        self._model_s += time.perf_counter() - start
        if not decide:
            return None
        t_s = self.frame_end_s(self.frames_seen)
        silent = self._silence_scores is not None and self._silent_run >= max(
            self.window_frames, SILENT_FRAMES_MIN
        )
        event = self.smoother.update(t_s, self._silence_scores if silent else scores)
        d = Decision(
            t_s,
            scores,
            event,
            self._frames_since,
            self._inferences_since,
            self._model_s,
            average=self.smoother.average,
            silent=silent,
        )
        self._frames_since = self._inferences_since = 0
        self._model_s = 0.0
        return d

    def _count(self, invokes: int) -> None:
        self._inferences_since += invokes
        self.inferences += invokes

    def _step_states(self, frame: np.ndarray, n: int, decide: bool) -> np.ndarray | None:
        r = self.runner
        if n % self.hop_frames == 0:  # the window of the decision after frame n + window - 1 starts here
            r.reset()
            self._states.append([0, r.h, r.c])
        scores = None
        for state in self._states:
            r.h, r.c = state[1], state[2]
            s = r.step(frame)
            state[0] += 1
            state[1], state[2] = r.h, r.c
            if state[0] == self.window_frames:
                scores = s
        self._count(len(self._states))
        self._states = [s for s in self._states if s[0] < self.window_frames]
        if decide and scores is None:  # cannot happen: a state started window_frames ago
            raise RuntimeError("streaming detector lost a state")
        return scores if decide else None
