"""PyTorch ports of the pretrained musicnn taggers (Pons & Serra 2019), and loading their weights from the cache.

Two architectures, four pretrained models (:data:`spectrotune.models.pretrained.MODELS`): :class:`Musicnn`
(``MSD_musicnn``, ``MTT_musicnn``) here and :class:`~spectrotune.models.musicnn_vgg.MusicnnVgg` (``MSD_vgg``,
``MTT_vgg``) in :mod:`spectrotune.models.musicnn_vgg`. Both take a float32 batch of the musicnn front end's
log-mel patches ``[batch, 96, n_frames]`` (:mod:`spectrotune.audio.musicnn_frontend`; ``[batch, 1, 96, n_frames]``
is accepted too), the layout of every spectrotune model, and return logits ``[batch, n_classes]``;
:meth:`Musicnn.features` returns everything the original's ``extractor()`` exposes (:class:`MusicnnOutput`).

Faithful to the original TF1 graph (``models.py`` of the musicnn 0.1.0 wheel, the specification):
batch norm with epsilon 1e-3 (TF's default; PyTorch's 1e-5 moves MTT_musicnn's logits by 0.27) and momentum
0.01 (TF's 0.99); conv -> ReLU -> batch norm inside every block; the exact paddings; the back end's pooled
vector interleaved ``[max_0, mean_0, max_1, mean_1, ...]``; dropout where the original has it (inactive in eval).

musicnn: an input batch norm; the timbral front end (time-padded by 3, convs 7x38 and 7x67 over (time, mel),
204 filters each) and the temporal one (TF 'same' convs 128x1, 64x1, 32x1 along time, 51 filters each), every
branch max-pooled over the remaining frequency bins (561 features a frame); the dense mid-end (three convs of
7 frames x all features, 64 filters, the second and third with residuals); the back end (max and mean over
time of the 753 frame features, batch norm, dense 200 + ReLU, batch norm = ``penultimate``, dense = logits).

Weights: :func:`load_pretrained` builds the network of a cached model (``spectrotune fetch musicnn``) and
loads it strictly (:func:`load_tf_weights`: every tensor of the file used, every parameter and batch-norm
statistic set, shapes checked; anything else raises; the original silently fell back to random weights) and
returns it in eval mode. For transfer learning, :attr:`Musicnn.head` is the output layer and
:meth:`Musicnn.replace_head` puts a fresh classifier in its place; :meth:`Musicnn.backbone_parameters` are
the rest. No ``ray``.

Example
-------
>>> net, meta = load_pretrained("MSD_musicnn")                # doctest: +SKIP
>>> out = net.features(torch.from_numpy(patches))             # patches [P, 96, 187]; doctest: +SKIP
>>> out.taggram.shape, out.max_pool.shape, out.penultimate.shape    # doctest: +SKIP
(torch.Size([P, 50]), torch.Size([P, 753]), torch.Size([P, 200]))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spectrotune.errors import InputError
from spectrotune.models import pretrained

__all__ = ["BN_EPSILON", "BN_MOMENTUM", "Musicnn", "MusicnnOutput", "build_network", "load_pretrained",
           "load_tf_weights", "tf_batch_norm"]

BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
BN_MOMENTUM = 0.01  # PyTorch's convention for TF's momentum 0.99
N_MELS = 96


def tf_batch_norm(n: int, dims: int = 1) -> nn.Module:
    """A batch norm with TF1's defaults (epsilon 1e-3, momentum 0.99) over ``n`` channels (``dims`` 1 or 2)."""
    cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return cls(n, eps=BN_EPSILON, momentum=BN_MOMENTUM)


@dataclass
class MusicnnOutput:
    """What one forward pass exposes (tensors; ``B`` patches, ``T`` frames). Layouts follow the original's.

    ``logits`` [B, n_classes]; ``taggram`` = sigmoid(logits); ``features``: for musicnn ``timbral`` [B, T, 408],
    ``temporal`` [B, T, 153], ``cnn1``/``cnn2``/``cnn3`` [B, T, 64], ``max_pool``/``mean_pool`` [B, 753],
    ``penultimate`` [B, 200]; for vgg ``pool1``..``pool5`` [B, time, mel, 128] (NHWC).
    """

    logits: torch.Tensor
    taggram: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getattr__(self, name: str) -> torch.Tensor:
        features = self.__dict__.get("features", {})
        if name in features:
            return features[name]
        raise AttributeError(name)


