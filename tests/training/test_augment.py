"""Tests of spectrotune.training.augment: SpecAugment masks, mixup and the soft-target loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spectrotune.training.augment import MaskParams, apply_masks, draw_masks, mixup, soft_cross_entropy, spec_augment
from spectrotune.errors import ConfigError, InputError

SHAPES = [(4, 128, 130), (3, 32, 16), (2, 64, 400)]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed)) * 10 - 40  # dB-like values, mean far from 0


def _expected_mask(masks: MaskParams) -> torch.Tensor:
    """The mask written out cell by cell from the drawn ranges (independent of MaskParams.to_mask)."""
    out = torch.zeros(masks.batch, masks.n_mels, masks.n_frames, dtype=torch.bool)
    for b in range(masks.batch):
        for s, w in zip(masks.time_start[b].tolist(), masks.time_width[b].tolist(), strict=True):
            out[b, :, s : s + w] = True
        for s, w in zip(masks.freq_start[b].tolist(), masks.freq_width[b].tolist(), strict=True):
            out[b, s : s + w, :] = True
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_masks_fill_exactly_the_drawn_ranges(shape: tuple[int, int, int]) -> None:
    x = _batch(shape)
    masks = draw_masks(*shape, generator=_gen(1), time_masks=3, time_width=10, freq_masks=2, freq_width=12)
    out = apply_masks(x, masks, fill=0.0)
    expected = _expected_mask(masks)
    assert expected.any()
    assert torch.equal(out[expected], torch.zeros(int(expected.sum())))
    assert torch.equal(out[~expected], x[~expected])


def test_hand_made_masks_cover_half_open_ranges() -> None:
    x = torch.ones(1, 6, 8)
    one = torch.tensor([[2]])
    masks = MaskParams(
        time_start=one, time_width=torch.tensor([[3]]), freq_start=one, freq_width=torch.tensor([[0]]),
        n_mels=6, n_frames=8,
    )  # fmt: skip
    out = apply_masks(x, masks, fill=-1.0)
    assert out[0, 0].tolist() == [1, 1, -1, -1, -1, 1, 1, 1]
    assert torch.equal(out[0, :, 2], torch.full((6,), -1.0))  # zero-width frequency mask masks nothing


def test_default_fill_is_each_examples_mean() -> None:
    x = _batch((3, 32, 40))
    x[1] += 30  # examples with clearly different means
    masks = draw_masks(3, 32, 40, generator=_gen(2), time_width=40)
    out = apply_masks(x, masks)
    mask = _expected_mask(masks)
    for b in range(3):
        assert mask[b].any()
        assert torch.allclose(out[b][mask[b]], x[b].mean().expand(int(mask[b].sum())))


@pytest.mark.parametrize("shape", SHAPES)
def test_drawn_masks_stay_inside_the_axes_and_widths(shape: tuple[int, int, int]) -> None:
    batch, n_mels, n_frames = 64, shape[1], shape[2]
    masks = draw_masks(batch, n_mels, n_frames, generator=_gen(3), time_width=20, freq_width=16)
    assert masks.time_start.shape == (batch, 2) and masks.freq_width.shape == (batch, 2)
    assert (masks.time_width >= 0).all() and (masks.time_width <= min(20, n_frames)).all()
    assert (masks.freq_width >= 0).all() and (masks.freq_width <= min(16, n_mels)).all()
    assert (masks.time_start >= 0).all() and (masks.time_start + masks.time_width <= n_frames).all()
    assert (masks.freq_start >= 0).all() and (masks.freq_start + masks.freq_width <= n_mels).all()
    # Drawn per example, not once per batch.
    assert len({tuple(r) for r in masks.time_start.tolist()}) > 1


def test_mask_width_larger_than_axis_is_capped() -> None:
    masks = draw_masks(32, 8, 10, generator=_gen(4), time_width=1000, freq_width=1000)
    assert masks.time_width.max() <= 10 and masks.freq_width.max() <= 8
    assert (masks.time_start + masks.time_width <= 10).all()


def test_spec_augment_same_seed_same_output() -> None:
    x = _batch((4, 64, 100))
    assert torch.equal(spec_augment(x, generator=_gen(5)), spec_augment(x, generator=_gen(5)))
    assert not torch.equal(spec_augment(x, generator=_gen(5)), spec_augment(x, generator=_gen(6)))


def test_spec_augment_is_draw_then_apply() -> None:
    x = _batch((4, 64, 100))
    masks = draw_masks(4, 64, 100, generator=_gen(7))
    assert torch.equal(spec_augment(x, generator=_gen(7)), apply_masks(x, masks))


def test_spec_augment_leaves_input_unchanged() -> None:
    x = _batch((4, 64, 100))
    before = x.clone()
    out = spec_augment(x, generator=_gen(8), time_width=50)
    assert torch.equal(x, before)
    assert not torch.equal(out, x)


def test_spec_augment_keeps_channel_axis() -> None:
    x = _batch((2, 1, 32, 50))
    out = spec_augment(x, generator=_gen(9))
    assert out.shape == x.shape
    assert torch.equal(out[:, 0], spec_augment(x[:, 0], generator=_gen(9)))


def test_zero_masks_is_identity() -> None:
    x = _batch((2, 32, 50))
    assert torch.equal(spec_augment(x, generator=_gen(0), time_masks=0, freq_masks=0), x)


@pytest.mark.parametrize(("key", "value"), [("time_masks", -1), ("freq_width", 2.5), ("time_width", True)])
def test_bad_mask_setting_is_config_error(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        spec_augment(_batch((2, 32, 50)), generator=_gen(0), **{key: value})


def test_masks_for_another_shape_are_rejected() -> None:
    masks = draw_masks(2, 32, 50, generator=_gen(0))
    with pytest.raises(InputError, match="drawn for shape"):
        apply_masks(_batch((2, 32, 60)), masks)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 5.0])
def test_mixup_targets_are_distributions(alpha: float) -> None:
    x, y = _batch((32, 16, 20)), torch.arange(32) % 5
    _, y_soft = mixup(x, y, alpha=alpha, n_classes=5, generator=_gen(1))
    assert y_soft.shape == (32, 5)
    assert (y_soft >= 0).all()
    torch.testing.assert_close(y_soft.sum(dim=1), torch.ones(32))


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_mixup_mixes_inputs_and_targets_with_the_same_weights(alpha: float) -> None:
    # With each example a one-hot vector of its own class, the mixed inputs must equal the mixed targets.
    n = 16
    x, y = torch.eye(n), torch.arange(n)
    x_mixed, y_soft = mixup(x, y, alpha=alpha, n_classes=n, generator=_gen(2))
    torch.testing.assert_close(x_mixed, y_soft)
    assert not torch.equal(y_soft, torch.eye(n))


def test_mixup_alpha_zero_is_identity() -> None:
    x, y = _batch((8, 16, 20)), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    x_mixed, y_soft = mixup(x, y, alpha=0.0, n_classes=4, generator=_gen(3))
    assert torch.equal(x_mixed, x) and x_mixed is not x
    assert torch.equal(y_soft, F.one_hot(y, 4).float())


def test_mixup_same_seed_same_output_and_input_unchanged() -> None:
    x, y = _batch((8, 16, 20)), torch.arange(8) % 3
    before = x.clone()
    a = mixup(x, y, alpha=0.4, n_classes=3, generator=_gen(4))
    b = mixup(x, y, alpha=0.4, n_classes=3, generator=_gen(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(x, before)


def test_mixup_accepts_soft_targets() -> None:
    x, y = _batch((8, 16, 20)), torch.arange(8) % 3
    _, y_soft = mixup(x, y, alpha=0.4, n_classes=3, generator=_gen(5))
    _, y_twice = mixup(x, y_soft, alpha=0.4, n_classes=3, generator=_gen(6))
    torch.testing.assert_close(y_twice.sum(dim=1), torch.ones(8))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"alpha": -0.1}, ConfigError), ({"alpha": float("inf")}, ConfigError), ({"n_classes": 2}, InputError)],
)
def test_mixup_rejects_bad_arguments(kwargs: dict, error: type) -> None:
    args = {"alpha": 0.2, "n_classes": 3} | kwargs
    with pytest.raises(error):
        mixup(_batch((4, 8, 8)), torch.tensor([0, 1, 2, 0]), generator=_gen(0), **args)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_soft_cross_entropy_matches_torch_for_one_hot_targets(smoothing: float) -> None:
    logits, y = torch.randn(6, 4, generator=_gen(0)), torch.tensor([0, 1, 2, 3, 1, 0])
    got = soft_cross_entropy(logits, F.one_hot(y, 4).float(), label_smoothing=smoothing)
    torch.testing.assert_close(got, F.cross_entropy(logits, y, label_smoothing=smoothing))


def test_soft_cross_entropy_matches_torch_for_soft_targets() -> None:
    logits = torch.randn(6, 4, generator=_gen(1), requires_grad=True)
    target = torch.softmax(torch.randn(6, 4, generator=_gen(2)), dim=1)
    loss = soft_cross_entropy(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target))
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
