import math

import pytest

from edge_sed.core.errors import DatasetError
from edge_sed.core.events import Annotation, Event, event_metrics, read_annotations, write_annotations


def test_annotations_round_trip(tmp_path):
    ann = [Annotation(3.5, 4.25, "gunshot"), Annotation(1.0, 2.0, "dog")]
    write_annotations(tmp_path / "a.csv", ann)
    assert read_annotations(tmp_path / "a.csv") == sorted(ann, key=lambda a: a.onset_s)


@pytest.mark.parametrize(
    "text",
    ["onset_s,label\n1,dog\n", "onset_s,offset_s,label\nx,2,dog\n", "onset_s,offset_s,label\n3,2,dog\n"],
)
def test_bad_annotations(tmp_path, text):
    (tmp_path / "a.csv").write_text(text)
    with pytest.raises(DatasetError):
        read_annotations(tmp_path / "a.csv")


def test_metrics_by_hand():
    ref = [
        Annotation(10.0, 11.0, "dog"),
        Annotation(20.0, 21.0, "gunshot"),
        Annotation(30.0, 31.0, "baby_cry"),
        Annotation(40.0, 41.0, "dog"),
    ]
    det = [
        Event("dog", 0.9, 10.8),  # TP, latency 0.8
        Event("dog", 0.9, 11.2),  # second detection of the same dog: FP (insertion)
        Event("baby_cry", 0.9, 20.5),  # wrong class in time: substitution for the gunshot
        Event("baby_cry", 0.9, 30.4),  # TP, latency 0.4
        Event("dog", 0.9, 42.0),
    ]  # too late (> onset + 0.5 + 1.0): FP, and the dog is missed
    m = event_metrics(ref, det, duration_s=3600.0)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 3, 2)
    assert m["substitutions"] == 1 and m["deletions"] == 1 and m["insertions"] == 2
    assert m["error_rate"] == pytest.approx(4 / 4)
    assert m["f1"] == pytest.approx(4 / (4 + 3 + 2))
    assert m["precision"] == pytest.approx(2 / 5) and m["recall"] == pytest.approx(2 / 4)
    assert m["latency_median_s"] == pytest.approx(0.6)
    assert m["false_alarms_per_hour"] == pytest.approx(3.0)
    # the repeat falls inside the dog it repeats, the cry inside the gunshot, the late dog after its event
    assert m["false_alarm_kinds"] == {"duplicate": 1, "confusion": 1, "background": 1}
    assert m["per_class"]["dog"]["tp"] == 1 and m["per_class"]["dog"]["fp"] == 2
    assert m["per_class"]["gunshot"]["recall"] == 0.0


def test_early_detection_within_collar_and_empty():
    m = event_metrics([Annotation(5.0, 6.0, "dog")], [Event("dog", 0.7, 4.6)], duration_s=60)
    assert m["tp"] == 1 and m["latency_median_s"] == pytest.approx(-0.4)
    m = event_metrics([], [], duration_s=60)
    assert m["f1"] == 1.0 and math.isnan(m["error_rate"]) and m["latency_median_s"] is None
