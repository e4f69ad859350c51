"""Model bundles: a self-contained folder that ``evaluate``, ``predict`` and ``export`` load.

Layout::

    BUNDLE/
      model.safetensors   weights (normalisation buffers included); loading never executes code
      bundle.json         model name + resolved hyperparameters, labels, the exact audio/feature parameters,
                          normalisation statistics, metrics history, config + hash, package version
      config.yaml         the resolved training config

``bundle.json`` is a :class:`BundleMeta`, written and read by that class (format :data:`FORMAT`). Its audio and
feature parameters give the bundle's :class:`InputRecipe`, the one description of how a file becomes model input
that ``predict`` and ``evaluate`` both use, so a bundle classifies new audio exactly as its training data was
prepared. No ``ray``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import spectrotune
from spectrotune import storage
from spectrotune.audio import logmel
from spectrotune.audio.io import PAD_MODES
from spectrotune.config import AudioConfig
from spectrotune.errors import BundleError, ConfigError
from spectrotune.schema import BUNDLE_META, BUNDLE_WEIGHTS, CONFIG
from spectrotune.sources.kinds import LogMel, ModelInput, SourceKind, Windowing, source_kind
from spectrotune.storage import replace_dir
from spectrotune.typed_config import JsonRecord

#: The format of ``bundle.json``; a change to its keys or their meaning is a new format.
FORMAT = "spectrotune-bundle/1"
WEIGHTS = BUNDLE_WEIGHTS
META = BUNDLE_META
#: Log-mel parameters a bundle's ``features`` may name (the rest of that section is not about the model input); a
#: bundle without ``frontend`` (written before the key existed) is ``logmel``.
LOG_MEL_KEYS = ("n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db", "frontend")


@dataclass(frozen=True)
class InputRecipe:
    """How a bundle's model input is made from one file, exactly as its training rows were prepared.

    ``kind``: the source kind (audio files or spectrogram images); ``windowing``: the decode rate (Hz), window
    length and hop (s) of the test split, which is how the model was evaluated (any file with at least one sample
    is accepted; one shorter than a window is padded as the training rows were, ``windowing.pad``); ``log_mel``:
    the log-mel parameters;
    ``input_shape``: ``(n_mels, n_frames)`` of one window's input (images are resized to it).
    """

    kind: SourceKind
    windowing: Windowing
    log_mel: LogMel
    input_shape: tuple[int, int]

    def model_input(self, path: str | Path) -> tuple[np.ndarray, bool, float]:
        """``(mel float32 [n_segments, n_mels, n_frames], padded, seconds between window starts)`` of ``path``.

        Raises :class:`~spectrotune.errors.InputError` for a file that cannot be read.
        """
        return self.kind.model_input(path, self)

    def model_windows(self, path: str | Path) -> ModelInput:
        """:meth:`model_input` with the file's silence flag (:class:`~spectrotune.sources.kinds.ModelInput`)."""
        return self.kind.model_windows(path, self)

    def with_hop(self, hop_seconds: float) -> InputRecipe:
        """The same recipe with windows starting every ``hop_seconds`` s."""
        return dataclasses.replace(self, windowing=dataclasses.replace(self.windowing, hop_seconds=hop_seconds))


@dataclass(frozen=True)
class ModelInfo:
    """The network: its registry name, resolved hyperparameters and number of classes."""

    name: str
    params: dict[str, Any]
    n_classes: int


