"""Genre classifiers over log-mel spectrograms: the ``torch.nn`` modules and :func:`build_model`.

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
``musicnn``, ``vgg``
    The pretrained musicnn package's networks (:class:`~spectrotune.models.musicnn.Musicnn`,
    :class:`~spectrotune.models.musicnn_vgg.MusicnnVgg`) with a head for ``n_classes``: input 96 mel bands of the
    musicnn front end (``vgg``: exactly 187 frames). :func:`build_model` initialises them randomly (a bundle's
    weights then load over them, so no cache is needed); training starts them from ``model.pretrained``
    (:mod:`spectrotune.training.transfer`).

The names and hyperparameters (their dataclasses, ranges and :func:`~spectrotune.models.params.model_params`) live
in :mod:`spectrotune.models.params`; ONNX export in :mod:`spectrotune.models.export`.

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

import itertools
import math
import numbers
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from spectrotune.errors import ConfigError, InputError
from spectrotune.models.musicnn import N_MELS as MUSICNN_N_MELS
from spectrotune.models.musicnn import Musicnn
from spectrotune.models.musicnn_vgg import MusicnnVgg
from spectrotune.models.params import MUSICNN_MODELS, model_params

__all__ = [
    "MAX_CHANNELS",
    "MIN_N_FRAMES",
    "MIN_N_MELS",
    "MODEL_CLASSES",
    "AdaptiveAvgPool2d",
    "Cnn",
    "Crnn",
    "Normalize",
    "NormalizedClassifier",
    "SeedCnn",
    "build_model",
    "count_parameters",
]

#: Channel cap of ``cnn`` / ``crnn`` blocks: doubling past 256 adds parameters faster than accuracy on GTZAN-sized data.
MAX_CHANNELS = 256
#: Smallest input every model accepts (frames along time, bins along frequency).
MIN_N_FRAMES = 16
MIN_N_MELS = 16


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


#: The network class of each model name (the keys are :data:`~spectrotune.models.params.MODEL_NAMES`).
MODEL_CLASSES: dict[str, type[nn.Module]] = {"seed_cnn": SeedCnn, "cnn": Cnn, "crnn": Crnn, "musicnn": Musicnn,
                                             "vgg": MusicnnVgg}


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
        One of :data:`~spectrotune.models.params.MODEL_NAMES` (``"seed_cnn"``, ``"cnn"``, ``"crnn"``, ``"musicnn"``,
        ``"vgg"``).
    n_classes : int
        Number of genres (>= 2); the output is logits ``[batch, n_classes]``.
    n_mels : int
        Mel bins of the input (>= :data:`MIN_N_MELS`; 96 for ``musicnn`` / ``vgg``). Only ``crnn`` depends on it (its
        GRU input size), but every model records it as ``model.n_mels``.
    params : Mapping[str, Any] or None
        Hyperparameter overrides, validated by :func:`~spectrotune.models.params.model_params`.
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
    if name in MUSICNN_MODELS:
        if int(n_mels) != MUSICNN_N_MELS:
            raise ConfigError(f"model {name} reads {MUSICNN_N_MELS} mel bands (the musicnn front end), got "
                              f"n_mels={n_mels}")
        net = MODEL_CLASSES[name](int(n_classes))  # `pretrained` is where training starts, not the architecture
        net.n_classes, net.n_mels = int(n_classes), int(n_mels)
    else:
        net = MODEL_CLASSES[name](n_classes=int(n_classes), n_mels=int(n_mels), **resolved)
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
