"""Tests of spectrotune.models.networks: shapes, gradients, determinism, parameter validation through build_model,
normalisation and state dicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spectrotune.errors import ConfigError, InputError
from spectrotune.models.networks import (
    MODEL_CLASSES,
    Normalize,
    NormalizedClassifier,
    build_model,
    count_parameters,
)
from spectrotune.models.params import MODEL_NAMES, MUSICNN_MODELS, model_params

# The shape-generic tests: musicnn / vgg read the musicnn front end's 96 x 187 patches only (tested at the end).
LOGMEL_MODELS = tuple(name for name in MODEL_NAMES if name not in MUSICNN_MODELS)


def test_every_model_name_has_a_network() -> None:
    assert tuple(MODEL_CLASSES) == MODEL_NAMES


SHAPES = [(2, 128, 130), (3, 32, 16), (1, 64, 400), (4, 128, 16), (2, 40, 33)]


def _batch(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", LOGMEL_MODELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_output_is_logits_per_example(name: str, shape: tuple[int, int, int]) -> None:
    model = build_model(name, n_classes=7, n_mels=shape[1]).eval()
    with torch.no_grad():
        out = model(_batch(shape))
    assert out.shape == (shape[0], 7)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", LOGMEL_MODELS)
def test_channel_axis_input_gives_same_logits(name: str) -> None:
    model = build_model(name, n_classes=5, n_mels=64).eval()
    x = _batch((3, 64, 50))
    with torch.no_grad():
        torch.testing.assert_close(model(x[:, None]), model(x))


@pytest.mark.parametrize("name", LOGMEL_MODELS)
@pytest.mark.parametrize("shape", [(2, 64), (2, 2, 64, 50), (2, 1, 1, 64, 50)])
def test_wrong_input_rank_is_input_error(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, n_classes=5, n_mels=64)
    with pytest.raises(InputError, match="n_mels, n_frames"):
        model(torch.zeros(*shape))


def test_crnn_rejects_other_n_mels() -> None:
    model = build_model("crnn", n_classes=5, n_mels=64)
    with pytest.raises(InputError, match="n_mels=64"):
        model(torch.zeros(2, 128, 50))


@pytest.mark.parametrize("name", LOGMEL_MODELS)
def test_gradients_reach_every_parameter(name: str) -> None:
    model = build_model(name, n_classes=4, n_mels=64)
    loss = F.cross_entropy(model(_batch((4, 64, 40))), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", LOGMEL_MODELS)
def test_eval_mode_is_deterministic(name: str) -> None:
    model = build_model(name, n_classes=4, n_mels=64).eval()
    x = _batch((5, 64, 70))
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        # Batch norm uses running statistics in eval: an example's logits do not depend on its batch mates.
        torch.testing.assert_close(model(x[:1]), model(x)[:1], rtol=1e-4, atol=1e-5)


# seed_cnn at its prototype dropout (0.5 after each of three narrow dense layers) needs ~10x more steps to
# memorise; the test is about wiring and capacity, so it runs with dropout 0. cnn and crnn use their defaults.
OVERFIT_PARAMS = {"seed_cnn": {"dropout": 0.0}, "cnn": None, "crnn": None}


@pytest.mark.parametrize("name", LOGMEL_MODELS)
def test_overfits_one_small_batch(name: str) -> None:
    torch.manual_seed(0)  # parameter initialisation uses torch's global generator
    x, y = _batch((16, 64, 64)), torch.arange(16) % 4
    model = build_model(name, n_classes=4, n_mels=64, params=OVERFIT_PARAMS[name])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    accuracy = 0.0
    for step in range(1, 61):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if step % 5 == 0:
            model.eval()
            with torch.no_grad():
                accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
            if accuracy == 1.0:
                break
    assert accuracy == 1.0


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"'resnet'.*seed_cnn, cnn, crnn"):
        build_model("resnet", n_classes=10)


@pytest.mark.parametrize("name", LOGMEL_MODELS)
def test_unknown_param_lists_valid_params(name: str) -> None:
    valid = ", ".join(model_params(name))
    with pytest.raises(ConfigError, match=f"'kernel'.*{valid}"):
        build_model(name, n_classes=10, params={"kernel": 5})


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("cnn", "depth", 0),
        ("cnn", "depth", 9),
        ("cnn", "depth", "4"),
        ("cnn", "depth", True),
        ("cnn", "width", 2.5),
        ("cnn", "dropout", 1.0),
        ("cnn", "dropout", -0.1),
        ("cnn", "dropout", float("nan")),
        ("seed_cnn", "dropout", "high"),
        ("crnn", "depth", 7),
        ("crnn", "hidden", 0),
        ("crnn", "layers", 5),
    ],
)
def test_bad_param_value_names_key_and_value(name: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"'{key}': {value!r}"):
        build_model(name, n_classes=10, params={key: value})


@pytest.mark.parametrize(("key", "value"), [("n_classes", 1), ("n_classes", 2.0), ("n_mels", 8)])
def test_bad_shape_argument_is_config_error(key: str, value: object) -> None:
    kwargs = {"n_classes": 10, "n_mels": 128, key: value}
    with pytest.raises(ConfigError, match=key):
        build_model("cnn", **kwargs)


@pytest.mark.parametrize("name", LOGMEL_MODELS)
def test_resolved_params_rebuild_the_same_architecture(name: str) -> None:
    overrides = {"dropout": 0.2} if name == "seed_cnn" else {"width": 8, "depth": 2}
    first = build_model(name, n_classes=6, n_mels=64, params=overrides)
    again = build_model(name, n_classes=6, n_mels=64, params=model_params(name, overrides))
    shapes = {k: v.shape for k, v in first.state_dict().items()}
    assert shapes == {k: v.shape for k, v in again.state_dict().items()}


def test_cnn_channels_double_up_to_cap() -> None:
    model = build_model("cnn", n_classes=3, n_mels=64, params={"width": 64, "depth": 4})
    convs = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [64, 128, 256, 256]


def test_normalize_standardises_each_mel_bin() -> None:
    mean, std = torch.linspace(-60, -10, 32), torch.linspace(1, 20, 32)
    x = _batch((3, 32, 20)) * std[:, None] + mean[:, None]
    out = Normalize(mean, std)(x)
    torch.testing.assert_close(out, (x - mean[:, None]) / std[:, None])
    torch.testing.assert_close(Normalize(mean, std)(x[:, None]), out[:, None])


@pytest.mark.parametrize(
    ("mean", "std"),
    [(torch.zeros(32), torch.zeros(32)), (torch.zeros(32), torch.ones(31)), (torch.zeros(2, 32), torch.ones(2, 32))],
)
def test_normalize_rejects_bad_statistics(mean: torch.Tensor, std: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="norm_"):
        build_model("cnn", n_classes=3, n_mels=32, norm_mean=mean, norm_std=std)


def test_normalize_needs_both_statistics() -> None:
    with pytest.raises(ConfigError, match="both"):
        build_model("cnn", n_classes=3, n_mels=32, norm_mean=torch.zeros(32))


@pytest.mark.parametrize("name", LOGMEL_MODELS)
def test_normalized_state_dict_round_trips_exactly(name: str) -> None:
    rng = np.random.default_rng(0)
    mean, std = rng.normal(-40, 5, 64).astype(np.float32), rng.uniform(5, 15, 64).astype(np.float32)
    trained = build_model(name, n_classes=5, n_mels=64, norm_mean=mean, norm_std=std)
    assert isinstance(trained, NormalizedClassifier)
    # Move batch-norm running statistics away from their initial values, as training would.
    with torch.no_grad():
        trained(_batch((8, 64, 40)) * 10 - 40)
    state = trained.state_dict()
    assert torch.equal(state["normalize.mean"], torch.from_numpy(mean))

    reloaded = build_model(name, n_classes=5, n_mels=64, norm_mean=torch.zeros(64), norm_std=torch.ones(64))
    reloaded.load_state_dict(state)
    x = _batch((4, 64, 40), seed=1) * 10 - 40
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(x), trained.eval()(x))


def test_count_parameters_counts_elements() -> None:
    assert count_parameters(torch.nn.Linear(3, 2)) == 8
    model = build_model("cnn", n_classes=10, n_mels=128, norm_mean=torch.zeros(128), norm_std=torch.ones(128))
    # The normalisation statistics are buffers, not parameters.
    assert count_parameters(model) == count_parameters(build_model("cnn", n_classes=10))


@pytest.mark.parametrize("name", MUSICNN_MODELS)
def test_musicnn_models_build_with_a_head_for_the_genres_and_round_trip(name: str) -> None:
    """Random initialisation (a bundle's weights load over it: no cache needed), 96 bands only; the pretrained
    checkpoint is where training starts (tests/training/test_transfer.py), not part of the architecture."""
    torch.manual_seed(0)
    model = build_model(name, n_classes=5, n_mels=96, params={"pretrained": "none"}, norm_mean=torch.zeros(96),
                        norm_std=torch.ones(96))
    assert isinstance(model, NormalizedClassifier) and model.net.head.out_features == 5 and model.n_mels == 96
    x = _batch((3, 96, 187)).abs()
    again = build_model(name, n_classes=5, n_mels=96, params=model_params(name), norm_mean=torch.zeros(96),
                        norm_std=torch.ones(96))
    again.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert model.eval()(x).shape == (3, 5) and torch.equal(again.eval()(x), model(x))
    with pytest.raises(ConfigError, match=f"model {name} reads 96 mel bands .*got n_mels=128"):
        build_model(name, n_classes=5, n_mels=128)
