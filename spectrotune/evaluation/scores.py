"""Scores at clip (track) level: segment probabilities averaged per track, the one place that does it.

Training's validation score (:data:`spectrotune.schema.SCORE`), the evaluation report and the sweeps all rank by
these numbers, so they are computed here once. Pure numpy, no ``ray``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["clip_accuracy", "clip_scores"]


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
