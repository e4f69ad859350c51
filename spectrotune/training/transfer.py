"""Transfer learning from a pretrained musicnn / vgg backbone: what the driver reads, what a worker loads, and how
the optimiser and batch norm treat backbone and head.

Driver (:func:`load_backbone`, called by :func:`spectrotune.training.plan.plan_run`): reads the checkpoint that
``model.pretrained`` names from the musicnn cache (``spectrotune fetch musicnn``), checks that the dataset was
prepared with that checkpoint's front end (:func:`check_model_input` checks the model against the dataset first),
and computes the backbone's :func:`backbone_digest`. The tensors travel to the workers inside the train loop's
config, so workers, like ``predict``/``evaluate``/``export`` later, need no cache.

Worker (:func:`apply_backbone`): the pretrained network's weights go into the freshly built model, all but its
50-tag output layer (the new head, initialised from ``seed`` like every rank's). The worker's digest of what it
loaded must equal the driver's, else the run fails; it is recorded in every checkpoint and in the bundle
(``bundle.json`` ``metrics.pretrained``), so a run shows that its backbone started from the checkpoint.

Optimiser (:func:`param_groups`, :func:`lr_lambdas`): the head at ``train.lr``, the backbone at ``train.lr x
train.backbone_lr_scale``, both following ``train.schedule``; for the first ``train.freeze_epochs`` epochs the
backbone's learning rate is 0 (AdamW's decoupled weight decay scales with it, so its weights stay exactly as
loaded). Gradients still flow through the frozen backbone: toggling ``requires_grad`` under DDP would leave the
unfrozen parameters out of its gradient sync. With the defaults (no freezing, scale 1) there is one group, as before.

Batch norm (:func:`freeze_batch_norm`), a deliberate choice: while the backbone is frozen its batch-norm layers run
in eval mode, normalising with the pretrained running statistics and not updating them, so the head learns on
exactly the features the pretrained network computes (the embeddings the baselines score). Once unfrozen they
train as usual at TF's momentum (0.01 per step, :data:`~spectrotune.models.musicnn.BN_MOMENTUM`): their statistics
drift slowly toward the new data instead of being replaced by a few small batches'. Dropout follows the model's
mode. Pure torch/numpy; no ``ray``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from spectrotune.errors import ConfigError, SpectrotuneError
from spectrotune.models.params import MUSICNN_MODELS, frontend_of, pretrained_of
from spectrotune.schema import FRONTEND_LOGMEL

if TYPE_CHECKING:
    from spectrotune.config import Config, TrainConfig
    from spectrotune.dataset import DatasetManifest

__all__ = ["FRONTEND_KEYS", "VGG_N_FRAMES", "PretrainedBackbone", "apply_backbone", "backbone_digest",
           "check_model_input", "freeze_batch_norm", "load_backbone", "lr_lambdas", "network_of", "param_groups",
           "pretrained_network"]

#: Front-end parameters a dataset must share with a pretrained checkpoint (``MusicnnFrontend`` attributes).
FRONTEND_KEYS = ("sr", "n_fft", "hop_length", "n_mels", "fmin", "fmax")
#: The only patch length ``vgg``'s dense layer takes (:class:`~spectrotune.models.musicnn_vgg.MusicnnVgg`).
VGG_N_FRAMES = 187


@dataclass(frozen=True)
class PretrainedBackbone:
    """A pretrained checkpoint as the driver ships it: its name (``MSD_musicnn``, ...), its TF-named float32
    tensors (:func:`spectrotune.models.pretrained.read_pretrained`) and the sha256 of the backbone they give."""

    model: str
    tensors: dict[str, np.ndarray]
    sha256: str

    def to_loop(self) -> dict[str, Any]:
        """The train loop config's ``pretrained`` entry (plain types, for Ray to ship)."""
        return {"model": self.model, "tensors": self.tensors, "sha256": self.sha256}


def check_model_input(config: Config, manifest: DatasetManifest) -> None:
    """Refuse a model that cannot read the dataset: ``musicnn``/``vgg`` need the musicnn front end (96 bands;
    ``vgg`` 187 frames). Raises :class:`~spectrotune.errors.ConfigError` naming the model and what the data is."""
    name = config.model.name
    needed = frontend_of(name)
    have = manifest.feature_config.frontend
    if needed is not None and have != needed:
        raise ConfigError(f"model.name={name} reads the {needed} front end, but the dataset was prepared with "
                          f"features.frontend={have}: prepare it with configs/{needed}.yaml (spectrotune prepare "
                          f"{needed} --source ... --out ...), or train a model for {have} input (cnn, crnn)")
    n_mels, n_frames = manifest.input_shape
    if name in MUSICNN_MODELS and n_mels != 96:
        raise ConfigError(f"model.name={name} reads 96 mel bands; the dataset holds {n_mels} (features.n_mels)")
    if name == "vgg" and n_frames != VGG_N_FRAMES:
        raise ConfigError(f"model.name=vgg reads patches of exactly {VGG_N_FRAMES} frames; the dataset's windows "
                          f"have {n_frames} (audio.segment_seconds: 2.992 at 16 kHz, hop 256 gives 187)")


