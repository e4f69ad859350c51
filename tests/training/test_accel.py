"""Tests of spectrotune.training.accel: the device options a CUDA worker takes, each decided and run on CPU (the
AMP policy and its scaler, pinned input, channels_last, torch.compile) and undone where checkpoints need it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectrotune.config import load_config
from spectrotune.errors import ConfigError
from spectrotune.models.networks import build_model
from spectrotune.models.params import model_params
from spectrotune.training.accel import AmpPolicy, amp_policy, input_options, make_scaler, speed_up_model, to_device
from spectrotune.training.checkpoint import read_checkpoint, unwrap_model, write_checkpoint

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no CUDA: only its type is asked


def _tc(*overrides: str):
    return load_config("demo", overrides=list(overrides)).train


@pytest.mark.parametrize(("overrides", "device", "expected"), [
    ((), CUDA, AmpPolicy(enabled=True, dtype=torch.float16, scaler=True)),
    (("train.amp_dtype=bfloat16",), CUDA, AmpPolicy(enabled=True, dtype=torch.bfloat16, scaler=False)),
    (("train.amp=false",), CUDA, AmpPolicy(enabled=False, dtype=torch.float16, scaler=False)),
    ((), CPU, AmpPolicy(enabled=False, dtype=torch.float16, scaler=False)),
    (("train.amp_dtype=bfloat16",), CPU, AmpPolicy(enabled=False, dtype=torch.bfloat16, scaler=False)),
])
def test_amp_policy_follows_the_config_on_cuda_only(overrides, device, expected):
    assert amp_policy(_tc(*overrides), device) == expected


def test_amp_dtype_outside_the_choices_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="train.amp_dtype"):
        _tc("train.amp_dtype=float8")


@pytest.mark.parametrize("scaler", [True, False])
def test_scaler_is_on_exactly_when_the_policy_scales(scaler):
    made = make_scaler(AmpPolicy(enabled=True, scaler=scaler), CPU)
    assert made.is_enabled() is scaler
    assert (made.state_dict() != {}) is scaler  # a disabled scaler saves nothing


@pytest.mark.parametrize(("device", "pinned"), [(CUDA, True), (CPU, False)])
def test_batches_are_pinned_for_a_cuda_device_only(device, pinned):
    assert input_options(device) == {"pin_memory": pinned}


def test_validation_batches_reach_the_device_in_the_asked_dtype():
    x = to_device(np.arange(6, dtype=np.float64).reshape(2, 3), CPU)
    y = to_device(np.array([1, 0]), CPU, dtype=np.int64)
    assert x.dtype == torch.float32 and x.is_contiguous() and x.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert y.dtype == torch.int64


def _cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    config = load_config("demo")
    return build_model("cnn", n_classes=3, n_mels=32, params=model_params("cnn", config.model.params()),
                       norm_mean=np.zeros(32, np.float32), norm_std=np.ones(32, np.float32))


def test_channels_last_keeps_the_model_s_outputs_and_checkpoints_plain_tensors(tmp_path):
    x = torch.randn(4, 32, 40)
    plain = _cnn().eval()
    fast = speed_up_model(_cnn(), channels_last=True).eval()
    convs = [m.weight for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(w.is_contiguous() for w in convs)  # (with one input channel both layouts coincide)
    with torch.no_grad():
        assert torch.allclose(plain(x), fast(x), atol=1e-5)
    write_checkpoint(tmp_path, model=fast, spec={}, state={})  # the layout does not travel into a checkpoint
    weights, _, _ = read_checkpoint(tmp_path)
    assert all(w.is_contiguous() for w in weights.values())
    assert all(torch.equal(weights[k], v) for k, v in plain.state_dict().items())


def _small() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(32, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))


def test_compiled_model_trains_and_checkpoints_without_the_wrapper_prefix(tmp_path):
    model = _small()
    x, y = torch.randn(4, 32, 5, 8), torch.tensor([0, 1, 2, 0])
    model(x)  # the lazy layer takes its shape
    compiled = speed_up_model(model, compile=True, compile_backend="eager")
    assert compiled is not model and unwrap_model(compiled) is model
    optimizer = torch.optim.AdamW(compiled.parameters(), lr=1e-2)
    loss = torch.nn.functional.cross_entropy(compiled(x), y)
    loss.backward()
    optimizer.step()
    write_checkpoint(tmp_path, model=compiled, spec={}, state={})
    weights, _, _ = read_checkpoint(tmp_path)
    assert set(weights) == set(model.state_dict()) and not any(k.startswith("_orig_mod") for k in weights)
    fresh = _small()
    fresh(x)
    fresh.load_state_dict(weights)
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(x), model.eval()(x))


def test_the_speed_options_are_off_by_default():
    tc = _tc()
    assert (tc.channels_last, tc.compile, tc.amp_dtype) == (False, False, "float16")
    model = _cnn()
    assert speed_up_model(model) is model
