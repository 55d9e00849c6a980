"""Events on a stream: the detector's decisions, annotation files, and stream-level metrics.

Metric (say which one you report): DCASE 2017 task 2 style, event-based, onset only. A causal
detector decides *after* an event starts, at ``Event.t_s`` (the end of the audio its decision
used), so a detection matches a reference event of the same class when

    reference onset - collar_s  <=  t_s  <=  reference onset + collar_s + delay_s

where ``delay_s`` is the longest decision delay the detector is allowed (by default one model
window, 1 s: the decision has then seen the whole event start). With ``delay_s=0`` it is DCASE's
own rule on the event's *estimated* onset: |onset_s - reference onset| <= collar_s (the smoother
estimates onset_s from its recent decisions; an event without one is matched by t_s). Each
reference matches at most
one detection (greedy, earliest detection first). Onset->detection latency = t_s - onset of the
matched reference. Error rate = (S + D + I) / N as in sed_eval: after class-wise matching,
unmatched detections and references that match in time only are substitutions.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_sed.core.atomic import atomic_path
from edge_sed.core.errors import DatasetError

ANNOTATION_COLUMNS = ("onset_s", "offset_s", "label")
OPTIONAL_COLUMNS = ("ebr_db", "bed_dbfs")


@dataclass(frozen=True)
class Event:
    """A detection: ``label`` with averaged probability ``score`` decided at stream time ``t_s``
    (seconds: the end of the audio the decision used); ``onset_s``, when the smoother gives it,
    is where it reckons the sound began (edge_sed.core.smoother.estimate_onset), at or before ``t_s``."""

    label: str
    score: float
    t_s: float
    onset_s: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def shifted(self, dt: float) -> "Event":
        """The same event ``dt`` seconds later (streams laid end to end, another clock)."""
        return Event(
            self.label, self.score, self.t_s + dt, None if self.onset_s is None else self.onset_s + dt
        )

    @property
    def estimated_onset_s(self) -> float:
        return self.t_s if self.onset_s is None else self.onset_s


@dataclass(frozen=True)
class Annotation:
    """A reference event: ``label`` active over [onset_s, offset_s) seconds of stream time;
    for mixtures, the event-to-background ratio and the bed level it was mixed at (dB)."""

    onset_s: float
    offset_s: float
    label: str
    ebr_db: float | None = None
    bed_dbfs: float | None = None


def write_annotations(path: str | os.PathLike, annotations) -> None:
    """CSV with a header ``onset_s,offset_s,label`` (plus ``ebr_db,bed_dbfs`` when the events
    carry them), one row per event, written atomically."""
    annotations = list(annotations)
    extra = [c for c in OPTIONAL_COLUMNS if any(getattr(a, c) is not None for a in annotations)]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ANNOTATION_COLUMNS + tuple(extra))
        for a in annotations:
            w.writerow(
                [f"{a.onset_s:.4f}", f"{a.offset_s:.4f}", a.label]
                + ["" if getattr(a, c) is None else f"{getattr(a, c):.2f}" for c in extra]
            )


def read_annotations(path: str | os.PathLike) -> list[Annotation]:
    """The rows of an annotation CSV (see write_annotations); DatasetError naming the row on
    anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such annotation file")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ANNOTATION_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(
                f"{path}: missing column(s) {', '.join(missing)} (need {','.join(ANNOTATION_COLUMNS)})"
            )
        out = []
        for n, row in enumerate(reader, start=2):
            try:
                onset, offset = float(row["onset_s"]), float(row["offset_s"])
            except (TypeError, ValueError):
                raise DatasetError(f"{path}:{n}: onset_s/offset_s are not numbers") from None
            if (
                not (np.isfinite(onset) and np.isfinite(offset))
                or onset < 0
                or offset < onset
                or not row["label"]
            ):
                raise DatasetError(f"{path}:{n}: need 0 <= onset_s <= offset_s and a label")
            extra = {}
            for c in OPTIONAL_COLUMNS:
                try:
                    extra[c] = float(row[c]) if row.get(c) not in (None, "") else None
                except ValueError:
                    raise DatasetError(f"{path}:{n}: {c} is not a number") from None
            out.append(Annotation(onset, offset, row["label"], **extra))
    return sorted(out, key=lambda a: a.onset_s)


def _matches(ref: Annotation, ev: Event, collar_s: float, delay_s: float | None) -> bool:
    """``delay_s`` None: the detection rule (a decision any time from onset - collar to
    offset + collar counts)."""
    if delay_s is None:
        return ref.onset_s - collar_s <= ev.t_s <= max(ref.offset_s, ref.onset_s) + collar_s
    if not delay_s:  # DCASE: the estimated onset within the collar of the reference onset
        return abs(ev.estimated_onset_s - ref.onset_s) <= collar_s
    return ref.onset_s - collar_s <= ev.t_s <= ref.onset_s + collar_s + delay_s


def _greedy_match(reference, detected, collar_s, delay_s, same_label: bool):
    """Pairs (ref index, det index), each used once, detections in time order (by estimated onset
    under DCASE's rule, ``delay_s`` 0)."""
    used, pairs = set(), []
    key = (lambda j: detected[j].estimated_onset_s) if delay_s == 0 else (lambda j: detected[j].t_s)
    for j in sorted(range(len(detected)), key=key):
        ev = detected[j]
        for i, ref in enumerate(reference):
            if (
                i in used
                or (same_label and ref.label != ev.label)
                or not _matches(ref, ev, collar_s, delay_s)
            ):
                continue
            used.add(i)
            pairs.append((i, j))
            break
    return pairs


