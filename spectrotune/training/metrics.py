"""Training metrics as plain numbers: normalisation statistics, one epoch's validation scores, the epoch line.

Per-epoch metrics (:data:`spectrotune.schema.METRIC_KEYS`, in that order): ``epoch``, ``train_loss``,
``train_accuracy``, ``valid_loss``, ``valid_accuracy`` (per segment), ``valid_clip_accuracy`` (segment
probabilities averaged per track, argmax vs label), ``lr`` (at the end of the epoch), ``epoch_seconds`` (train +
validation), ``train_seconds``, ``samples_per_second`` (train samples of all workers / train seconds) and
``attempt`` (1 for the first session of a run, +1 for every resumption, so a history shows where a run was
resumed). Losses are cross-entropy in nats per segment.

The per-track averaging lives in :mod:`spectrotune.evaluation.scores` (training, evaluation and sweeps share it);
this module only assembles an epoch's numbers. Pure numpy, no ``ray``, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from spectrotune.errors import DatasetError
from spectrotune.evaluation.scores import clip_accuracy
from spectrotune.schema import SCORE

__all__ = ["STD_FLOOR", "epoch_line", "norm_stats", "valid_metrics"]

STD_FLOOR = 1e-3  #: smallest per-bin standard deviation (dB), so constant bins do not divide by zero


def norm_stats(
    batches: Iterable[np.ndarray], *, n_mels: int, std_floor: float = STD_FLOOR
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-mel-bin mean and standard deviation over a stream of mel batches.

    Parameters
    ----------
    batches : iterable of ndarray float [rows, n_mels, n_frames]
        The train split's mel values (dB, or colormap positions for image datasets), in any number of batches.
    n_mels : int
        Mel bins (rows of each segment).
    std_floor : float
        Smallest standard deviation returned, so constant bins (e.g. above ``fmax``) do not divide by zero.

    Returns
    -------
    mean, std : ndarray float32 [n_mels]
        Accumulated in float64 (sums of squares of ~10^8 dB values lose digits in float32).
    rows : int
        Segments seen.
    """
    total = np.zeros(n_mels, np.float64)
    total_sq = np.zeros(n_mels, np.float64)
    count = 0
    rows = 0
    for mel in batches:
        mel = np.asarray(mel)
        if mel.ndim != 3 or mel.shape[1] != n_mels:
            raise DatasetError(f"mel batch has shape {mel.shape}, expected [rows, {n_mels}, n_frames]")
        m = mel.astype(np.float64, copy=False)
        total += m.sum(axis=(0, 2))
        total_sq += np.square(m).sum(axis=(0, 2))
        count += mel.shape[0] * mel.shape[2]
        rows += mel.shape[0]
    if count == 0:
        return np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32), 0
    mean = total / count
    var = np.maximum(total_sq / count - np.square(mean), 0.0)
    std = np.maximum(np.sqrt(var), std_floor)
    return mean.astype(np.float32), std.astype(np.float32), rows


def valid_metrics(
    probs: Sequence[np.ndarray], labels: Sequence[np.ndarray], track_ids: Sequence[np.ndarray], *, loss_sum: float
) -> dict[str, float]:
    """``valid_loss``, ``valid_accuracy`` (per segment) and :data:`SCORE` (per track) of one pass over the valid rows.

    Parameters
    ----------
    probs : sequence of ndarray float [batch, n_classes]
        Softmax outputs, one array per batch.
    labels : sequence of ndarray int [batch]
        True labels, batch by batch.
    track_ids : sequence of ndarray str [batch]
        Track of each segment, batch by batch.
    loss_sum : float
        Summed cross-entropy (nats) over every segment.

    Returns
    -------
    dict
        ``valid_loss`` is the mean cross-entropy in nats per segment; with no rows it is NaN and both accuracies 0.
    """
    if not probs:
        return {"valid_loss": float("nan"), "valid_accuracy": 0.0, SCORE: 0.0}
    p, y, t = np.concatenate(probs), np.concatenate(labels), np.concatenate(track_ids)
    return {"valid_loss": loss_sum / len(y), "valid_accuracy": float(np.mean(p.argmax(1) == y)),
            SCORE: clip_accuracy(p, y, t)}


def epoch_line(metrics: Mapping[str, Any], *, epochs: int) -> str:
    """One epoch's metrics as the one line the console (rank 0) and ``train.log`` show."""
    return (f"epoch {metrics['epoch']}/{epochs}: train loss {metrics['train_loss']:.4f} acc "
            f"{metrics['train_accuracy']:.3f} | valid loss {metrics['valid_loss']:.4f} acc "
            f"{metrics['valid_accuracy']:.3f} clip {metrics[SCORE]:.3f} | {metrics['samples_per_second']:.0f} samples/s")