def as_patches(x: torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """``x`` as [B, 1, T, n_mels] (NCHW with H = time, W = mel) from [B, n_mels, T] or [B, 1, n_mels, T]."""
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 3 or x.shape[1] != n_mels:
        raise InputError(f"expected log-mel patches [batch, {n_mels}, n_frames] (or [batch, 1, {n_mels}, "
                         f"n_frames]), got shape {tuple(x.shape)}")
    return x.transpose(1, 2).unsqueeze(1)


def _same_pad(k: int) -> tuple[int, int]:
    """TF 'same' padding for stride 1: the extra sample goes after."""
    return (k - 1) // 2, k // 2


class _FrontBranch(nn.Module):
    """conv (1 -> filters, kernel (kt, kf) over (time, mel)) -> ReLU -> batch norm -> max over mel."""

    def __init__(self, filters: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, filters, kernel)
        self.bn = tf_batch_norm(filters, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 1, T', F] -> [B, filters, T]
        return self.bn(F.relu(self.conv(x))).amax(dim=3)


class _MidLayer(nn.Module):
    """zero-pad time by 3 -> conv 7 x all features (as a 1-D conv over time) -> ReLU -> batch norm."""

    def __init__(self, in_features: int, filters: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_features, filters, 7)
        self.bn = tf_batch_norm(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> [B, filters, T]
        return self.bn(F.relu(self.conv(F.pad(x, (3, 3)))))


class PretrainedNet(nn.Module):
    """What the musicnn and vgg ports share: ``_forward(x) -> (logits, features)`` is theirs; logits, the taggram,
    the features, and swapping the output layer (:attr:`head`) for transfer learning are the same for both."""

    head: nn.Linear  # and each subclass defines _forward(x) -> (logits, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [batch, n_classes] of log-mel patches [batch, 96, T] (T = 187 for vgg)."""
        return self._forward(x)[0]

    def features(self, x: torch.Tensor) -> MusicnnOutput:
        """Logits, taggram (sigmoid) and every intermediate feature of :class:`MusicnnOutput`."""
        logits, features = self._forward(x)
        return MusicnnOutput(logits=logits, taggram=torch.sigmoid(logits), features=features)

    def replace_head(self, n_classes: int) -> nn.Linear:
        """Put a freshly initialised output layer for ``n_classes`` in place of :attr:`head`; returns it."""
        self.head = nn.Linear(self.head.in_features, int(n_classes))
        return self.head

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter except the head's (for a lower learning rate or freezing)."""
        head = {id(p) for p in self.head.parameters()}
        return (p for p in self.parameters() if id(p) not in head)


class Musicnn(PretrainedNet):
    """The musicnn tagger (``MSD_musicnn`` / ``MTT_musicnn``: 64 mid-end filters, 200 back-end units, 50 tags).

    Input [batch, 96, T] log-mel patches (any T >= 1; the pretrained models saw T = 187), output logits
    [batch, n_classes]. :meth:`features` gives :class:`MusicnnOutput`.
    """

    architecture = "musicnn"

    def __init__(self, n_classes: int = 50, *, midend_filters: int = 64, backend_units: int = 200) -> None:
        super().__init__()
        self.bn_input = tf_batch_norm(1, 2)
        self.timbral = nn.ModuleList([_FrontBranch(204, (7, 38)), _FrontBranch(204, (7, 67))])
        self.temporal = nn.ModuleList([_FrontBranch(51, (k, 1)) for k in (128, 64, 32)])
        front = 2 * 204 + 3 * 51  # 561
        self.midend = nn.ModuleList([_MidLayer(front, midend_filters), _MidLayer(midend_filters, midend_filters),
                                     _MidLayer(midend_filters, midend_filters)])
        self.pooled = front + 3 * midend_filters  # 753
        self.bn_pool = tf_batch_norm(2 * self.pooled)
        self.dropout_pool = nn.Dropout(0.5)
        self.dense = nn.Linear(2 * self.pooled, backend_units)
        self.bn_dense = tf_batch_norm(backend_units)
        self.dropout_dense = nn.Dropout(0.5)
        self.head = nn.Linear(backend_units, n_classes)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.bn_input(as_patches(x))  # [B, 1, T, 96]
        padded = F.pad(x, (0, 0, 3, 3))  # time only: the timbral convs are then 'valid'
        timbral = [branch(padded) for branch in self.timbral]
        temporal = [branch(F.pad(x, (0, 0, *_same_pad(branch.conv.kernel_size[0])))) for branch in self.temporal]
        front = torch.cat(timbral + temporal, dim=1)  # [B, 561, T]
        cnn1 = self.midend[0](front)
        cnn2 = self.midend[1](cnn1) + cnn1
        cnn3 = self.midend[2](cnn2) + cnn2
        frames = torch.cat([front, cnn1, cnn2, cnn3], dim=1)  # [B, 753, T]
        max_pool, mean_pool = frames.amax(dim=2), frames.mean(dim=2)
        # TF flattens concat([max, mean], axis=2) of [B, 753, 1] tensors: the two interleave.
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # flatten(1): ONNX keeps the batch dynamic
        hidden = self.dropout_pool(self.bn_pool(pooled))
        penultimate = self.bn_dense(F.relu(self.dense(hidden)))
        logits = self.head(self.dropout_dense(penultimate))
        features = {
            "timbral": torch.cat(timbral, dim=1).transpose(1, 2),
            "temporal": torch.cat(temporal, dim=1).transpose(1, 2),
            "cnn1": cnn1.transpose(1, 2), "cnn2": cnn2.transpose(1, 2), "cnn3": cnn3.transpose(1, 2),
            "max_pool": max_pool, "mean_pool": mean_pool, "penultimate": penultimate,
        }
        return logits, features

    @staticmethod
    def tf_names(n_classes: int = 50) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
        """TF variable name -> (state-dict key, TF -> torch layout) for every tensor of the checkpoint."""
        names: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = _bn_names("batch_normalization", "bn_input")
        modules = [f"timbral.{i}" for i in range(2)] + [f"temporal.{i}" for i in range(3)]
        modules += [f"midend.{i}" for i in range(3)]
        for i, module in enumerate(modules):
            tf = "conv2d" + (f"_{i}" if i else "")
            conv = _conv1d if module.startswith("midend") else _conv2d
            names[f"{tf}/kernel"] = (f"{module}.conv.weight", conv)
            names[f"{tf}/bias"] = (f"{module}.conv.bias", _same)
            names |= _bn_names(f"batch_normalization_{i + 1}", f"{module}.bn")
        names |= _bn_names("batch_normalization_9", "bn_pool") | _bn_names("batch_normalization_10", "bn_dense")
        names |= _dense_names("dense", "dense") | _dense_names("dense_1", "head")
        return names


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _conv2d(kernel: np.ndarray) -> np.ndarray:
    """TF HWIO [kh, kw, in, out] -> torch [out, in, kh, kw]."""
    return kernel.transpose(3, 2, 0, 1)


def _conv1d(kernel: np.ndarray) -> np.ndarray:
    """A TF conv [7, C, 1, out] spanning all C features -> torch Conv1d [out, C, 7]."""
    return kernel[:, :, 0, :].transpose(2, 1, 0)


def _dense(kernel: np.ndarray) -> np.ndarray:
    """TF [in, out] -> torch Linear [out, in]."""
    return kernel.T


def _bn_names(tf: str, module: str) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    return {f"{tf}/gamma": (f"{module}.weight", _same), f"{tf}/beta": (f"{module}.bias", _same),
            f"{tf}/moving_mean": (f"{module}.running_mean", _same),
            f"{tf}/moving_variance": (f"{module}.running_var", _same)}


def _dense_names(tf: str, module: str) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    return {f"{tf}/kernel": (f"{module}.weight", _dense), f"{tf}/bias": (f"{module}.bias", _same)}


def load_tf_weights(net: nn.Module, tensors: Mapping[str, np.ndarray], *, source: str) -> None:
    """Copy TF-named weights into ``net`` strictly (``net.tf_names`` maps each name to a state-dict key).

    Every tensor must map to a parameter or buffer of the same shape (after the layout change), and every
    parameter and batch-norm statistic of ``net`` must be set (``num_batches_tracked`` counters aside). Raises
    InputError naming ``source`` and the first tensor that does not fit.
    """
    head = net.head.out_features  # type: ignore[union-attr]
    mapping = net.tf_names(head)  # type: ignore[operator]
    state = net.state_dict()
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    expected = {k: tuple(state[key].shape) for k, (key, _) in mapping.items()}
    missing, extra = sorted(set(mapping) - set(tensors)), sorted(set(tensors) - set(mapping))
    if missing or extra:
        raise InputError(f"{source}: weights do not fit the {net.architecture} network "  # type: ignore[union-attr]
                         f"({'missing ' + repr(missing[0]) if missing else 'unexpected ' + repr(extra[0])})")
    new = {}
    for name, (key, to_torch) in mapping.items():
        value = np.ascontiguousarray(to_torch(np.asarray(tensors[name], dtype=np.float32)))
        if tuple(value.shape) != expected[name]:
            raise InputError(f"{source}: tensor {name!r} has shape {shapes[name]}, which does not fit {key} "
                             f"{expected[name]}")
        new[key] = torch.from_numpy(value.copy())
    unset = sorted(k for k in state if k not in new and not k.endswith("num_batches_tracked"))
    if unset:
        raise InputError(f"{source}: no weights for {unset[0]}")
    net.load_state_dict(new, strict=False)


def build_network(model: str, *, n_classes: int | None = None) -> nn.Module:
    """The randomly initialised network of a pretrained model's architecture (50 tags unless ``n_classes``)."""
    arch = pretrained.architecture_of(model)
    n = 50 if n_classes is None else int(n_classes)
    if arch == "musicnn":
        return Musicnn(n)
    from spectrotune.models.musicnn_vgg import MusicnnVgg

    return MusicnnVgg(n)


def load_pretrained(model: str, *, cache: str | os.PathLike[str] | None = None
                    ) -> tuple[nn.Module, pretrained.PretrainedMeta]:
    """The network of ``model`` with its cached weights, in eval mode, and its metadata (tags, front end).

    Raises InputError when the model is not in the cache (run ``spectrotune fetch musicnn``) or its files do not
    fit the network (see :func:`spectrotune.models.pretrained.read_pretrained` and :func:`load_tf_weights`).
    """
    meta, tensors = pretrained.read_pretrained(model, cache)
    net = build_network(model, n_classes=meta.n_classes)
    load_tf_weights(net, tensors, source=str(pretrained.weights_path(model, cache)))
    return net.eval(), meta
