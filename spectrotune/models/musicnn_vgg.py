"""The VGG-like baseline of the musicnn package (``MSD_vgg``, ``MTT_vgg``), ported to PyTorch.

The original's ``models.vgg`` (128 filters): an input batch norm, then five blocks of 3x3 'same' conv -> ReLU ->
batch norm -> max-pool, over the (time, mel) image; the pools are [4, 1] stride [2, 2], then [2, 2] stride 2
three times, then [4, 4] stride 4 ('valid'), with dropout 0.25 after the first four; flatten (NHWC row-major:
time, mel, channel) -> dropout 0.5 -> dense. For 187 x 96 patches the pools are 92x48, 46x24, 23x12, 11x6 and
2x1 (x 128 channels), so the flattened vector has 256 values and the dense layer fixes the input length:
:class:`MusicnnVgg` refuses patches whose pool5 is not 2 x 1. Input [batch, 96, n_frames] like
:class:`~spectrotune.models.musicnn.Musicnn`, same weight loading, head replacement and batch-norm conventions
(epsilon 1e-3, momentum 0.01). No ``ray``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spectrotune.errors import InputError
from spectrotune.models.musicnn import PretrainedNet, _bn_names, _conv2d, _dense_names, _same, as_patches, tf_batch_norm

__all__ = ["MusicnnVgg"]

_POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))


class MusicnnVgg(PretrainedNet):
    """The musicnn package's VGG tagger: input [batch, 96, 187] log-mel patches, output logits [batch, n_classes].

    :meth:`features` adds the five pool outputs ``pool1``..``pool5`` [batch, time, mel, 128] (NHWC, as the
    original's ``extractor()``); there is no penultimate layer in this network.
    """

    architecture = "vgg"

    def __init__(self, n_classes: int = 50, *, filters: int = 128) -> None:
        super().__init__()
        self.bn_input = tf_batch_norm(1, 2)
        self.convs = nn.ModuleList([nn.Conv2d(1 if i == 0 else filters, filters, 3, padding=1) for i in range(5)])
        self.bns = nn.ModuleList([tf_batch_norm(filters, 2) for _ in range(5)])
        self.pools = nn.ModuleList([nn.MaxPool2d(k, s) for k, s in _POOLS])
        self.dropouts = nn.ModuleList([nn.Dropout(0.25) for _ in range(4)] + [nn.Dropout(0.5)])
        self.flat = 2 * 1 * filters
        self.head = nn.Linear(self.flat, n_classes)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h = self.bn_input(as_patches(x))  # [B, 1, T, 96]
        features = {}
        for i in range(5):
            if i:
                h = self.dropouts[i - 1](h)
            h = self.pools[i](self.bns[i](F.relu(self.convs[i](h))))
            features[f"pool{i + 1}"] = h.permute(0, 2, 3, 1)  # NHWC
        flat = features["pool5"].flatten(1)  # not reshape(len(h), -1): ONNX export would fix the batch size
        if flat.shape[1] != self.flat:
            raise InputError(f"vgg: patches of {x.shape[-1]} frames give pool5 {tuple(h.shape[2:])} (time, mel), "
                             f"but the dense layer needs 2 x 1: feed 187-frame patches")
        return self.head(self.dropouts[4](flat)), features

    @staticmethod
    def tf_names(n_classes: int = 50) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
        """TF variable name -> (state-dict key, TF -> torch layout) for every tensor of the checkpoint."""
        names = _bn_names("batch_normalization", "bn_input")
        for i in range(5):
            names[f"{i + 1}CNN/kernel"] = (f"convs.{i}.weight", _conv2d)
            names[f"{i + 1}CNN/bias"] = (f"convs.{i}.bias", _same)
            names |= _bn_names(f"batch_normalization_{i + 1}", f"bns.{i}")
        return names | _dense_names("dense", "head")
