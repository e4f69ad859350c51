"""The JSON replies of ``spectrotune serve``, built from numpy arrays and the bundle's metadata. Pure; no ``ray``.

``POST /v1/predict`` (:func:`prediction`)::

    {"file": {"name": "song.mp3", "bytes": 48213, "duration_seconds": 30.0},
     "top": [{"genre": "jazz", "probability": 0.71}, {"genre": "blues", "probability": 0.2}, ...],
     "probabilities": {"blues": 0.2, "classical": 0.01, ...},
     "padded": false, "silent": false, "n_windows": 10,
     "timeline": {"labels": ["blues", ...],
                  "windows": [{"start": 0.0, "end": 3.0, "probabilities": [0.1, ...]}, ...]},
     "model": {"name": "cnn", "version": "sha256:3f0c1a...", "labels": [...]},
     "seconds": 0.041}

The file's probabilities are the mean of its windows' (in float64, as ``spectrotune predict`` computes them, so
``top[i].probability`` equals predict's ``p{i}``); a window's are its own softmax (float32 values). ``GET /v1/model``
is :func:`model_info`; ``POST /v1/embed`` is :func:`embedding`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from spectrotune.audio.io import NEAR_SILENCE_DB
from spectrotune.bundle import LOG_MEL_KEYS

if TYPE_CHECKING:
    from spectrotune.bundle import BundleMeta, InputRecipe
    from spectrotune.serving.inference import Clip

__all__ = ["embedding", "model_info", "prediction"]


def model_info(meta: BundleMeta, *, version: str, recipe: InputRecipe, can_embed: bool = False) -> dict[str, Any]:
    """``GET /v1/model``: the model (name, version, hyperparameters), its labels, the audio front end it expects
    (rate, window, hop, log-mel parameters, input shape) and the metrics recorded by training."""
    w = recipe.windowing
    return {
        "name": meta.model.name,
        "version": version,
        "params": dict(meta.model.params),
        "labels": list(meta.labels),
        "source_kind": meta.source_kind,
        "package_version": meta.package_version,
        "config_hash": meta.config_hash,
        "created_unix": meta.created_unix,
        "front_end": {
            "sample_rate": w.sample_rate,
            "window_seconds": w.segment_seconds,
            "hop_seconds": w.hop_seconds,
            "pad": getattr(w, "pad", "zeros"),
            "log_mel": {k: getattr(recipe.log_mel, k) for k in LOG_MEL_KEYS},
            "input_shape": list(recipe.input_shape),
        },
        "metrics": {"best_epoch": meta.best_epoch, "best": meta.best, "history": meta.history},
        "embedding": bool(can_embed),
    }


def _short_model(model: dict[str, Any]) -> dict[str, Any]:
    return {k: model[k] for k in ("name", "version", "labels")}


def _file(clip: Clip) -> dict[str, Any]:
    return {"name": clip.name, "bytes": clip.size, "duration_seconds": clip.duration_seconds}


def _windows(clip: Clip, n: int) -> list[tuple[float, float]]:
    starts = [round(i * clip.hop_seconds, 6) for i in range(n)]
    return [(s, round(s + clip.window_seconds, 6)) for s in starts]


def prediction(clip: Clip, proba: np.ndarray | None, *, labels: list[str], top_k: int, model: dict[str, Any],
               seconds: float | None = None) -> dict[str, Any]:
    """The reply for one file: ``proba`` float32 [n_windows, n_classes] are its windows' probabilities.

    A silent clip (``proba`` None) gets no genre, as in ``spectrotune predict``: ``top`` and ``probabilities`` are
    empty, its windows carry no probabilities and ``reason`` says why.
    """
    n = len(clip.mel)
    if proba is None:
        if not clip.silent:
            raise ValueError("only a silent clip comes without probabilities")
        top, mean, rows = [], {}, [[] for _ in range(n)]
        reason = f"silent: every window is below {NEAR_SILENCE_DB:g} dBFS RMS; no genre given"
    else:
        proba = np.asarray(proba)
        if proba.shape != (n, len(labels)) or n == 0:
            raise ValueError(f"expected probabilities [{n}, {len(labels)}], got shape {proba.shape}")
        mean_p = proba.astype(np.float64).mean(axis=0)  # as predict.core.score_input: p{i} are equal
        top = [{"genre": labels[c], "probability": float(mean_p[c])}
               for c in np.argsort(-mean_p, kind="stable")[:top_k]]
        mean = {label: float(p) for label, p in zip(labels, mean_p, strict=True)}
        rows = [[float(p) for p in row] for row in proba]
        reason = ""
    return {
        "file": _file(clip),
        "top": top,
        "probabilities": mean,
        "padded": clip.padded,
        "silent": clip.silent,
        "reason": reason,
        "n_windows": int(n),
        "timeline": {"labels": list(labels),
                     "windows": [{"start": s, "end": e, "probabilities": row}
                                 for (s, e), row in zip(_windows(clip, n), rows, strict=True)]},
        "model": _short_model(model),
        "seconds": None if seconds is None else round(seconds, 4),
    }


def embedding(clip: Clip, vectors: np.ndarray, *, model: dict[str, Any], seconds: float | None = None
              ) -> dict[str, Any]:
    """The reply of ``/v1/embed``: ``vectors`` float32 [n_windows, d], per window and their mean over the file."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"expected embeddings [n_windows>0, d], got shape {vectors.shape}")
    return {
        "file": _file(clip),
        "dim": int(vectors.shape[1]),
        "mean": [float(v) for v in vectors.astype(np.float64).mean(axis=0)],
        "windows": [{"start": s, "end": e, "vector": [float(v) for v in row]}
                    for (s, e), row in zip(_windows(clip, len(vectors)), vectors, strict=True)],
        "padded": clip.padded,
        "silent": clip.silent,
        "model": _short_model(model),
        "seconds": None if seconds is None else round(seconds, 4),
    }
