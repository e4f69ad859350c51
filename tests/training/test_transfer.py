"""Tests of spectrotune.training.transfer: which models read which datasets, the driver's read of a pretrained
checkpoint, the worker's load of it, the optimiser's groups and freezing, and batch norm while frozen. No Ray (the
fine-tune through `spectrotune train` is tests/training/test_transfer_train.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from musicnn_manifests import manifest_dict

from spectrotune.config import load_config
from spectrotune.dataset import DatasetManifest
from spectrotune.errors import ConfigError, InputError, SpectrotuneError
from spectrotune.models import pretrained
from spectrotune.models.networks import build_model
from spectrotune.models.params import PRETRAINED
from spectrotune.training import transfer as T

def _manifest(*, musicnn: bool, n_frames: int = 187, **features) -> DatasetManifest:
    return DatasetManifest.from_dict(manifest_dict(musicnn=musicnn, n_frames=n_frames, **features), origin="test")


def _config(*extra: str):
    return load_config("musicnn", overrides=list(extra))


@pytest.fixture(scope="module")
def cache(musicnn_cache):
    return musicnn_cache / "musicnn"


def test_old_manifests_are_log_mel_and_musicnn_models_refuse_them():
    old = _manifest(musicnn=False)
    assert old.feature_config.frontend == "logmel"
    for name in ("musicnn", "vgg"):
        with pytest.raises(ConfigError, match=f"model.name={name} reads the musicnn front end.*features.frontend="
                                              "logmel.*configs/musicnn.yaml"):
            T.check_model_input(_config(f"model.name={name}", "model.pretrained=null"), old)
    T.check_model_input(load_config("demo"), old)  # cnn reads any log-mel


def test_models_check_the_musicnn_datasets_shape():
    T.check_model_input(_config("model.name=cnn", "model.pretrained=null"), _manifest(musicnn=True))
    T.check_model_input(_config("model.name=vgg", "model.pretrained=MSD_vgg"), _manifest(musicnn=True))
    T.check_model_input(_config(), _manifest(musicnn=True, n_frames=100))  # musicnn pools over any length
    with pytest.raises(ConfigError, match="exactly 187 frames; the dataset's windows have 100"):
        T.check_model_input(_config("model.name=vgg", "model.pretrained=none"), _manifest(musicnn=True, n_frames=100))
    with pytest.raises(ConfigError, match="96 mel bands; the dataset holds 64"):
        T.check_model_input(_config(), _manifest(musicnn=True, n_mels=64))


def test_the_pretrained_choices_are_the_caches_models():
    assert {m for names in PRETRAINED.values() for m in names if m != "none"} == set(pretrained.MODELS)
    for arch, names in PRETRAINED.items():
        assert all(pretrained.architecture_of(m) == arch for m in names if m != "none")
    with pytest.raises(ConfigError, match="'pretrained': 'MSD_vgg' \\(must be one of MSD_musicnn, MTT_musicnn, none"):
        build_model("musicnn", n_classes=3, n_mels=96, params={"pretrained": "MSD_vgg"})


def test_load_backbone_reads_the_cache_and_checks_the_front_end(cache):
    manifest = _manifest(musicnn=True)
    backbone = T.load_backbone(_config(), manifest, cache=cache)
    meta, tensors = pretrained.read_pretrained("MSD_musicnn", cache)
    assert backbone.model == "MSD_musicnn" and set(backbone.tensors) == set(tensors)
    assert all(np.array_equal(backbone.tensors[k], tensors[k]) for k in tensors)
    assert backbone.sha256 == T.backbone_digest(T.pretrained_network("MSD_musicnn", tensors))
    assert T.load_backbone(_config("model.pretrained=none"), manifest, cache=cache) is None
    with pytest.raises(ConfigError, match=r"trained on the front end with n_fft=512.*dataset has n_fft=1024"):
        T.load_backbone(_config(), _manifest(musicnn=True, n_fft=1024), cache=cache)
    with pytest.raises(InputError, match="not in the cache.*spectrotune fetch musicnn"):
        T.load_backbone(_config(), manifest, cache=cache.parent / "empty")


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_vgg"])
def test_apply_backbone_loads_all_but_the_head_and_checks_the_digest(cache, model):
    manifest = _manifest(musicnn=True)
    name = pretrained.architecture_of(model)
    backbone = T.load_backbone(_config(f"model.name={name}", f"model.pretrained={model}"), manifest, cache=cache)
    torch.manual_seed(0)
    net = build_model(name, n_classes=4, n_mels=96, norm_mean=torch.zeros(96), norm_std=torch.ones(96))
    head = {k: v.clone() for k, v in net.net.head.state_dict().items()}
    assert T.backbone_digest(net) != backbone.sha256  # random initialisation
    record = T.apply_backbone(net, backbone.to_loop())
    assert record == {"model": model, "backbone_sha256": backbone.sha256} == {
        "model": model, "backbone_sha256": T.backbone_digest(net)}
    source = T.pretrained_network(model, backbone.tensors).state_dict()
    first = "timbral.0.conv.weight" if name == "musicnn" else "convs.0.weight"  # the first layer, as the checkpoint
    assert torch.equal(net.net.state_dict()[first], source[first])
    assert all(torch.equal(v, net.net.head.state_dict()[k]) for k, v in head.items())  # the new head stays
    assert net.net.head.out_features == 4
    with pytest.raises(SpectrotuneError, match="is not the driver's"):
        T.apply_backbone(net, {**backbone.to_loop(), "sha256": "0" * 64})


def test_param_groups_and_freezing_keep_the_backbone_exactly(cache):
    """Two head-only steps leave every backbone weight and batch-norm statistic as loaded (BN in eval, LR 0, no
    weight decay); the third step trains the backbone at lr x scale, batch norms in train mode again."""
    torch.manual_seed(0)
    tc = _config("train.freeze_epochs=1", "train.backbone_lr_scale=0.1", "train.weight_decay=0.1").train
    backbone = T.load_backbone(_config(), _manifest(musicnn=True), cache=cache)
    net = build_model("musicnn", n_classes=3, n_mels=96, norm_mean=torch.zeros(96), norm_std=torch.ones(96))
    T.apply_backbone(net, backbone.to_loop())
    groups = T.param_groups(net, tc)
    assert [g["lr"] for g in groups] == [pytest.approx(1e-3), pytest.approx(1e-4)]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters())) and len(groups[0]["params"]) == 2
    optimizer = torch.optim.AdamW(groups, lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, T.lr_lambdas(2, lambda step: 1.0, freeze_steps=2))
    x = torch.rand(3, 96, 40, generator=torch.Generator().manual_seed(0)) * 2
    y = torch.tensor([0, 1, 2])
    head_before = net.net.head.weight.detach().clone()
    for step in range(3):
        net.train()
        if step < 2:
            assert T.freeze_batch_norm(net) == 11  # every backbone batch norm of musicnn
            assert not net.net.bn_input.training and net.net.dropout_pool.training
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
        scheduler.step()
        assert (T.backbone_digest(net) == backbone.sha256) == (step < 2), step
    assert not torch.equal(net.net.head.weight, head_before)


def test_defaults_keep_one_group_and_other_models_have_a_head():
    tc = load_config("demo").train
    model = build_model("cnn", n_classes=3, n_mels=32)
    (group,) = T.param_groups(model, tc)
    assert len(group["params"]) == len(list(model.parameters()))
    assert len(T.lr_lambdas(1, lambda step: 0.5, freeze_steps=10)) == 1
    tc = load_config("demo", overrides=["train.freeze_epochs=2"]).train
    assert [len(g["params"]) for g in T.param_groups(model, tc)] == [2, len(list(model.parameters())) - 2]
    with pytest.raises(ConfigError, match="no `head` layer"):
        T.network_of(torch.nn.Linear(2, 2))


def test_train_config_keys_are_checked():
    with pytest.raises(ConfigError, match="train.backbone_lr_scale: must be > 0"):
        load_config("musicnn", overrides=["train.backbone_lr_scale=0"])
    with pytest.raises(ConfigError, match="train.freeze_epochs: must be >= 0"):
        load_config("musicnn", overrides=["train.freeze_epochs=-1"])
    with pytest.raises(ConfigError, match="model.pretrained='MSD_musicnn': not a parameter of model 'cnn'"):
        load_config("musicnn", overrides=["model.name=cnn"])