def event_metrics(
    reference, detected, duration_s: float, collar_s: float = 0.5, delay_s: float = 1.0, labels=None
) -> dict:
    """Event-based F1, error rate, precision/recall (overall and per class), onset->detection
    latency (median, p95, seconds) and false alarms per hour, for ``detected`` Events against
    ``reference`` Annotations on a stream of ``duration_s`` seconds (matching rule: module doc)."""
    reference, detected = list(reference), list(detected)
    labels = list(labels) if labels else sorted({a.label for a in reference} | {e.label for e in detected})
    pairs = _greedy_match(reference, detected, collar_s, delay_s, same_label=True)
    tp_ref = {i for i, _ in pairs}
    tp_det = {j for _, j in pairs}
    latencies = [detected[j].t_s - reference[i].onset_s for i, j in pairs]
    left_ref = [reference[i] for i in range(len(reference)) if i not in tp_ref]
    left_det = [detected[j] for j in range(len(detected)) if j not in tp_det]
    subs = len(_greedy_match(left_ref, left_det, collar_s, delay_s, same_label=False))
    n_ref, tp = len(reference), len(pairs)
    fp, fn = len(detected) - tp, n_ref - tp
    precision, recall, f1 = _prf(tp, fp, fn)
    hours = duration_s / 3600.0 if duration_s > 0 else float("nan")
    return {
        "metric": f"event-based, onset only: match if {_rule(collar_s, delay_s)}",
        "recall_by": _recall_by(reference, tp_ref),
        "reference": n_ref,
        "detected": len(detected),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "substitutions": subs,
        "deletions": fn - subs,
        "insertions": fp - subs,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "error_rate": (fn + fp - subs) / n_ref if n_ref else float("nan"),
        "latency_median_s": float(np.median(latencies)) if latencies else None,
        "latency_p95_s": float(np.percentile(latencies, 95)) if latencies else None,
        "latencies_s": [float(x) for x in latencies],
        "false_alarms_per_hour": fp / hours,
        "false_alarm_kinds": _false_alarm_kinds(reference, detected, tp_det, collar_s),
        "duration_s": float(duration_s),
        "per_class": {label: _class_metrics(label, reference, detected, pairs, hours) for label in labels},
    }


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1 (F1 is 1 when there is nothing to find and nothing found)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return p, r, f


def _false_alarm_kinds(reference, detected, tp_det: set, collar_s: float) -> dict:
    """Where the unmatched detections fall (the detection rule's window of each reference)."""
    kinds = {"duplicate": 0, "confusion": 0, "background": 0}
    for j in range(len(detected)):
        if j in tp_det:
            continue
        near = [a.label for a in reference if _matches(a, detected[j], collar_s, None)]
        kinds["duplicate" if detected[j].label in near else "confusion" if near else "background"] += 1
    return kinds


def _class_metrics(label: str, reference, detected, pairs, hours: float) -> dict:
    n_l = sum(a.label == label for a in reference)
    tp_l = sum(reference[i].label == label for i, _ in pairs)
    fp_l = sum(e.label == label for e in detected) - tp_l
    fn_l = n_l - tp_l
    p, r, f = _prf(tp_l, fp_l, fn_l)
    lat = [detected[j].t_s - reference[i].onset_s for i, j in pairs if reference[i].label == label]
    return {
        "reference": n_l,
        "tp": tp_l,
        "fp": fp_l,
        "fn": fn_l,
        "precision": p,
        "recall": r,
        "f1": f,
        "error_rate": (fn_l + fp_l) / n_l if n_l else float("nan"),
        "latency_median_s": float(np.median(lat)) if lat else None,
        "false_alarms_per_hour": fp_l / hours,
    }


def _recall_by(reference, tp_ref: set) -> dict:
    """Recall per event-to-background ratio (dB) and per bed level (dBFS; 5 dB bins when spread)."""
    by_condition = {}
    for key, fmt in (("ebr_db", "{:+.0f} dB"), ("bed_dbfs", "{:.0f} dBFS")):
        values = sorted({round(getattr(a, key)) for a in reference if getattr(a, key) is not None})
        bucket = round
        if key == "bed_dbfs" and len(values) > 4:  # a spread of levels: 5 dB bins
            values = sorted({5 * round(v / 5) for v in values})

            def bucket(v):
                return 5 * round(v / 5)

        rows = {}
        for v in values:
            refs = [
                i
                for i, a in enumerate(reference)
                if getattr(a, key) is not None and bucket(getattr(a, key)) == v
            ]
            hit = sum(i in tp_ref for i in refs)
            recall = hit / len(refs) if refs else None
            rows[fmt.format(v)] = {"reference": len(refs), "tp": hit, "recall": recall}
        if rows:
            by_condition[key] = rows
    return by_condition


def _rule(collar_s: float, delay_s) -> str:
    """The matching rule in words, for the record."""
    if delay_s is None:
        return (
            f"onset-{collar_s:g} s <= decision time <= offset+{collar_s:g} s (detection: a decision while "
            "the event lasts counts)"
        )
    return f"onset-{collar_s:g} s <= decision time <= onset+{collar_s:g} s" + (
        f"+{delay_s:g} s (DCASE 2017 task 2 collar with a causal delay)"
        if delay_s
        else " (DCASE event-based, onset collar, on the event's estimated onset: the smoother's "
        "onset_s, else its decision time)"
    )
