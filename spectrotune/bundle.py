"""Model bundles: a self-contained folder that ``evaluate``, ``predict`` and ``export`` load.

Layout::

    BUNDLE/
      model.safetensors   weights (normalisation buffers included); loading never executes code
      bundle.json         model name + resolved hyperparameters, labels, the exact audio/feature parameters,
                          normalisation statistics, metrics history, config + hash, package version
      config.yaml         the resolved training config

``predict`` recomputes its inputs from ``bundle.json``'s audio and feature parameters, so a bundle classifies
new audio exactly as its training data was prepared. No ``ray``.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import spectrotune
from spectrotune.errors import BundleError
from spectrotune import storage
from spectrotune.storage import replace_dir

FORMAT = "spectrotune-bundle/1"
WEIGHTS = "model.safetensors"
META = "bundle.json"


@dataclass
class Bundle:
    """A loaded bundle: the model in eval mode plus everything needed to feed it."""

    model: torch.nn.Module
    meta: dict[str, Any]
    path: Path | str

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def source_kind(self) -> str:
        return str(self.meta["source_kind"])

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(n_mels, n_frames)`` the model was trained on."""
        n_mels, n_frames = self.meta["input_shape"]
        return int(n_mels), int(n_frames)

    @torch.no_grad()
    def predict_proba(self, mel: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Class probabilities float32 [n, n_classes] for log-mel segments float32 [n, n_mels, n_frames]."""
        mel = np.asarray(mel, dtype=np.float32)
        if not mel.flags.writeable:  # Arrow-backed arrays are read-only; torch wants writable memory
            mel = mel.copy()
        if mel.ndim != 3:
            raise BundleError(f"expected mel segments [n, n_mels, n_frames], got shape {mel.shape}")
        out = []
        device = next(self.model.parameters()).device
        for start in range(0, len(mel), batch_size):
            x = torch.from_numpy(mel[start : start + batch_size]).to(device)
            out.append(torch.softmax(self.model(x).float(), dim=-1).cpu().numpy())
        n_classes = len(self.labels)
        return np.concatenate(out, axis=0) if out else np.zeros((0, n_classes), np.float32)


def save_bundle(
    directory: str | Path,
    *,
    model: torch.nn.Module,
    model_name: str,
    model_params: Mapping[str, Any],
    labels: Sequence[str],
    input_shape: tuple[int, int],
    source_kind: str,
    audio: Mapping[str, Any],
    features: Mapping[str, Any],
    norm_mean: np.ndarray,
    norm_std: np.ndarray,
    metrics: Mapping[str, Any],
    config: Mapping[str, Any],
    config_hash: str,
) -> Path:
    """Write a bundle atomically (aside, then renamed); an existing bundle at ``directory`` is replaced.

    ``model`` must be the unwrapped model (not DDP) including its normalisation layer.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        meta = {
            "format": FORMAT,
            "package_version": spectrotune.__version__,
            "created_unix": time.time(),
            "model": {"name": model_name, "params": dict(model_params), "n_classes": len(labels)},
            "labels": list(labels),
            "input_shape": [int(input_shape[0]), int(input_shape[1])],
            "source_kind": source_kind,
            "audio": dict(audio),
            "features": dict(features),
            "normalization": {"mean": np.asarray(norm_mean, np.float64).round(6).tolist(),
                              "std": np.asarray(norm_std, np.float64).round(6).tolist()},
            "metrics": dict(metrics),
            "config": dict(config),
            "config_hash": config_hash,
        }
        (tmp / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        import yaml

        (tmp / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    """``bundle.json`` of a bundle, with a clear error if it is not one."""
    path = storage.join(directory, META)
    try:
        meta = json.loads(storage.read_text(path))
    except FileNotFoundError:
        raise BundleError(f"{directory}: not a model bundle (no {META}; bundles are written by spectrotune train)"
                          ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path}: unreadable bundle metadata: {e}") from e
    if meta.get("format") != FORMAT:
        raise BundleError(f"{path}: unsupported bundle format {meta.get('format')!r} (expected {FORMAT})")
    return meta


def load_bundle(directory: str | Path, *, device: str | torch.device = "cpu") -> Bundle:
    """Load a bundle: rebuild the model from its stored hyperparameters and load the weights (no code runs).

    ``directory`` may be a URI: the bundle is downloaded to a temporary folder and loaded from there.
    """
    from spectrotune.models.networks import build_model

    if storage.is_uri(directory):
        read_meta(directory)  # a clear error before downloading anything
        with storage.local_input(directory) as local:
            bundle = load_bundle(local, device=device)
        bundle.path = storage.norm(directory)
        return bundle
    directory = Path(directory)
    meta = read_meta(directory)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise BundleError(f"{directory}: weights file {WEIGHTS} is missing")
    n_mels = int(meta["input_shape"][0])
    model = build_model(meta["model"]["name"], n_classes=int(meta["model"]["n_classes"]), n_mels=n_mels,
                        params=meta["model"]["params"], norm_mean=torch.zeros(n_mels), norm_std=torch.ones(n_mels))
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except Exception as e:  # safetensors raises its own types; any failure means a damaged bundle
        raise BundleError(f"{weights}: cannot load weights: {e}") from e
    model.to(device).eval()
    return Bundle(model=model, meta=meta, path=directory)
