"""Clip/window-level classification metrics (numpy only), as the paper reports them:

- per-class error rate = 1 - recall of that class;
- overall error = mean of the per-class error rates (= 1 - balanced accuracy), so a class with
  26x the data does not drown the rare ones;
- macro-F1 = mean over classes of the F1 score;
- relative error reduction of A over B = (err_B - err_A) / err_B.
"""

from __future__ import annotations

import numpy as np

from edge_sed.core.settings import LABELS


def confusion_matrix(y_true, y_pred, num_classes: int = len(LABELS)) -> np.ndarray:
    """counts[i, j] = examples of true class i predicted as j."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def classification_metrics(y_true, y_pred, labels=LABELS) -> dict:
    """Per-class error, overall error, balanced accuracy, accuracy, macro-F1 and the confusion
    matrix, as plain JSON-ready Python values. A class absent from y_true gets error None and
    is left out of the means."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros(len(labels)), where=present)
    precision = np.divide(tp, predicted, out=np.zeros(len(labels)), where=predicted > 0)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros(len(labels)), where=(precision + recall) > 0
    )
    per_class_error = {l: (float(1 - recall[i]) if present[i] else None) for i, l in enumerate(labels)}
    overall = float(np.mean(1 - recall[present])) if present.any() else None
    return {
        "labels": list(labels),
        "per_class_error": per_class_error,
        "overall_error": overall,
        "balanced_accuracy": None if overall is None else 1 - overall,
        "accuracy": float(tp.sum() / max(1, cm.sum())),
        "macro_f1": float(np.mean(f1[present])) if present.any() else None,
        "support": {l: int(support[i]) for i, l in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
    }


def relative_error_reduction(err_a: float, err_b: float) -> float:
    """How much A reduces B's error: (err_B - err_A) / err_B (0.22 = 22 % fewer errors)."""
    return (err_b - err_a) / err_b
