import numpy as np
import pytest

from edge_sed.core.errors import EdgeSedError
from edge_sed.core.smoother import Smoother

LABELS = ["dog", "baby_cry", "gunshot", "background"]


def one_hot(label, p=0.9):
    s = np.full(4, (1 - p) / 3, np.float32)
    s[LABELS.index(label)] = p
    return s


def run(sm, seq, hop_s=0.25):
    return [
        (round(k * hop_s, 3), e.label)
        for k, lab in enumerate(seq)
        if (e := sm.update(k * hop_s, one_hot(lab))) is not None
    ]


def test_fires_once_per_long_sound_then_again_after_suppression():
    sm = Smoother(LABELS, average_window_ms=500, threshold=0.6, suppression_ms=1000, minimum_count=2)
    # dog for 2.5 s: fires at the 2nd decision (minimum count), again only after > 1 s
    events = run(sm, ["dog"] * 11)
    assert events[0] == (0.25, "dog")
    assert [t for t, _ in events] == [0.25, 1.5, 2.5] or [t for t, _ in events] == [0.25, 1.5]
    assert all(b - a > 1.0 for (a, _), (b, _) in zip(events, events[1:]))


def test_background_never_fires_but_rearms():
    sm = Smoother(LABELS, average_window_ms=250, threshold=0.6, suppression_ms=10_000, minimum_count=1)
    events = run(sm, ["background"] * 4 + ["dog"] * 2 + ["background"] * 2 + ["dog"] * 2)
    assert [l for _, l in events] == ["dog", "dog"]  # background in between re-arms the dog
    sm.reset()
    assert all(l != "background" for _, l in run(sm, ["background"] * 20))


def test_other_class_fires_within_suppression():
    sm = Smoother(LABELS, average_window_ms=0, threshold=0.6, suppression_ms=10_000, minimum_count=1)
    assert [l for _, l in run(sm, ["dog", "dog", "gunshot", "gunshot", "dog"])] == ["dog", "gunshot", "dog"]


def test_minimum_count_and_average():
    sm = Smoother(LABELS, average_window_ms=1000, threshold=0.5, minimum_count=3)
    assert sm.update(0.0, one_hot("dog")) is None and sm.average is None
    assert sm.update(0.25, one_hot("dog")) is None
    e = sm.update(0.5, one_hot("dog", 0.6))
    assert e.label == "dog" and e.score == pytest.approx((0.9 + 0.9 + 0.6) / 3, abs=1e-6) and e.t_s == 0.5


def test_average_window_drops_old_scores():
    sm = Smoother(LABELS, average_window_ms=500, threshold=0.7, minimum_count=1)
    sm.update(0.0, one_hot("dog", 1.0))
    sm.update(0.25, one_hot("background", 0.9))
    sm.update(0.5, one_hot("background", 0.9))  # micro_speech keeps t >= now - window: 0.0 stays
    assert sm.average[LABELS.index("dog")] == pytest.approx((1.0 + 2 * 0.1 / 3) / 3, abs=1e-6)
    sm.update(0.75, one_hot("background", 0.9))
    assert sm.average[LABELS.index("dog")] == pytest.approx(0.1 / 3, abs=1e-6)


def test_per_class_threshold():
    sm = Smoother(LABELS, average_window_ms=0, threshold={"gunshot": 0.95}, minimum_count=1)
    assert sm.update(0.0, one_hot("gunshot", 0.9)) is None
    assert sm.update(1.0, one_hot("dog", 0.9)).label == "dog"
    assert sm.thresholds["dog"] == 0.6


@pytest.mark.parametrize(
    "kw",
    [
        {"threshold": 1.5},
        {"threshold": {"cat": 0.5}},
        {"minimum_count": 0},
        {"suppression_ms": -1},
        {"suppression_ms": float("nan")},
        {"suppression_ms": float("inf")},
        {"average_window_ms": float("nan")},
        {"average_window_ms": float("inf")},
        {"average_window_ms": 1e9},
        {"minimum_count": 1.5},
        {"threshold": float("nan")},
        {"threshold": 1.0},
        {"threshold": {"dog": 1.0, "baby_cry": 1.0, "gunshot": 1.0}},
        {"onset_lookback_ms": -1},
        {"onset_lookback_ms": float("nan")},
    ],
)
def test_bad_settings_are_one_line_errors(kw):
    with pytest.raises(EdgeSedError):
        Smoother(LABELS, **kw)


