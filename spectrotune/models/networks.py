"""Genre classifiers over log-mel spectrograms: the networks, their hyperparameters, and ONNX export.

Every model takes a float32 batch of log-mel spectrograms ``[batch, n_mels, n_frames]`` (``[batch, 1, n_mels,
n_frames]`` is accepted too) and returns logits ``[batch, n_classes]``. Models pool over time (and frequency) at
the end, so a model trained on 3-s segments (130 frames at 22050 Hz, hop 512) also runs on longer or shorter
inputs down to :data:`MIN_N_FRAMES` frames.

Models (pick one by name with :func:`build_model`):

``seed_cnn``
    The student prototype's network adapted to one-channel log-mel input, kept as the reference point: three
    conv blocks with 64, 32, 32 filters (3x3 conv, batch norm, ReLU, 2x2 max-pool), adaptive average pooling to
    4x4, dense 64-32-16 with ReLU and dropout, linear head.
``cnn`` (default)
    ``depth`` Conv-BN-ReLU-pool blocks, channels starting at ``width`` and doubling per block up to
    :data:`MAX_CHANNELS`, global average + max pooling over (frequency, time), dropout, linear head.
``crnn``
    A conv front end that pools frequency by 4 and time by 2 (time only in the first two blocks), a
    bidirectional GRU over time, mean over time, dropout, linear head.

Hyperparameters are typed frozen dataclasses (:class:`SeedCnnParams`, :class:`CnnParams`,
:class:`CrnnParams`). :func:`model_params` validates a plain mapping (from YAML, ``--set`` or Ray Tune) and
returns the fully resolved dict that a model bundle stores, so ``build_model(name, n_classes=..., n_mels=...,
params=model_params(name, params))`` rebuilds the exact same architecture.

Input normalisation: the trainer computes per-mel-bin mean and standard deviation on the train split and
passes them as ``norm_mean``/``norm_std``; :func:`build_model` then returns a :class:`NormalizedClassifier`
whose state dict holds those statistics as buffers (``normalize.mean``, ``normalize.std``). To reload a bundle,
build with placeholder statistics of the right shape (e.g. ``torch.zeros(n_mels)``, ``torch.ones(n_mels)``) and
``load_state_dict`` restores the real ones.

Example
-------
>>> model = build_model("cnn", n_classes=10, n_mels=128, params={"width": 16})
>>> model(torch.randn(8, 128, 130)).shape
torch.Size([8, 10])
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
import os
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spectrotune.errors import ConfigError, InputError, SpectrotuneError

__all__ = [
    "DEFAULT_MODEL",
    "MAX_CHANNELS",
    "MIN_N_FRAMES",
    "MIN_N_MELS",
    "MODEL_NAMES",
    "AdaptiveAvgPool2d",
    "Cnn",
    "CnnParams",
    "Crnn",
    "CrnnParams",
    "Normalize",
    "NormalizedClassifier",
    "SeedCnn",
    "SeedCnnParams",
    "build_model",
    "count_parameters",
    "export_onnx",
    "model_params",
]

MODEL_NAMES: tuple[str, ...] = ("seed_cnn", "cnn", "crnn")
DEFAULT_MODEL = "cnn"
#: Channel cap of ``cnn`` / ``crnn`` blocks: doubling past 256 adds parameters faster than accuracy on GTZAN-sized data.
MAX_CHANNELS = 256
#: Smallest input every model accepts (frames along time, bins along frequency).
MIN_N_FRAMES = 16
MIN_N_MELS = 16


# --------------------------------------------------------------------------------------------------------------
# Hyperparameters


@dataclasses.dataclass(frozen=True)
class SeedCnnParams:
    """Hyperparameters of ``seed_cnn``.

    Parameters
    ----------
    dropout : float
        Dropout probability after each of the dense 64-32-16 layers, in [0, 1). The prototype used 0.5.
    """

    dropout: float = 0.5


@dataclasses.dataclass(frozen=True)
class CnnParams:
    """Hyperparameters of ``cnn``.

    Parameters
    ----------
    width : int
        Channels of the first conv block (1..512); each next block doubles it up to :data:`MAX_CHANNELS`.
    depth : int
        Number of Conv-BN-ReLU-MaxPool(2x2) blocks (1..8).
    dropout : float
        Dropout probability before the linear head, in [0, 1).
    """

    width: int = 32
    depth: int = 4
    dropout: float = 0.3


@dataclasses.dataclass(frozen=True)
class CrnnParams:
    """Hyperparameters of ``crnn``.

    Parameters
    ----------
    width : int
        Channels of the first conv block (1..512); doubled per block up to :data:`MAX_CHANNELS`.
    depth : int
        Number of conv blocks (1..6). Each pools frequency by 4; only the first two pool time by 2.
    hidden : int
        GRU hidden size per direction (1..1024); the GRU output has ``2 * hidden`` features.
    layers : int
        Stacked GRU layers (1..4).
    dropout : float
        Dropout probability before the linear head (and between GRU layers when ``layers > 1``), in [0, 1).
    """

    width: int = 32
    depth: int = 3
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.3


_PARAM_CLASSES: dict[str, type] = {"seed_cnn": SeedCnnParams, "cnn": CnnParams, "crnn": CrnnParams}

# (kind, low, high, high_inclusive) per parameter name; the same name means the same rule in every model.
_PARAM_RULES: dict[str, tuple[str, float, float, bool]] = {
    "width": ("int", 1, 512, True),
    "depth": ("int", 1, 8, True),
    "hidden": ("int", 1, 1024, True),
    "layers": ("int", 1, 4, True),
    "dropout": ("float", 0.0, 1.0, False),
}
# The CRNN collapses frequency by 4 per block; past 6 blocks even 128 mels are long gone.
_DEPTH_MAX = {"crnn": 6}


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}")


def _check_value(name: str, key: str, value: Any) -> int | float:
    kind, low, high, high_inclusive = _PARAM_RULES[key]
    if key == "depth":
        high = _DEPTH_MAX.get(name, high)
    closing = "]" if high_inclusive else ")"
    if kind == "int":
        rule = f"an integer in [{low}, {high}]"
        # bool is an int subclass; `depth: true` in YAML is a typo, not 1.
        ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
        if ok:
            value = int(value)
    else:
        rule = f"a number in [{low}, {high}{closing}"
        ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
        if ok:
            value = float(value)
            ok = math.isfinite(value)
    if ok:
        ok = low <= value and (value <= high if high_inclusive else value < high)
    if not ok:
        raise ConfigError(f"bad value for {name} parameter {key!r}: {value!r} (must be {rule})")
    return value


def model_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, int | float]:
    """Validate hyperparameters of model ``name`` and return them with every default filled in.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    params : Mapping[str, Any] or None
        Overrides of the defaults in the model's dataclass (:class:`CnnParams` etc.); None means all defaults.

    Returns
    -------
    dict
        ``{field: value}`` for every field of the model's dataclass, values as plain ``int``/``float`` (JSON-safe).
        Store it in the model bundle to rebuild the model exactly.

    Raises
    ------
    ConfigError
        If the name is unknown, a key is not a parameter of that model, or a value is out of range; the message
        names the bad key/value and lists the valid ones.
    """
    _check_name(name)
    cls = _PARAM_CLASSES[name]
    fields = [f.name for f in dataclasses.fields(cls)]
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ConfigError(f"parameters of model {name!r} must be a mapping, got {type(params).__name__}: {params!r}")
    unknown = [k for k in params if k not in fields]
    if unknown:
        raise ConfigError(f"unknown parameter {unknown[0]!r} for model {name!r}; valid parameters: {', '.join(fields)}")
    resolved = dataclasses.asdict(cls())
    for key, value in params.items():
        resolved[key] = _check_value(name, key, value)
    return resolved


# --------------------------------------------------------------------------------------------------------------
# Building blocks


def _as_image(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` as ``[batch, 1, n_mels, n_frames]`` for the conv layers."""
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4 and x.shape[1] == 1:
        return x
    raise InputError(
        f"expected a log-mel batch [batch, n_mels, n_frames] or [batch, 1, n_mels, n_frames], got {tuple(x.shape)}"
    )


