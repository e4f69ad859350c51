"""Scores of a classifier on test tracks, each computed in one place: per-track averaging, accuracies, macro F1,
per-class precision / recall / F1 and the confusion matrix.

Training's validation score (:data:`spectrotune.schema.SCORE`), the evaluation report and the sweeps all rank by
clip accuracy (segment probabilities averaged per track, then argmax), so it is computed here once. The CNN
(:mod:`spectrotune.evaluation.evaluate`) and the classical baselines (:mod:`spectrotune.evaluation.baselines`)
share :func:`macro_f1`, so the two are compared the same way. Pure numpy (scikit-learn imported inside the
functions that use it), no ``ray``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["accuracies", "clip_accuracy", "clip_scores", "confusion_matrix", "macro_f1", "per_class_scores"]


def clip_scores(
    proba: np.ndarray, track_ids: Sequence[str], labels: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Average segment probabilities per track.

    Parameters
    ----------
    proba : np.ndarray, float [n_segments, n_classes]
        Segment probabilities.
    track_ids : sequence of str, length n_segments
        Track of each segment.
    labels : np.ndarray, int [n_segments]
        True label of each segment (constant within a track).

    Returns
    -------
    tracks : list of str
        Sorted track ids.
    mean : np.ndarray, float64 [n_tracks, n_classes]
        Mean probability per track.
    truth : np.ndarray, int64 [n_tracks]
        Label per track.
    """
    ids = np.asarray(track_ids, dtype=object)
    tracks, inverse = np.unique(ids, return_inverse=True)
    mean = np.zeros((len(tracks), proba.shape[1]), dtype=np.float64)
    np.add.at(mean, inverse, proba.astype(np.float64))
    mean /= np.bincount(inverse, minlength=len(tracks))[:, None]
    truth = np.zeros(len(tracks), dtype=np.int64)
    truth[inverse] = np.asarray(labels, dtype=np.int64)
    return [str(t) for t in tracks], mean, truth


def clip_accuracy(probs: np.ndarray, labels: np.ndarray, track_ids: Sequence[str]) -> float:
    """Track-level accuracy: average the segment probabilities of each track, then argmax vs the track's label.

    Parameters
    ----------
    probs : ndarray float [segments, n_classes]
        Softmax outputs per segment.
    labels : ndarray int [segments]
        Label of each segment (constant within a track).
    track_ids : sequence of str, length segments

    Returns
    -------
    float
        Fraction of tracks classified correctly, in [0, 1]; 0.0 for no segments.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return 0.0
    _, mean, truth = clip_scores(probs, np.asarray(track_ids, dtype=object).astype(str), labels)
    return float(np.mean(mean.argmax(axis=1) == truth))


def accuracies(proba: np.ndarray, track_ids: Sequence[str], labels: np.ndarray) -> dict[str, Any]:
    """Segment and clip accuracy of segment probabilities, with the clip-level truth and predictions.

    ``proba`` [n_segments, n_classes], ``track_ids`` and ``labels`` [n_segments] are as in :func:`clip_scores`.

    Returns
    -------
    dict
        ``segment_accuracy`` (argmax of each segment) and ``clip_accuracy`` (probabilities averaged per track,
        then argmax): floats in [0, 1], NaN without segments; ``n_tracks``, ``n_segments`` (int); ``tracks``
        (sorted track ids, list of str [n_tracks]), ``truth`` and ``pred`` (np.ndarray int64 [n_tracks], label
        and predicted label per track, in the order of ``tracks``).
    """
    labels = np.asarray(labels, dtype=np.int64)
    tracks, mean, truth = clip_scores(proba, track_ids, labels)
    pred = mean.argmax(axis=1)
    return {"segment_accuracy": float((proba.argmax(axis=1) == labels).mean()) if len(labels) else float("nan"),
            "clip_accuracy": float((pred == truth).mean()) if len(truth) else float("nan"),
            "n_tracks": len(tracks), "n_segments": len(labels), "tracks": tracks, "truth": truth,
            "pred": pred}


def macro_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """Unweighted mean F1 over the labels present in ``truth`` or ``pred`` (a label never seen scores 0, not NaN).

    Parameters
    ----------
    truth, pred : np.ndarray, int [n]
        True and predicted label of each item (track).

    Returns
    -------
    float
        In [0, 1]; scikit-learn's ``f1_score(average="macro", zero_division=0)``.
    """
    from sklearn.metrics import f1_score

    return float(f1_score(truth, pred, average="macro", zero_division=0))


def per_class_scores(truth: np.ndarray, pred: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1 and support of every label, absent ones included (their scores are 0).

    Parameters
    ----------
    truth, pred : np.ndarray, int [n]
        True and predicted label index of each item (track); index ``i`` names ``labels[i]``.
    labels : sequence of str, length n_classes
        Label names.

    Returns
    -------
    dict
        ``{label name: {"precision": float, "recall": float, "f1": float, "support": int}}`` in the order of
        ``labels``; scores in [0, 1], support = number of items whose true label it is.
    """
    from sklearn.metrics import precision_recall_fscore_support

    n = len(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=list(range(n)), zero_division=0)
    return {labels[i]: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                        "support": int(support[i])} for i in range(n)}


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, *, n_classes: int) -> np.ndarray:
    """Counts of (true label, predicted label) pairs.

    Parameters
    ----------
    truth, pred : np.ndarray, int [n]
        True and predicted label index of each item (track), in ``range(n_classes)``.
    n_classes : int
        Number of labels; labels absent from both give a zero row and column.

    Returns
    -------
    np.ndarray, int64 [n_classes, n_classes]
        Row = true label, column = predicted label.
    """
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    return sk_confusion_matrix(truth, pred, labels=list(range(n_classes)))