def test_reset_forgets():
    sm = Smoother(LABELS, average_window_ms=0, suppression_ms=10_000, minimum_count=1)
    assert sm.update(0.0, one_hot("dog")) is not None
    assert sm.update(0.1, one_hot("dog")) is None
    sm.reset()
    assert sm.update(0.0, one_hot("dog")) is not None


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_score_never_fires_and_never_enters_the_average(bad):
    sm = Smoother(LABELS, average_window_ms=1000, threshold=0.6, minimum_count=1)
    broken = one_hot("dog")
    broken[LABELS.index("gunshot")] = bad
    assert all(sm.update(k * 0.25, broken) is None for k in range(8))
    assert sm.average is None
    e = sm.update(2.0, one_hot("dog"))  # the broken decisions left nothing behind
    assert e.label == "dog" and e.score == pytest.approx(0.9)
    assert sm.update(2.25, np.full(4, np.nan, np.float32)) is None
    assert sm.average[LABELS.index("dog")] == pytest.approx(0.9)


@pytest.mark.parametrize(
    "window_ms, hop_s, minimum_count, held",
    [(750, 1.0, 2, 1), (0, 0.25, 2, 1), (100, 0.25, 2, 1), (750, 0.25, 1000, 4)],
)
def test_a_hop_that_can_never_fire_is_refused(window_ms, hop_s, minimum_count, held):
    """listen --hop-ms 1000 with the default 750 ms window and minimum count 2 gave 0 events:
    the window never held 2 decisions. check_hop says so in one line."""
    sm = Smoother(LABELS, average_window_ms=window_ms, minimum_count=minimum_count)
    assert sm.decisions_in_window(hop_s) == held
    with pytest.raises(EdgeSedError, match=f"holds {held} decision.*minimum count {minimum_count}"):
        sm.check_hop(hop_s)
    # what check_hop refuses really never fires
    assert run(sm, ["dog"] * 40, hop_s=hop_s) == []


@pytest.mark.parametrize("window_ms, hop_s, minimum_count", [(750, 0.25, 4), (1000, 1.0, 2), (0, 1.0, 1)])
def test_a_hop_that_can_fire_is_accepted(window_ms, hop_s, minimum_count):
    sm = Smoother(LABELS, average_window_ms=window_ms, minimum_count=minimum_count, threshold=0.6)
    sm.check_hop(hop_s)
    assert run(sm, ["dog"] * 8, hop_s=hop_s)


def test_an_event_carries_the_onset_its_sound_began():
    """A cry whose first decisions are weak (top, but the average not yet over the threshold)
    fires late; its onset is the first decision where it led, less the lead, within the look-back."""
    sm = Smoother(LABELS, average_window_ms=200, threshold=0.6, minimum_count=3, onset_lookback_ms=1000)
    weak = np.array([0.1, 0.45, 0.05, 0.4], np.float32)  # the cry leads the background, barely
    seq = [one_hot("background")] * 10 + [weak] * 6 + [one_hot("baby_cry")] * 5
    events = [e for k, x in enumerate(seq) if (e := sm.update(k * 0.04, x)) is not None]
    assert len(events) == 1 and events[0].label == "baby_cry"
    assert events[0].t_s > 0.6 and events[0].onset_s == pytest.approx(10 * 0.04 - 0.1)
    # the look-back bounds it: 0.2 s back from the decision at most
    sm = Smoother(LABELS, average_window_ms=200, threshold=0.6, minimum_count=3, onset_lookback_ms=200)
    e = [e for k, x in enumerate(seq) if (e := sm.update(k * 0.04, x)) is not None][0]
    assert e.onset_s == pytest.approx(e.t_s - 0.2 - 0.1)
    # a sound that begins with a strong decision: the onset is that decision, less the lead
    sm = Smoother(LABELS, average_window_ms=200, threshold=0.6, minimum_count=3)
    e = [
        e
        for k, x in enumerate([one_hot("background")] * 10 + [one_hot("dog")] * 5)
        if (e := sm.update(k * 0.04, x)) is not None
    ][0]
    assert e.onset_s == pytest.approx(10 * 0.04 - 0.1) and e.t_s >= e.onset_s + 0.1