@dataclass(frozen=True)
class Normalization:
    """Per-mel-bin mean and standard deviation of the training rows (rounded to 6 decimals)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class BundleMeta(JsonRecord):
    """``bundle.json``: the fields are the file's keys, in its order.

    ``audio`` and ``features`` are the training config's sections as saved (``audio`` also holds
    ``test_hop_seconds``); read them through :meth:`recipe`. ``metrics`` holds ``best_epoch``, ``best`` and
    ``history`` when written by ``spectrotune train``; read them through :attr:`history` and :attr:`best_epoch`.
    ``config`` is the resolved training config as a plain mapping.
    """

    FILE: ClassVar[str] = META
    FORMAT: ClassVar[str] = FORMAT
    KIND: ClassVar[str] = "bundle"
    WHAT: ClassVar[str] = "bundle metadata"
    ERROR: ClassVar[type[Exception]] = BundleError

    format: str
    package_version: str
    created_unix: float
    model: ModelInfo
    labels: tuple[str, ...]
    input_shape: tuple[int, ...]
    source_kind: str
    audio: dict[str, Any]
    features: dict[str, Any]
    normalization: Normalization
    metrics: dict[str, Any]
    config: dict[str, Any]
    config_hash: str

    @property
    def history(self) -> list[dict[str, Any]]:
        """The training history, one dict of metrics per epoch (empty when the bundle holds none)."""
        return list(self.metrics.get("history") or [])

    @property
    def best_epoch(self) -> int | None:
        """The epoch whose weights the bundle holds (``None`` when unknown)."""
        return self.metrics.get("best_epoch")

    @property
    def best(self) -> dict[str, Any] | None:
        """The metrics of :attr:`best_epoch`."""
        return self.metrics.get("best")

    def recipe(self) -> InputRecipe:
        """The :class:`InputRecipe` of this bundle.

        A missing sample rate or window length means the library defaults (22050 Hz, 3 s); the hop is
        ``test_hop_seconds`` (written by ``spectrotune train``), else the test entry of ``hop_seconds`` (a flat
        number is accepted too), else one window (no overlap). ``pad`` is the bundle's ``audio.pad``; a bundle
        written before that key existed was trained on zero-padded rows (:attr:`AudioConfig.LEGACY_PAD`). Log-mel
        parameters the bundle does not name are :func:`~spectrotune.audio.logmel.log_mel`'s defaults.
        """
        a = self.audio
        try:
            sr = int(a.get("sample_rate", logmel.SR))
            seconds = float(a.get("segment_seconds", 3.0))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"bundle audio parameters are invalid: {a!r}") from e
        hop = a.get("hop_seconds")
        if isinstance(hop, Mapping):
            hop = hop.get("test")
        if a.get("test_hop_seconds") is not None:
            hop = a["test_hop_seconds"]
        pad = a.get("pad", AudioConfig.LEGACY_PAD)
        if pad not in PAD_MODES:
            raise ConfigError(f"bundle audio.pad={pad!r} is not valid: expected one of {', '.join(PAD_MODES)}")
        windowing = Windowing(sr, seconds, seconds if hop is None else float(hop), min_seconds=0.0, pad=pad)
        log_mel = LogMel(sample_rate=sr, **{k: self.features[k] for k in LOG_MEL_KEYS if k in self.features})
        n_mels, n_frames = self.input_shape
        return InputRecipe(source_kind(self.source_kind), windowing, log_mel, (int(n_mels), int(n_frames)))

    @classmethod
    def read(cls, directory: str | Path) -> BundleMeta:
        """:func:`read_meta`."""
        path = storage.join(directory, META)
        try:
            data = json.loads(storage.read_text(path))
        except FileNotFoundError:
            raise BundleError(f"{directory}: not a model bundle (no {META}; bundles are written by spectrotune "
                              "train)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(f"{path}: unreadable bundle metadata: {e}") from e
        return cls.from_dict(data, origin=str(path))



@dataclass
class Bundle:
    """A loaded bundle: the model in eval mode plus everything needed to feed it."""

    model: torch.nn.Module
    meta: BundleMeta
    path: Path | str

    @property
    def labels(self) -> list[str]:
        return list(self.meta.labels)

    @property
    def source_kind(self) -> str:
        return self.meta.source_kind

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(n_mels, n_frames)`` the model was trained on."""
        n_mels, n_frames = self.meta.input_shape
        return int(n_mels), int(n_frames)

    @property
    def recipe(self) -> InputRecipe:
        """How a file becomes this model's input (:meth:`BundleMeta.recipe`)."""
        return self.meta.recipe()

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
    tmp = Path(storage.staging_sibling(directory))
    tmp.mkdir()
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        meta = BundleMeta(
            format=FORMAT, package_version=spectrotune.__version__, created_unix=time.time(),
            model=ModelInfo(model_name, dict(model_params), len(labels)), labels=tuple(labels),
            input_shape=(int(input_shape[0]), int(input_shape[1])), source_kind=source_kind, audio=dict(audio),
            features=dict(features),
            normalization=Normalization(tuple(np.asarray(norm_mean, np.float64).round(6).tolist()),
                                        tuple(np.asarray(norm_std, np.float64).round(6).tolist())),
            metrics=dict(metrics), config=dict(config), config_hash=config_hash,
        )  # fmt: skip
        meta.write(tmp)
        import yaml

        (tmp / CONFIG).write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
        replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_meta(directory: str | Path) -> BundleMeta:
    """``bundle.json`` of a bundle (a local folder or a URI), typed, with a clear error if it is not one."""
    return BundleMeta.read(directory)


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
    n_mels = int(meta.input_shape[0])
    model = build_model(meta.model.name, n_classes=meta.model.n_classes, n_mels=n_mels, params=meta.model.params,
                        norm_mean=torch.zeros(n_mels), norm_std=torch.ones(n_mels))
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except Exception as e:  # safetensors raises its own types; any failure means a damaged bundle
        raise BundleError(f"{weights}: cannot load weights: {e}") from e
    model.to(device).eval()
    return Bundle(model=model, meta=meta, path=directory)