def load_backbone(config: Config, manifest: DatasetManifest, *, cache: Any = None) -> PretrainedBackbone | None:
    """The checkpoint ``model.pretrained`` names, read from the cache in this (the driver's) process; None when the
    model starts from random weights (``none``, or a model without ``pretrained``).

    Raises
    ------
    InputError
        The checkpoint is not in the cache (the message says to run ``spectrotune fetch musicnn``).
    ConfigError
        The dataset's front end differs from the checkpoint's (the key named).
    """
    from spectrotune.models.pretrained import read_pretrained
    from spectrotune.sources.kinds import LogMel

    name = pretrained_of(config.model.name, config.model.params())
    if name is None:
        return None
    meta, tensors = read_pretrained(name, cache)
    if manifest.feature_config.frontend == FRONTEND_LOGMEL:  # check_model_input refuses this first; kept for direct callers
        raise ConfigError(f"model.pretrained={name} needs a dataset prepared with the musicnn front end")
    ours = LogMel.from_config(manifest.feature_config, sample_rate=manifest.audio_config.sample_rate).musicnn_params()
    differ = [k for k in FRONTEND_KEYS if float(getattr(ours, k)) != float(getattr(meta.frontend, k))]
    if differ:
        raise ConfigError(f"model.pretrained={name} was trained on the front end with "
                          + ", ".join(f"{k}={getattr(meta.frontend, k)}" for k in differ) + "; the dataset has "
                          + ", ".join(f"{k}={getattr(ours, k)}" for k in differ) + " (prepare it with configs/musicnn.yaml)")
    return PretrainedBackbone(name, tensors, backbone_digest(pretrained_network(name, tensors)))


def pretrained_network(model: str, tensors: Mapping[str, np.ndarray]) -> nn.Module:
    """The pretrained network of ``model`` (with its 50-tag layer) holding ``tensors``, loaded strictly."""
    from spectrotune.models.musicnn import build_network, load_tf_weights

    net = build_network(model)
    load_tf_weights(net, tensors, source=f"{model} weights")
    return net


def network_of(model: nn.Module) -> nn.Module:
    """The network with the ``head`` inside a DDP wrapper and a :class:`~spectrotune.models.networks.
    NormalizedClassifier` (``model`` itself when it is neither)."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    net = getattr(model, "net", model)
    if not isinstance(getattr(net, "head", None), nn.Module):
        raise ConfigError(f"{type(net).__name__} has no `head` layer to train apart from its backbone")
    return net


def _backbone_state(net: nn.Module) -> dict[str, torch.Tensor]:
    # num_batches_tracked only counts steps (TF has no such buffer): not a weight
    return {k: v for k, v in net.state_dict().items() if not k.startswith("head.")
            and not k.endswith("num_batches_tracked")}


def backbone_digest(net: nn.Module) -> str:
    """sha256 (hex) of every backbone parameter and batch-norm statistic of ``net`` (all but ``head``), by name."""
    digest = hashlib.sha256()
    for key, value in sorted(_backbone_state(network_of(net)).items()):
        digest.update(key.encode() + b"\0")
        digest.update(np.ascontiguousarray(value.detach().cpu().float().numpy()).tobytes())
    return digest.hexdigest()


def apply_backbone(model: nn.Module, pretrained: Mapping[str, Any]) -> dict[str, str]:
    """Load a shipped checkpoint (:meth:`PretrainedBackbone.to_loop`) into ``model``'s backbone; its head stays.

    Returns ``{"model": name, "backbone_sha256": digest}`` of what was loaded. Raises
    :class:`~spectrotune.errors.SpectrotuneError` when the loaded backbone's digest is not the driver's.
    """
    net = network_of(model)
    source = pretrained_network(pretrained["model"], pretrained["tensors"])
    missing, unexpected = net.load_state_dict(_backbone_state(source), strict=False)
    left = [k for k in missing if not k.startswith("head.") and not k.endswith("num_batches_tracked")]
    if left or unexpected:
        raise SpectrotuneError(f"{pretrained['model']} does not fit the {type(net).__name__} backbone "
                               f"({'missing ' + left[0] if left else 'unexpected ' + unexpected[0]})")
    digest = backbone_digest(net)
    if digest != pretrained["sha256"]:
        raise SpectrotuneError(f"the {pretrained['model']} backbone loaded in this worker (sha256 {digest[:12]}) is not "
                               f"the driver's ({str(pretrained['sha256'])[:12]})")
    return {"model": str(pretrained["model"]), "backbone_sha256": digest}


def param_groups(model: nn.Module, tc: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: one with every parameter at ``train.lr`` when there is no freezing and no
    backbone scale; else the head's at ``train.lr`` (first, so the reported LR is the head's) and the backbone's at
    ``train.lr x train.backbone_lr_scale``."""
    if tc.freeze_epochs == 0 and tc.backbone_lr_scale == 1.0:
        return [{"params": list(model.parameters()), "lr": tc.lr}]
    head = {id(p) for p in network_of(model).head.parameters()}
    return [{"params": [p for p in model.parameters() if id(p) in head], "lr": tc.lr},
            {"params": [p for p in model.parameters() if id(p) not in head], "lr": tc.lr * tc.backbone_lr_scale}]


def lr_lambdas(n_groups: int, factor: Callable[[int], float], *, freeze_steps: int) -> list[Callable[[int], float]]:
    """``LambdaLR`` factors per group of :func:`param_groups`: the schedule's ``factor(step)`` for the head (and a
    single group); 0 for the backbone during the first ``freeze_steps`` optimiser steps, then ``factor(step)``."""
    if n_groups == 1:
        return [factor]

    def backbone(step: int) -> float:
        return 0.0 if step < freeze_steps else factor(step)

    return [factor, backbone]


def freeze_batch_norm(model: nn.Module) -> int:
    """Put the backbone's batch-norm layers in eval mode (call after ``model.train()``); returns how many."""
    net = network_of(model)
    head = set(net.head.modules())
    layers = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m not in head]
    for layer in layers:
        layer.eval()
    return len(layers)
