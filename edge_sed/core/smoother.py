"""Turn a stream of per-window scores into events, with the semantics of tflite-micro's
micro_speech ``RecognizeCommands`` (recognize_commands.cc):

- keep the decisions from the last ``average_window_ms`` (stream time t >= now - window);
- with fewer than ``minimum_count`` of them, decide nothing;
- average their scores; the top class is the argmax of the average;
- it fires when its average is above its threshold AND it differs from the previous top class,
  or more than ``suppression_ms`` have passed since that one was taken (so one long sound gives
  one event, a second sound of another class fires at once);
- the background class becomes the "previous top class" like any other (so it re-arms every
  class) but never fires an event — micro_speech's "silence";
- a decision with a non-finite score (NaN, inf: a broken model) is ignored: it never enters
  the average and never fires (``score <= threshold`` is False for NaN).

Beyond micro_speech, each event carries an estimated onset (``estimate_onset``): the average
fires some way into a sound (a cry's first burst may be soft), so the smoother looks back over
its last ``onset_lookback_ms`` of decisions for where the class began to hold the top of the
scores. The event is still *decided* at ``t_s``; ``onset_s`` says when the sound began.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Mapping

import numpy as np

from edge_sed.core.errors import EdgeSedError
from edge_sed.core.events import Event
from edge_sed.core.settings import BACKGROUND

DEFAULT_AVERAGE_WINDOW_MS = 750.0
DEFAULT_THRESHOLD = 0.6
DEFAULT_SUPPRESSION_MS = 3000.0
"""micro_speech uses 1.5 s for words; a baby cry lasts up to ~2 s and stays in 1 s windows for
~3 s, so 1.5 s fired it twice (measured on played streams). A second sound of another class
still fires at once."""
DEFAULT_MINIMUM_COUNT = 2
MAX_AVERAGE_WINDOW_MS = 60_000.0
"""The window keeps every decision it spans in memory; a minute is far longer than any event."""
ONSET_RATIO = 0.5
ONSET_LOOKBACK_MS = 1000.0
ONSET_LEAD_MS = 100.0
"""The onset estimate (``estimate_onset``): chosen on real-dev validation streams (README, "What
was tried"): DCASE event F1 0.333 -> 0.456 (seed 0) and 0.417 -> 0.476 (seed 1) for the same
decisions."""


def estimate_onset(
    times,
    scores,
    top: int,
    ratio: float = ONSET_RATIO,
    lookback_s: float = ONSET_LOOKBACK_MS / 1000,
    lead_s: float = ONSET_LEAD_MS / 1000,
) -> float:
    """Where the sound of class ``top`` began, for an event that fired at the last of the
    decisions ``times`` (s, ascending) with per-decision ``scores`` (decisions, classes): walk back
    from the firing decision while the one before it lies within ``lookback_s`` and gave class
    ``top`` at least ``ratio`` x that decision's highest score; the earliest decision so reached,
    less ``lead_s`` (the audio a decision has already heard of the sound), not before 0."""
    times = np.asarray(times, np.float64)
    scores = np.asarray(scores, np.float32)
    j = len(times) - 1
    while (
        j > 0
        and times[j - 1] >= times[-1] - lookback_s - 1e-9
        and scores[j - 1, top] >= ratio * scores[j - 1].max()
    ):
        j -= 1
    return max(0.0, float(times[j]) - lead_s)


class Smoother:
    """``update(t_s, scores) -> Event | None``; times in seconds of stream time, thresholds
    are probabilities (0..1), one for every class or ``{label: p}`` (labels not named keep
    ``DEFAULT_THRESHOLD``)."""

    def __init__(
        self,
        labels,
        background: str = BACKGROUND,
        average_window_ms: float = DEFAULT_AVERAGE_WINDOW_MS,
        threshold: float | Mapping[str, float] = DEFAULT_THRESHOLD,
        suppression_ms: float = DEFAULT_SUPPRESSION_MS,
        minimum_count: int = DEFAULT_MINIMUM_COUNT,
        onset_lookback_ms: float = ONSET_LOOKBACK_MS,
    ):
        self.labels = list(labels)
        self.background = background if background in self.labels else None
        if not (
            isinstance(average_window_ms, (int, float)) and 0 <= average_window_ms <= MAX_AVERAGE_WINDOW_MS
        ):
            raise EdgeSedError(
                f"averaging window of {average_window_ms!r} ms: must be a number from 0 to "
                f"{MAX_AVERAGE_WINDOW_MS:g} ms"
            )
        if not (
            isinstance(suppression_ms, (int, float)) and math.isfinite(suppression_ms) and suppression_ms >= 0
        ):
            raise EdgeSedError(f"suppression period of {suppression_ms!r} ms: must be a finite number >= 0")
        if not isinstance(minimum_count, int) or isinstance(minimum_count, bool) or minimum_count < 1:
            raise EdgeSedError(f"minimum count must be a whole number of at least 1, got {minimum_count!r}")
        if not (
            isinstance(onset_lookback_ms, (int, float)) and 0 <= onset_lookback_ms <= MAX_AVERAGE_WINDOW_MS
        ):
            raise EdgeSedError(
                f"onset look-back of {onset_lookback_ms!r} ms: must be a number from 0 to "
                f"{MAX_AVERAGE_WINDOW_MS:g} ms"
            )
        self.average_window_s = average_window_ms / 1000.0
        self.onset_lookback_s = onset_lookback_ms / 1000.0
        self.suppression_s = suppression_ms / 1000.0
        self.minimum_count = int(minimum_count)
        if isinstance(threshold, Mapping):
            unknown = set(threshold) - set(self.labels)
            if unknown:
                raise EdgeSedError(
                    f"threshold for unknown class(es) {', '.join(sorted(unknown))}; "
                    f"classes are {', '.join(self.labels)}"
                )
            per_class = {l: float(threshold.get(l, DEFAULT_THRESHOLD)) for l in self.labels}
        else:
            per_class = {l: float(threshold) for l in self.labels}
        bad = {l: p for l, p in per_class.items() if not 0.0 <= p <= 1.0}
        if bad:
            raise EdgeSedError(f"thresholds must be probabilities in [0, 1], got {bad}")
        self.thresholds = per_class
        self._threshold = np.array([per_class[l] for l in self.labels], np.float32)
        if all(p >= 1.0 for l, p in per_class.items() if l != self.background):
            raise EdgeSedError(
                "every class's threshold is 1: an average probability is never above it, so no "
                "event could ever fire"
            )
        self.reset()

    def decisions_in_window(self, hop_s: float) -> int:
        """How many decisions ``hop_s`` apart the averaging window holds (micro_speech keeps
        t >= now - window)."""
        return int(math.floor((self.average_window_s + 1e-9) / hop_s)) + 1

    def check_hop(self, hop_s: float) -> None:
        """EdgeSedError (one line) when decisions every ``hop_s`` could never fire an event:
        the averaging window would hold fewer than ``minimum_count`` of them."""
        held = self.decisions_in_window(hop_s)
        if held < self.minimum_count:
            raise EdgeSedError(
                f"a {self.average_window_s * 1000:g} ms averaging window holds {held} decision(s) "
                f"{hop_s * 1000:g} ms apart, fewer than the minimum count {self.minimum_count}: "
                "no event could ever "
                "fire (shorten the hop (--hop-ms), widen the window (--window-ms) or lower --min-count)"
            )

    def reset(self) -> None:
        self._recent: deque[tuple[float, np.ndarray]] = deque()
        self._history: deque[tuple[float, np.ndarray]] = deque()  # the onset look-back
        self.previous_top: str | None = self.background
        self.previous_time_s: float | None = None
        self.average: np.ndarray | None = None

    def update(self, t_s: float, scores: np.ndarray) -> Event | None:
        scores = np.asarray(scores, np.float32).reshape(-1)
        if len(scores) != len(self.labels):
            raise ValueError(f"{len(scores)} scores for {len(self.labels)} labels")
        if not np.isfinite(scores).all():
            return None
        if self._recent and t_s < self._recent[-1][0]:
            raise ValueError(f"decisions out of order: {t_s} s after {self._recent[-1][0]} s")
        self._recent.append((t_s, scores))
        self._history.append((t_s, scores))
        while self._history[0][0] < t_s - self.onset_lookback_s - 1e-9:
            self._history.popleft()
        # micro_speech keeps the results with t >= now - window
        while self._recent and self._recent[0][0] <= t_s - self.average_window_s - 1e-9:
            self._recent.popleft()
        if len(self._recent) < self.minimum_count:
            self.average = None
            return None
        self.average = np.mean([s for _, s in self._recent], axis=0)
        top = int(np.argmax(self.average))
        label, score = self.labels[top], float(self.average[top])
        if score <= self._threshold[top]:
            return None
        since = (
            np.inf
            if self.previous_top in (None, self.background) or self.previous_time_s is None
            else t_s - self.previous_time_s
        )
        if label == self.previous_top and since <= self.suppression_s:
            return None
        self.previous_top, self.previous_time_s = label, t_s
        if label == self.background:
            return None
        onset = estimate_onset(
            [t for t, _ in self._history],
            [x for _, x in self._history],
            top,
            lookback_s=self.onset_lookback_s,
        )
        return Event(label=label, score=score, t_s=float(t_s), onset_s=onset)