def _conv_block(c_in: int, c_out: int, pool: tuple[int, int]) -> nn.Sequential:
    # ceil_mode keeps a size-1 axis at size 1 instead of collapsing it to 0, so deep stacks accept short inputs.
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),  # bias is redundant before batch norm
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    if pool != (1, 1):
        layers.append(nn.MaxPool2d(pool, ceil_mode=True))
    return nn.Sequential(*layers)


def _channels(width: int, depth: int) -> list[int]:
    return [min(width * 2**i, MAX_CHANNELS) for i in range(depth)]


class Normalize(nn.Module):
    """Standardise each mel bin with statistics from the train split: ``(x - mean[m]) / std[m]``.

    Parameters
    ----------
    mean : Tensor [n_mels]
        Per-mel-bin mean of the log-mel values (dB) over the train split.
    std : Tensor [n_mels]
        Per-mel-bin standard deviation (dB), all > 0.

    Both are registered as float32 buffers, so they travel with ``state_dict`` and ``.to(device)``.
    Input ``[batch, n_mels, n_frames]`` or ``[batch, 1, n_mels, n_frames]``; output has the same shape.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).detach().clone()
        std = torch.as_tensor(std, dtype=torch.float32).detach().clone()
        if mean.dim() != 1 or std.shape != mean.shape:
            raise ConfigError(
                f"norm_mean and norm_std must both have shape [n_mels], got {tuple(mean.shape)} and {tuple(std.shape)}"
            )
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ConfigError("norm_mean must be finite and norm_std finite and > 0 in every mel bin")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Column vectors broadcast over [B, M, T] and [B, 1, M, T] alike.
        return (x - self.mean[:, None]) / self.std[:, None]

    def extra_repr(self) -> str:
        return f"n_mels={self.mean.numel()}"


def _pool_matrix(n_in: int, n_out: int, *, like: torch.Tensor) -> torch.Tensor:
    """``[n_out, n_in]`` averaging weights with the same bins as :func:`torch.nn.functional.adaptive_avg_pool2d`."""
    weights = torch.zeros(n_out, n_in, dtype=like.dtype, device=like.device)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        weights[i, start:end] = 1.0 / (end - start)
    return weights


class AdaptiveAvgPool2d(nn.Module):
    """:class:`torch.nn.AdaptiveAvgPool2d` that also exports to ONNX when the size is not a multiple of the output.

    The ONNX exporter only handles adaptive pooling whose input size is a multiple of the output size (130 frames
    pool to 17 by the third block, not a multiple of 4); during export the same bins are computed as two small
    matrix products instead. Input ``[batch, channels, H, W]``, output ``[batch, channels, *output_size]``.
    """

    def __init__(self, output_size: tuple[int, int]) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.onnx.is_in_onnx_export():
            return nn.functional.adaptive_avg_pool2d(x, self.output_size)
        # Sizes are fixed at export time (only the batch axis is dynamic), so the weights become constants.
        rows = _pool_matrix(int(x.shape[2]), self.output_size[0], like=x)
        cols = _pool_matrix(int(x.shape[3]), self.output_size[1], like=x)
        return torch.matmul(torch.matmul(rows, x), cols.t())

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class NormalizedClassifier(nn.Sequential):
    """A classifier with :class:`Normalize` in front; state dict keys ``normalize.*`` and ``net.*``."""

    def __init__(self, normalize: Normalize, net: nn.Module) -> None:
        super().__init__(OrderedDict([("normalize", normalize), ("net", net)]))
        self.n_classes = getattr(net, "n_classes", None)
        self.n_mels = getattr(net, "n_mels", None)


# --------------------------------------------------------------------------------------------------------------
# Models


class SeedCnn(nn.Module):
    """The prototype's CNN on one-channel log-mel input (see the module docstring)."""

    def __init__(self, *, n_classes: int, n_mels: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        self.n_classes, self.n_mels = n_classes, n_mels
        self.features = nn.Sequential(
            _conv_block(1, 64, (2, 2)), _conv_block(64, 32, (2, 2)), _conv_block(32, 32, (2, 2))
        )
        # The prototype flattened a fixed image size; adaptive pooling keeps its dense sizes for any input.
        self.pool = AdaptiveAvgPool2d((4, 4))
        dense: list[nn.Module] = []
        sizes = [32 * 4 * 4, 64, 32, 16]
        for a, b in itertools.pairwise(sizes):
            dense += [nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.dense = nn.Sequential(*dense)
        self.head = nn.Linear(16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.features(_as_image(x)))
        return self.head(self.dense(h.flatten(1)))


class Cnn(nn.Module):
    """Conv-BN-ReLU-pool stack with global average + max pooling (see the module docstring)."""

    def __init__(
        self, *, n_classes: int, n_mels: int = 128, width: int = 32, depth: int = 4, dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.n_classes, self.n_mels = n_classes, n_mels
        chans = _channels(width, depth)
        self.features = nn.Sequential(
            *(_conv_block(a, b, (2, 2)) for a, b in zip([1, *chans[:-1]], chans, strict=True))
        )
        self.dropout = nn.Dropout(dropout)
        # Average pooling sees how much of a pattern there is, max pooling whether it occurs at all.
        self.head = nn.Linear(2 * chans[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(_as_image(x))
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.head(self.dropout(pooled))


class Crnn(nn.Module):
    """Conv front end + bidirectional GRU over time (see the module docstring)."""

    def __init__(
        self,
        *,
        n_classes: int,
        n_mels: int = 128,
        width: int = 32,
        depth: int = 3,
        hidden: int = 64,
        layers: int = 1,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.n_classes, self.n_mels = n_classes, n_mels
        chans = _channels(width, depth)
        # Frequency is pooled hard (it becomes GRU features); time is pooled gently (the GRU needs the sequence).
        pools = [(4, 2) if i < 2 else (4, 1) for i in range(depth)]
        self.features = nn.Sequential(
            *(_conv_block(a, b, p) for a, b, p in zip([1, *chans[:-1]], chans, pools, strict=True))
        )
        n_freq = n_mels
        for _ in range(depth):
            n_freq = math.ceil(n_freq / 4)
        self.n_freq = n_freq
        self.gru = nn.GRU(
            input_size=chans[-1] * n_freq,
            hidden_size=hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,  # torch warns about inter-layer dropout with one layer
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_image(x)
        # Skipped while tracing for export: there the shape is a constant and the comparison would only warn.
        if not torch.jit.is_tracing() and x.shape[2] != self.n_mels:
            raise InputError(f"crnn was built for n_mels={self.n_mels}, got input with {x.shape[2]} mel bins")
        h = self.features(x)  # [B, C, F', T']
        h = h.permute(0, 3, 1, 2).flatten(2)  # [B, T', C * F']: one feature vector per time step
        out, _ = self.gru(h)  # [B, T', 2 * hidden]
        return self.head(self.dropout(out.mean(dim=1)))


_MODEL_CLASSES: dict[str, type[nn.Module]] = {"seed_cnn": SeedCnn, "cnn": Cnn, "crnn": Crnn}


def build_model(
    name: str,
    *,
    n_classes: int,
    n_mels: int = 128,
    params: Mapping[str, Any] | None = None,
    norm_mean: torch.Tensor | np.ndarray | None = None,
    norm_std: torch.Tensor | np.ndarray | None = None,
) -> nn.Module:
    """Build classifier ``name`` for log-mel input.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES` (``"seed_cnn"``, ``"cnn"``, ``"crnn"``).
    n_classes : int
        Number of genres (>= 2); the output is logits ``[batch, n_classes]``.
    n_mels : int
        Mel bins of the input (>= :data:`MIN_N_MELS`). Only ``crnn`` depends on it (its GRU input size), but
        every model records it as ``model.n_mels``.
    params : Mapping[str, Any] or None
        Hyperparameter overrides, validated by :func:`model_params`.
    norm_mean, norm_std : Tensor or ndarray [n_mels], optional
        Per-mel-bin statistics of the train split (dB). Give both or neither; with them the result is a
        :class:`NormalizedClassifier` that standardises its input first.

    Returns
    -------
    torch.nn.Module
        In training mode, float32, on the CPU. Input ``[batch, n_mels, n_frames]`` or
        ``[batch, 1, n_mels, n_frames]`` float32 with ``n_frames >= MIN_N_FRAMES``.

    Raises
    ------
    ConfigError
        Unknown name, unknown parameter, bad value, bad ``n_classes``/``n_mels``, or normalisation
        statistics of the wrong shape.
    """
    resolved = model_params(name, params)
    for key, value, low in (("n_classes", n_classes, 2), ("n_mels", n_mels, MIN_N_MELS)):
        if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)) or value < low:
            raise ConfigError(f"bad value for {key}: {value!r} (must be an integer >= {low})")
    net = _MODEL_CLASSES[name](n_classes=int(n_classes), n_mels=int(n_mels), **resolved)
    if (norm_mean is None) != (norm_std is None):
        raise ConfigError("give both norm_mean and norm_std, or neither")
    if norm_mean is None:
        return net
    normalize = Normalize(norm_mean, norm_std)
    if normalize.mean.numel() != n_mels:
        raise ConfigError(f"norm_mean has {normalize.mean.numel()} mel bins but n_mels={n_mels}")
    return NormalizedClassifier(normalize, net)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements in ``model`` (buffers such as batch-norm statistics not included)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    n_mels: int,
    n_frames: int,
    opset: int = 17,
) -> Path:
    """Export ``model`` to an ONNX file with a dynamic batch axis.

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`build_model` (normalised or not). It is exported in eval mode on the CPU; its
        training flag is restored afterwards.
    path : str or PathLike
        Output ``.onnx`` file. Written beside the target and renamed on success, so a failed export leaves
        nothing behind.
    n_mels, n_frames : int
        Shape of the example input ``[batch, n_mels, n_frames]``. The batch axis is dynamic; the time axis is
        fixed to ``n_frames`` (segments are a fixed length).
    opset : int
        ONNX opset version.

    Returns
    -------
    pathlib.Path
        The written file. Input name ``"mel"`` (float32 ``[batch, n_mels, n_frames]``), output ``"logits"``.

    Raises
    ------
    SpectrotuneError
        If the optional ``onnx`` package is missing (``pip install spectrotune[onnx]``) or the export fails.
    """
    try:
        import onnx  # noqa: F401  (the exporter needs it; fail early with an actionable message)
    except ImportError as e:
        raise SpectrotuneError("ONNX export needs the onnx package: pip install spectrotune[onnx]") from e

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    was_training = model.training
    device = next(model.parameters()).device
    model.eval().cpu()
    try:
        example = torch.zeros(2, n_mels, n_frames, dtype=torch.float32)
        # The TorchScript exporter needs only `onnx`; the dynamo one would also need onnxscript.
        with warnings.catch_warnings():
            # Shapes other than batch are constants of the export by design; the GRU warning is about a zero h0
            # of fixed batch size, but nn.GRU sizes h0 from the input, which the trace keeps dynamic.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                input_names=["mel"],
                output_names=["logits"],
                dynamic_axes={"mel": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
        os.replace(tmp, path)
    except Exception as e:
        raise SpectrotuneError(f"ONNX export to {str(path)!r} failed: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
        model.to(device).train(was_training)
    return path
