"""musicnn embeddings as baseline features: the network that computes them and the track table they make.

musicnn's own transfer-learning examples describe a clip by the mid-level ``max_pool`` and ``mean_pool`` vectors
(753 values each) of the pretrained tagger, averaged over the clip's 3-s patches, and fit a linear model or an SVM on
them; the MSD model's embeddings + SVM reach 77 % on GTZAN's fault-filtered split in the musicnn paper. Here:

- :class:`Embedder` holds a pretrained musicnn network (weights handed over by the driver, as
  :class:`spectrotune.predict.tag.Tagger` gets them) and turns a batch into one vector per row: rows of patches
  (``mel`` float32 [n, 96, n_frames], a dataset prepared with the musicnn front end) or rows of audio files
  (``path``, local or an object-store URI read through :func:`~spectrotune.sources.listing.local_copy`: decoded to
  16 kHz mono and cut into the tagger's patches, :func:`~spectrotune.audio.musicnn_frontend.
  musicnn_input`, the vector being the file's mean). ``layer``: ``pool`` (``max_pool`` then ``mean_pool``, 1506
  values) or ``penultimate`` (the 200-unit layer before the tag layer). It is the Ray Data callable of
  :mod:`spectrotune.evaluation.embeddings` (which runs it as actors, on GPUs when the cluster has them);
- :func:`embedding_track_table` averages those vectors per track (weighted by patches) into the track table the
  classical baselines fit (:func:`spectrotune.evaluation.baselines.fit_baseline` with ``features=``).

Pure numpy/torch/pandas; no ``ray``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from spectrotune.errors import ConfigError, DatasetError, InputError
from spectrotune.evaluation.baseline_data import TRACK_COLUMNS
from spectrotune.schema import GENRE, LABEL, MEL, SPLIT, TRACK_ID

__all__ = ["ESTIMATORS", "LAYERS", "MIN_SECONDS", "Embedder", "embedding_columns", "embedding_track_table"]

#: What a track's vector is made of (``evaluate.embeddings``; ``none`` switches them off).
LAYERS: tuple[str, ...] = ("pool", "penultimate")
#: The baselines fitted on embeddings (:data:`spectrotune.evaluation.baselines.BASELINES` names).
ESTIMATORS: tuple[str, ...] = ("svm_rbf", "logistic_regression")
MIN_SECONDS = 1.0  #: shorter audio files are not embedded (as ``spectrotune tag``)
PATCHES_PER_BATCH = 64  # patches per forward pass: bounds memory for long files


def embedding_columns(layer: str, *, pooled: int = 753, hidden: int = 200) -> list[str]:
    """Column names of a layer's vector: ``max_pool_0..752, mean_pool_0..752`` (pool) or ``penultimate_0..199``."""
    if layer == "pool":
        return [f"{name}_{i}" for name in ("max_pool", "mean_pool") for i in range(pooled)]
    if layer == "penultimate":
        return [f"penultimate_{i}" for i in range(hidden)]
    raise ConfigError(f"unknown embedding layer {layer!r} (valid: {', '.join(LAYERS)})")


