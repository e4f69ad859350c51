"""Model bundles: a self-contained folder that ``evaluate``, ``predict`` and ``export`` load.

Layout::

    BUNDLE/
      model.safetensors   weights (normalisation buffers included); loading never executes code
      bundle.json         model name + resolved hyperparameters, labels, the exact audio/feature parameters,
                          normalisation statistics, metrics history, config + hash, package version
      config.yaml         the resolved training config

``bundle.json`` is a :class:`BundleMeta`, written and read by that class (format :data:`FORMAT`), and written last:
a folder without it is not a bundle. It records the sha256 of every other file (``files``) and a ``checksum`` of
its own content (:func:`meta_checksum`), so :func:`load_bundle` refuses a bundle copied half-way, a changed weights
file or an edited ``bundle.json`` with one line naming the file; a bundle of format ``spectrotune-bundle/1``
(written before the checksums) loads with a warning that its files are not verified. Its audio and
feature parameters give the bundle's :class:`InputRecipe`, the one description of how a file becomes model input
that ``predict`` and ``evaluate`` both use, so a bundle classifies new audio exactly as its training data was
prepared. No ``ray``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

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

logger = logging.getLogger(__name__)

#: The format of ``bundle.json``; a change to its keys or their meaning is a new format. 2 added ``files`` (sha256
#: of the other files) and ``checksum`` (of bundle.json itself); 1 (:data:`READ_FORMATS`) had neither.
FORMAT = "spectrotune-bundle/2"
READ_FORMATS: tuple[str, ...] = ("spectrotune-bundle/1",)
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
    ``config`` is the resolved training config as a plain mapping. ``files``: the sha256 (hex) of every other file
    of the bundle, by name; ``checksum``: :func:`meta_checksum` of the file's other keys (both empty in format 1).
    """

    FILE: ClassVar[str] = META
    FORMAT: ClassVar[str] = FORMAT
    READS: ClassVar[tuple[str, ...]] = READ_FORMATS
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
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    checksum: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types; a format-1 record (no checksums) without the keys it never had."""
        data = super().to_dict()
        if self.format in READ_FORMATS:
            data = {k: v for k, v in data.items() if k not in ("files", "checksum")}
        return data

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
        meta = cls.from_dict(data, origin=str(path))
        if meta.format not in READ_FORMATS and meta.checksum != meta_checksum(data):
            raise BundleError(f"{directory}: bundle.json was edited or is corrupt (checksum mismatch: it records "
                              f"{meta.checksum[:12] or 'none'}, its content hashes to {meta_checksum(data)[:12]})")
        return meta


def meta_checksum(data: Mapping[str, Any]) -> str:
    """sha256 (hex) of ``bundle.json``'s keys other than ``checksum``, as canonical JSON (sorted keys, no spaces)."""
    rest = {k: v for k, v in data.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()



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

    ``model`` must be the unwrapped model (not DDP) including its normalisation layer. Every file goes through
    :mod:`spectrotune.storage`, ``bundle.json`` last, with the sha256 of the others and its own checksum.

    Raises
    ------
    StorageError
        ``directory`` cannot be written (not writable, disk full): names the file and why; nothing is left behind
        (the staging folder is removed) and a bundle already at ``directory`` is unchanged.
    """
    directory = Path(directory)
    tmp = Path(storage.staging_sibling(directory))
    storage.makedirs(tmp)
    try:
        import yaml

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        payloads = {WEIGHTS: save_safetensors(state),
                    CONFIG: yaml.safe_dump(dict(config), sort_keys=False).encode("utf-8")}
        for name, payload in payloads.items():
            storage.write_bytes(tmp / name, payload)
        meta = BundleMeta(
            format=FORMAT, package_version=spectrotune.__version__, created_unix=time.time(),
            model=ModelInfo(model_name, dict(model_params), len(labels)), labels=tuple(labels),
            input_shape=(int(input_shape[0]), int(input_shape[1])), source_kind=source_kind, audio=dict(audio),
            features=dict(features),
            normalization=Normalization(tuple(np.asarray(norm_mean, np.float64).round(6).tolist()),
                                        tuple(np.asarray(norm_std, np.float64).round(6).tolist())),
            metrics=dict(metrics), config=dict(config), config_hash=config_hash,
            files={name: _sha256(payload) for name, payload in payloads.items()},
        )  # fmt: skip
        meta = dataclasses.replace(meta, checksum=meta_checksum(meta.to_dict()))
        meta.write(tmp)
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
    payload = _verified_files(directory, meta)
    n_mels = int(meta.input_shape[0])
    model = build_model(meta.model.name, n_classes=meta.model.n_classes, n_mels=n_mels, params=meta.model.params,
                        norm_mean=torch.zeros(n_mels), norm_std=torch.ones(n_mels))
    try:
        state = load_safetensors(payload)
    except Exception as e:  # safetensors raises its own types; any failure means a damaged bundle
        raise BundleError(f"{weights}: cannot load weights: truncated or corrupt ({_one_line(e)})") from e
    _check_shapes(weights, state, model, meta)
    try:
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - e.g. a dtype torch cannot copy: still a damaged bundle
        raise BundleError(f"{weights}: cannot load weights: {_one_line(e)}") from e
    model.to(device).eval()
    return Bundle(model=model, meta=meta, path=directory)


def _verified_files(directory: Path, meta: BundleMeta) -> bytes:
    """The bytes of the weights file, after checking every file ``bundle.json`` records against its sha256 (a
    format-1 bundle records none: one warning, nothing verified)."""
    payload = (directory / WEIGHTS).read_bytes()
    if meta.format in READ_FORMATS:
        logger.info(f"{directory}: a {meta.format} bundle (written before bundles recorded checksums): its files "
                       "are not verified")
        return payload
    for name, digest in meta.files.items():
        path = directory / name
        if not path.is_file():
            raise BundleError(f"{path}: missing (bundle.json records it; the bundle was copied half-way)")
        got = _sha256(payload if name == WEIGHTS else path.read_bytes())
        if got != digest:
            raise BundleError(f"{directory}: {name} is truncated or changed (sha256 {got[:12]}, bundle.json "
                              f"records {digest[:12]}; {path.stat().st_size} bytes)")
    return payload


def _check_shapes(weights: Path, state: Mapping[str, torch.Tensor], model: torch.nn.Module, meta: BundleMeta) -> None:
    """One line naming the first tensor whose name or shape does not fit the model ``bundle.json`` describes."""
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model_text = f"the {meta.model.name} model bundle.json describes ({meta.model.n_classes} classes, input " \
                 f"{tuple(meta.input_shape)})"
    for name, tensor in state.items():
        if name not in wanted:
            raise BundleError(f"{weights}: tensor {name!r} is not in {model_text}")
        if tuple(tensor.shape) != wanted[name]:
            raise BundleError(f"{weights}: tensor {name!r} has shape {tuple(tensor.shape)}, {model_text} needs "
                              f"{wanted[name]}")
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise BundleError(f"{weights}: {len(missing)} tensor(s) of {model_text} are missing, e.g. {missing[0]!r}")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
