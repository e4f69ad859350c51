"""The pretrained musicnn models on disk: their names, the cache folder, each model's metadata and weights.

``spectrotune fetch musicnn`` (:mod:`spectrotune.sources.musicnn_fetch`) writes, into the musicnn cache folder
(:func:`musicnn_cache_dir`: ``$SPECTROTUNE_CACHE/musicnn``, default ``~/.cache/spectrotune/musicnn``)::

    MSD_musicnn.safetensors  MSD_musicnn.json    (and the same for MTT_musicnn, MSD_vgg, MTT_vgg)
    LICENSE.md                                   the wheel's ISC licence text
    fetched.json                                 written last: the wheel's sha256 and every file's sha256

A ``.safetensors`` file holds the model's TF variables under their TF names and in TF layouts (conv kernels
``[kh, kw, in, out]``, dense kernels ``[in, out]``, batch norm ``gamma/beta/moving_mean/moving_variance``); the
optimizer state of the checkpoint is left out and listed, with the reason, in the JSON (:class:`PretrainedMeta`).
:func:`expected_tensors` is the one list of those names and shapes: the fetch checks every checkpoint against
it, and :mod:`spectrotune.models.musicnn` maps each name onto a PyTorch parameter.

:func:`read_pretrained` loads a model's metadata and weights as numpy arrays (safetensors: nothing executed),
checking them against :func:`expected_tensors`; an empty cache is a :class:`~spectrotune.errors.InputError` that
says to run ``spectrotune fetch musicnn``. Torch-free and Ray-free (the fetch imports it).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from spectrotune import schema
from spectrotune.audio.musicnn_frontend import MusicnnFrontend
from spectrotune.errors import InputError
from spectrotune.typed_config import JsonRecord, choices

__all__ = ["ARCHITECTURES", "MODELS", "PretrainedMeta", "architecture_of", "cache_root", "expected_tensors",
           "meta_path", "musicnn_cache_dir", "read_pretrained", "tensor_difference", "weights_path"]

#: The four models of the musicnn 0.1.0 wheel, and their architecture.
ARCHITECTURES: dict[str, str] = {
    "MSD_musicnn": "musicnn", "MTT_musicnn": "musicnn", "MSD_vgg": "vgg", "MTT_vgg": "vgg",
}
MODELS: tuple[str, ...] = tuple(ARCHITECTURES)
#: Training data of each prefix: the Million Song Dataset's or MagnaTagATune's 50 most frequent tags.
DATASETS = {"MSD": "Million Song Dataset (last.fm tags)", "MTT": "MagnaTagATune"}
FORMAT = "spectrotune-musicnn-1"


def architecture_of(model: str) -> str:
    """``"musicnn"`` or ``"vgg"`` for one of :data:`MODELS`; InputError naming the choices otherwise."""
    try:
        return ARCHITECTURES[model]
    except (KeyError, TypeError):
        raise InputError(f"unknown pretrained model {model!r}; choose one of {', '.join(MODELS)}") from None


def cache_root() -> Path:
    """``$SPECTROTUNE_CACHE`` if set (``~`` expanded), else ``~/.cache/spectrotune``."""
    env = os.environ.get(schema.CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "spectrotune"


def musicnn_cache_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """The musicnn folder: ``cache`` when given (what ``fetch musicnn --dest`` wrote), else ``cache_root()/musicnn``."""
    return Path(cache).expanduser() if cache is not None else cache_root() / schema.MUSICNN_CACHE


def weights_path(model: str, cache: str | os.PathLike[str] | None = None) -> Path:
    """``<musicnn cache>/<model>.safetensors``."""
    architecture_of(model)  # refuses an unknown name before it becomes a file name
    return musicnn_cache_dir(cache) / f"{model}.safetensors"


def meta_path(model: str, cache: str | os.PathLike[str] | None = None) -> Path:
    """``<musicnn cache>/<model>.json``."""
    architecture_of(model)  # refuses an unknown name before it becomes a file name
    return musicnn_cache_dir(cache) / f"{model}.json"


def _bn(name: str, n: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}/{p}": (n,) for p in ("gamma", "beta", "moving_mean", "moving_variance")}


def _layer(name: str, kernel: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    return {f"{name}/kernel": kernel, f"{name}/bias": (kernel[-1],)}


def expected_tensors(architecture: str, *, n_classes: int = 50) -> dict[str, tuple[int, ...]]:
    """TF variable name -> shape of every variable the network uses (64 for musicnn, 36 for vgg).

    musicnn (creation order, as the checkpoint names them): the input batch norm; the timbral convs ``conv2d``
    7x38 and ``conv2d_1`` 7x67 (204 filters) with batch norms ``_1``/``_2``; the temporal convs ``conv2d_2..4``
    128x1 / 64x1 / 32x1 (51 filters) with ``_3..5``; the mid-end ``conv2d_5..7`` (7 x features, 64 filters) with
    ``_6..8``; ``_9`` on the 1506 pooled values; ``dense`` 1506 -> 200, ``_10``, ``dense_1`` 200 -> n_classes.
    vgg: the input batch norm; ``1CNN``..``5CNN`` 3x3 (128 filters) with ``_1..5``; ``dense`` 256 -> n_classes.
    """
    out = _bn("batch_normalization", 1)
    if architecture == "musicnn":
        convs = [(7, 38, 1, 204), (7, 67, 1, 204), (128, 1, 1, 51), (64, 1, 1, 51), (32, 1, 1, 51),
                 (7, 561, 1, 64), (7, 64, 1, 64), (7, 64, 1, 64)]
        for i, kernel in enumerate(convs):
            out |= _layer("conv2d" + (f"_{i}" if i else ""), kernel) | _bn(f"batch_normalization_{i + 1}", kernel[-1])
        out |= _bn("batch_normalization_9", 1506) | _layer("dense", (1506, 200))
        out |= _bn("batch_normalization_10", 200) | _layer("dense_1", (200, n_classes))
    elif architecture == "vgg":
        for i in range(1, 6):
            out |= _layer(f"{i}CNN", (3, 3, 1 if i == 1 else 128, 128)) | _bn(f"batch_normalization_{i}", 128)
        out |= _layer("dense", (256, n_classes))
    else:
        raise InputError(f"unknown architecture {architecture!r} (musicnn or vgg)")
    return out


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
    """Where a cached model came from: the wheel, its digest, and the checkpoint files inside it (with sha256)."""

    wheel: str
    wheel_sha256: str
    checkpoint: str  #: prefix inside the wheel, e.g. ``musicnn/MSD_musicnn/``
    index_sha256: str
    data_sha256: str


@dataclasses.dataclass(frozen=True)
class PretrainedMeta(JsonRecord):
    """``<model>.json`` beside the weights: what the model predicts and what it must be fed.

    Attributes
    ----------
    model : str
        One of :data:`MODELS`.
    architecture : str
        ``"musicnn"`` or ``"vgg"``.
    trained_on : str
        The tag set's data set (:data:`DATASETS`).
    tags : tuple of str
        Tag names in output order (``configuration.MSD_LABELS`` / ``MTT_LABELS`` of the wheel).
    frontend : MusicnnFrontend
        The input pipeline's parameters (:mod:`spectrotune.audio.musicnn_frontend`).
    weights : str
        File name of the safetensors beside this file.
    tensors : dict
        TF variable name -> shape of every tensor in ``weights`` (all of them are used).
    skipped : tuple of str
        Checkpoint entries not written (the optimizer state), with ``skipped_reason``.
    source : CheckpointSource
        The wheel and the checkpoint files the weights were read from.
    licence : str
        File name of the licence text beside this file, and ``licence_name``, ``copyright`` say which.
    """

    FILE: ClassVar[str] = "<model>.json"
    FORMAT: ClassVar[str] = FORMAT
    KIND: ClassVar[str] = "pretrained model"
    WHAT: ClassVar[str] = "model metadata"
    ERROR: ClassVar[type[Exception]] = InputError

    format: str
    model: str = dataclasses.field(metadata=choices(*MODELS))
    architecture: str = dataclasses.field(metadata=choices("musicnn", "vgg"))
    trained_on: str
    tags: tuple[str, ...]
    frontend: MusicnnFrontend
    weights: str
    tensors: dict[str, tuple[int, ...]]
    skipped: tuple[str, ...]
    skipped_reason: str
    source: CheckpointSource
    licence: str
    licence_name: str
    copyright: str

    @property
    def n_classes(self) -> int:
        return len(self.tags)


def read_pretrained(model: str, cache: str | os.PathLike[str] | None = None
                    ) -> tuple[PretrainedMeta, dict[str, np.ndarray]]:
    """A cached model's metadata and its weights (TF names -> float32 numpy arrays in TF layout).

    Checks that the JSON is this format, names ``model``, and lists exactly :func:`expected_tensors` (with this
    model's number of tags), and that the safetensors file holds exactly those tensors with those shapes.

    Raises
    ------
    InputError
        The cache holds no such model (the message says to run ``spectrotune fetch musicnn``), or a file is
        unreadable or does not match (named, with what is wrong).
    """
    arch = architecture_of(model)
    folder = musicnn_cache_dir(cache)
    mpath, wpath = meta_path(model, cache), weights_path(model, cache)
    if not mpath.is_file() or not wpath.is_file():
        missing = mpath if not mpath.is_file() else wpath
        raise InputError(f"pretrained model {model} is not in the cache {folder} ({missing.name} missing): run "
                         f"`spectrotune fetch musicnn`" + (" --dest " + str(folder) if cache is not None else "")
                         + f" (or set {schema.CACHE_ENV} to the cache that holds it)")
    try:
        meta = PretrainedMeta.from_dict(json.loads(mpath.read_text(encoding="utf-8")), origin=str(mpath))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{mpath}: unreadable model metadata: {e}") from e
    if meta.model != model or meta.architecture != arch:
        raise InputError(f"{mpath}: describes {meta.model} ({meta.architecture}), expected {model} ({arch})")
    expected = expected_tensors(arch, n_classes=meta.n_classes)
    if dict(meta.tensors) != expected:
        raise InputError(f"{mpath}: its tensor list does not match the {arch} network "
                         f"({tensor_difference(dict(meta.tensors), expected)})")
    try:
        from safetensors.numpy import load_file

        tensors = load_file(str(wpath))
    except Exception as e:  # safetensors raises its own types; the file is what matters
        raise InputError(f"{wpath}: unreadable safetensors file: {e}") from e
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if shapes != expected:
        raise InputError(f"{wpath}: tensors do not match the {arch} network ({tensor_difference(shapes, expected)})")
    bad = sorted(k for k, v in tensors.items() if v.dtype != np.float32)
    if bad:
        raise InputError(f"{wpath}: tensor {bad[0]!r} is {tensors[bad[0]].dtype}, expected float32")
    return meta, tensors


def tensor_difference(found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> str:
    """``missing 'a'; unexpected 'b'; 'c' has shape (1,) not (2,)``: the first difference of each kind."""
    parts = []
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(found) & set(expected) if tuple(found[k]) != tuple(expected[k]))
    if missing:
        parts.append(f"missing {missing[0]!r}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    if extra:
        parts.append(f"unexpected {extra[0]!r}" + (f" and {len(extra) - 1} more" if len(extra) > 1 else ""))
    if wrong:
        k = wrong[0]
        parts.append(f"{k!r} has shape {tuple(found[k])}, expected {tuple(expected[k])}")
    return "; ".join(parts)