class Embedder:
    """A pretrained musicnn network that embeds patches or audio files (also the Ray Data callable).

    Parameters
    ----------
    model : str
        ``MSD_musicnn`` or ``MTT_musicnn`` (vgg has neither layer).
    weights, meta : mapping
        The model's TF-named weights and its metadata as a dict (:func:`~spectrotune.models.pretrained.
        read_pretrained`, ``meta.to_dict()``), read by the driver.
    layer : str
        One of :data:`LAYERS`.
    device : str, optional
        ``cuda`` when available unless given.
    num_threads : int, optional
        torch intra-op threads (Ray actors use 1).
    """

    def __init__(self, model: str, *, weights: Mapping[str, np.ndarray], meta: Mapping[str, Any], layer: str = "pool",
                 device: str | None = None, num_threads: int | None = None) -> None:
        import torch

        from spectrotune.models import pretrained
        from spectrotune.models.musicnn import build_network, load_tf_weights

        if pretrained.architecture_of(model) != "musicnn":
            raise ConfigError(f"embeddings need a musicnn model (max_pool, mean_pool, penultimate), not {model}")
        embedding_columns(layer)
        if num_threads is not None:
            torch.set_num_threads(max(1, int(num_threads)))
        self.meta = pretrained.PretrainedMeta.from_dict(dict(meta), origin=f"{model} metadata")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net = build_network(model, n_classes=self.meta.n_classes)
        load_tf_weights(self.net, weights, source=f"{model} weights")
        self.net.eval().to(self.device)
        self.model, self.layer = model, layer
        self.columns = embedding_columns(layer)

    def vectors(self, patches: np.ndarray) -> np.ndarray:
        """float32 [n, len(columns)] of log-mel patches [n, 96, n_frames] (the musicnn front end's)."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(patches), PATCHES_PER_BATCH):
                x = torch.from_numpy(np.ascontiguousarray(patches[start:start + PATCHES_PER_BATCH], np.float32))
                f = self.net.features(x.to(self.device))
                v = torch.cat([f.max_pool, f.mean_pool], dim=1) if self.layer == "pool" else f.penultimate
                out.append(v.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.columns)), np.float32)

    def file_vector(self, path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
        """(mean vector [len(columns)], number of patches) of an audio file (a local path or a URI), cut as
        ``spectrotune tag`` cuts it."""
        from spectrotune.audio.io import decode
        from spectrotune.audio.musicnn_frontend import musicnn_input
        from spectrotune.sources.listing import local_copy

        with local_copy(os.fspath(path)) as local:
            y = decode(local, sr=self.meta.frontend.sr, min_seconds=MIN_SECONDS)
        patches, _ = musicnn_input(y, params=self.meta.frontend)
        return self.vectors(patches).astype(np.float64).mean(axis=0).astype(np.float32), len(patches)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data batch -> ``track_id``, ``weight`` (patches behind the vector), ``vector`` [n, D], ``reason``
        (empty, or why a file could not be embedded: its vector is then zeros with weight 0)."""
        ids = np.asarray(batch[TRACK_ID]).astype(str)
        if MEL in batch:
            vectors = self.vectors(np.asarray(batch[MEL]))
            return {TRACK_ID: ids, "weight": np.ones(len(ids), np.int64), "vector": vectors,
                    "reason": np.array([""] * len(ids), dtype=object)}
        vectors = np.zeros((len(ids), len(self.columns)), np.float32)
        weights, reasons = np.zeros(len(ids), np.int64), []
        for i, path in enumerate(np.asarray(batch["path"]).astype(str)):
            try:
                vectors[i], weights[i] = self.file_vector(path)
                reasons.append("")
            except InputError as e:
                reasons.append(getattr(e, "reason", None) or str(e))
            except Exception as e:  # noqa: BLE001 - one bad file must never cost the others; the reason is kept
                reasons.append(f"{type(e).__name__}: {e}")
        return {TRACK_ID: ids, "weight": weights, "vector": vectors, "reason": np.array(reasons, dtype=object)}


def embedding_track_table(tracks: pd.DataFrame, ids: Sequence[str], weights: np.ndarray, vectors: np.ndarray, *,
                          columns: Sequence[str]) -> pd.DataFrame:
    """One row per track: :data:`~spectrotune.evaluation.baseline_data.TRACK_COLUMNS` then ``columns`` (float64).

    Parameters
    ----------
    tracks : pandas.DataFrame
        ``track_id``, ``genre``, ``label``, ``split`` of every track to describe (one row each).
    ids, weights, vectors
        :class:`Embedder` rows: track id, patches behind the vector (0: not embedded, left out), vector [n, D].
        A track's vector is the patch-weighted mean of its rows; ``n_segments`` counts its patches.

    Raises
    ------
    DatasetError
        No track of ``tracks`` has a vector, or the vectors are not finite.
    """
    vectors = np.asarray(vectors, np.float64).reshape(len(ids), len(columns))
    w = np.asarray(weights, np.float64)
    frame = pd.DataFrame({TRACK_ID: np.asarray(ids, str), "w": w})
    keep = (w > 0) & frame[TRACK_ID].isin(tracks[TRACK_ID]).to_numpy()
    if not keep.any():
        raise DatasetError("no track could be embedded")
    weighted = pd.DataFrame(vectors[keep] * w[keep, None], columns=list(columns))
    weighted[TRACK_ID] = frame[TRACK_ID].to_numpy()[keep]
    sums = weighted.groupby(TRACK_ID, sort=True).sum()
    counts = frame[keep].groupby(TRACK_ID, sort=True)["w"].sum()
    means = sums.div(counts, axis=0)
    if not np.isfinite(means.to_numpy()).all():
        raise DatasetError("embeddings have non-finite values")
    info = tracks.drop_duplicates(TRACK_ID).set_index(TRACK_ID).loc[means.index]
    out = pd.DataFrame({TRACK_ID: means.index.astype(str), GENRE: info[GENRE].astype(str).to_numpy(),
                        LABEL: info[LABEL].astype(np.int64).to_numpy(), SPLIT: info[SPLIT].astype(str).to_numpy(),
                        "n_segments": counts.astype(np.int64).to_numpy()})
    assert tuple(out.columns) == TRACK_COLUMNS
    return pd.concat([out, means.reset_index(drop=True)], axis=1)
