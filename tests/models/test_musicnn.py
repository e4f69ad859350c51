"""The musicnn / vgg PyTorch networks: shapes and layouts, TF conventions, strict weight loading, head replacement,
and loading the cached pretrained weights (the first layer equals the checkpoint's)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from spectrotune.errors import InputError
from spectrotune.models import pretrained
from spectrotune.models.musicnn import BN_EPSILON, Musicnn, build_network, load_pretrained, load_tf_weights
from spectrotune.models.musicnn_vgg import MusicnnVgg


def _random_tf_weights(arch: str, *, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in pretrained.expected_tensors(arch).items():
        value = rng.normal(0, 0.05, shape).astype(np.float32)
        out[name] = np.abs(value) + 0.5 if name.endswith("moving_variance") else value
    return out


@pytest.mark.parametrize("n_frames", [187, 40, 1])
def test_musicnn_shapes_for_any_length(n_frames):
    net = build_network("MSD_musicnn").eval()
    x = torch.randn(2, 96, n_frames)
    with torch.no_grad():
        out = net.features(x)
        torch.testing.assert_close(net(x.unsqueeze(1)), out.logits)  # [B, 1, 96, T] accepted too
    assert out.logits.shape == out.taggram.shape == (2, 50)
    assert 0 < float(out.taggram.min()) and float(out.taggram.max()) < 1
    shapes = {k: tuple(v.shape) for k, v in out.features.items()}
    assert shapes == {"timbral": (2, n_frames, 408), "temporal": (2, n_frames, 153), "cnn1": (2, n_frames, 64),
                      "cnn2": (2, n_frames, 64), "cnn3": (2, n_frames, 64), "max_pool": (2, 753),
                      "mean_pool": (2, 753), "penultimate": (2, 200)}
    assert out.max_pool is out.features["max_pool"]


def test_vgg_shapes_and_input_length():
    net = build_network("MTT_vgg").eval()
    with torch.no_grad():
        out = net.features(torch.randn(2, 96, 187))
    assert out.logits.shape == (2, 50)
    assert [tuple(out.features[f"pool{i}"].shape[1:]) for i in range(1, 6)] == [
        (92, 48, 128), (46, 24, 128), (23, 12, 128), (11, 6, 128), (2, 1, 128)]
    with pytest.raises(InputError, match="feed 187-frame patches"):
        net(torch.randn(1, 96, 400))


@pytest.mark.parametrize("shape", [(2, 128, 187), (2, 187, 96), (96, 187)])
def test_wrong_input_layout_is_refused(shape):
    with pytest.raises(InputError, match=r"expected log-mel patches \[batch, 96, n_frames\]"):
        build_network("MSD_musicnn")(torch.randn(*shape))


def test_tf_conventions():
    net = build_network("MSD_musicnn")
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 11 and all(m.eps == BN_EPSILON == 1e-3 and m.momentum == pytest.approx(0.01) for m in bns)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.eps != 1e-3
                   for m in build_network("MSD_vgg").modules())


@pytest.mark.parametrize("model", pretrained.MODELS)
def test_every_tf_tensor_maps_onto_every_parameter(model):
    """The loader's name map and the fetch's expected tensors agree, and cover the whole state dict."""
    arch = pretrained.architecture_of(model)
    net = build_network(model)
    tensors = _random_tf_weights(arch)
    load_tf_weights(net, tensors, source="random")
    state = net.state_dict()
    mapping = net.tf_names()
    assert set(mapping) == set(tensors)
    assert {key for key, _ in mapping.values()} == {k for k in state if not k.endswith("num_batches_tracked")}
    for name, (key, to_torch) in mapping.items():
        np.testing.assert_array_equal(state[key].numpy(), to_torch(tensors[name]), err_msg=name)


def test_layouts_of_the_weight_map():
    tensors = _random_tf_weights("musicnn")
    net = Musicnn()
    load_tf_weights(net, tensors, source="random")
    kernel = tensors["conv2d_1/kernel"]  # [7, 67, 1, 204] HWIO
    assert torch.equal(net.timbral[1].conv.weight[5, 0, 2, 10], torch.tensor(kernel[2, 10, 0, 5]))
    mid = tensors["conv2d_5/kernel"]  # [7, 561, 1, 64] -> Conv1d [64, 561, 7]
    assert torch.equal(net.midend[0].conv.weight[3, 100, 6], torch.tensor(mid[6, 100, 0, 3]))
    assert torch.equal(net.dense.weight[7, 1000], torch.tensor(tensors["dense/kernel"][1000, 7]))


def test_weight_loading_is_strict():
    net = Musicnn()
    good = _random_tf_weights("musicnn")
    with pytest.raises(InputError, match="w.st: weights do not fit the musicnn network .missing 'dense/bias'"):
        load_tf_weights(net, {k: v for k, v in good.items() if k != "dense/bias"}, source="w.st")
    with pytest.raises(InputError, match="unexpected 'extra'"):
        load_tf_weights(net, good | {"extra": np.zeros(1, np.float32)}, source="w.st")
    with pytest.raises(InputError, match=r"'conv2d/kernel' has shape \(7, 37, 1, 204\)"):
        load_tf_weights(net, good | {"conv2d/kernel": np.zeros((7, 37, 1, 204), np.float32)}, source="w.st")
    vgg = _random_tf_weights("vgg")
    with pytest.raises(InputError, match="v.st: weights do not fit the vgg network .missing '3CNN/kernel'"):
        load_tf_weights(MusicnnVgg(), {k: v for k, v in vgg.items() if k != "3CNN/kernel"}, source="v.st")
    with pytest.raises(InputError, match="weights do not fit the vgg network .unexpected 'conv2d/bias'"):
        load_tf_weights(MusicnnVgg(), vgg | {"conv2d/bias": good["conv2d/bias"]}, source="v.st")


def test_interleaved_pooling_feeds_the_back_end():
    """Dense weights on even inputs only see max_pool, on odd inputs only mean_pool (the TF flatten order)."""
    net = Musicnn().eval()
    with torch.no_grad():
        net.bn_pool.reset_parameters()
        net.bn_pool.running_var.fill_(1 - BN_EPSILON)  # identity batch norm
        net.dense.weight.zero_()
        net.dense.bias.zero_()
        net.dense.weight[0, 0::2] = 1.0  # unit 0 sums the maxima
        net.dense.weight[1, 1::2] = 1.0  # unit 1 sums the means
        net.bn_dense.reset_parameters()
        net.bn_dense.running_var.fill_(1 - BN_EPSILON)
        out = net.features(torch.randn(1, 96, 50))
    assert float(out.penultimate[0, 0]) == pytest.approx(float(out.max_pool.sum().clamp(min=0)), rel=1e-5)
    assert float(out.penultimate[0, 1]) == pytest.approx(float(out.mean_pool.sum().clamp(min=0)), rel=1e-5)


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_vgg"])
def test_replace_head_and_backbone_parameters(model):
    net = build_network(model)
    old = net.head
    head = net.replace_head(10)
    assert head is net.head and head is not old and head.out_features == 10 and head.in_features == old.in_features
    assert net(torch.randn(2, 96, 187)).shape == (2, 10)
    backbone = list(net.backbone_parameters())
    assert len(backbone) + 2 == len(list(net.parameters()))
    assert not {id(p) for p in backbone} & {id(p) for p in head.parameters()}


def test_unknown_model_name():
    with pytest.raises(InputError, match="unknown pretrained model 'MSD_big'; choose one of MSD_musicnn"):
        build_network("MSD_big")


def test_load_pretrained_from_an_empty_cache_says_to_fetch(tmp_path):
    with pytest.raises(InputError, match=r"not in the cache .*run `spectrotune fetch musicnn`"):
        load_pretrained("MSD_musicnn", cache=tmp_path)


@pytest.mark.parametrize("model", pretrained.MODELS)
def test_load_pretrained_sets_the_checkpoint_weights(musicnn_cache, model):
    cache = musicnn_cache / "musicnn"
    net, meta = load_pretrained(model, cache=cache)
    assert not net.training and meta.model == model and meta.n_classes == 50
    tf = load_file(str(cache / f"{model}.safetensors"))
    first = net.timbral[0].conv.weight if meta.architecture == "musicnn" else net.convs[0].weight
    kernel = tf["conv2d/kernel" if meta.architecture == "musicnn" else "1CNN/kernel"]
    np.testing.assert_array_equal(first.detach().numpy(), kernel.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(net.bn_input.running_var.numpy(), tf["batch_normalization/moving_variance"])
