"""Batched training-time augmentation of log-mel spectrograms: SpecAugment masks, mixup, soft-target loss.

Pure torch; all randomness comes from a ``torch.Generator`` argument, so a training step is reproducible from
its seed. As in descript's audiotools, random parameters are drawn apart from applying them: :func:`draw_masks`
returns a :class:`MaskParams` (plain integer tensors you can log, inspect or reuse) and :func:`apply_masks`
applies it; :func:`spec_augment` does both.

Shapes: ``x`` is float ``[batch, n_mels, n_frames]`` (log-mel in dB, or already normalised) — a
``[batch, 1, n_mels, n_frames]`` batch is accepted as well and comes back in the same shape. Labels ``y`` are
int64 class indices ``[batch]``; soft targets are float ``[batch, n_classes]`` rows summing to 1.

Typical use in a training step::

    g = torch.Generator().manual_seed(seed)
    x = spec_augment(x, generator=g)
    x, y_soft = mixup(x, y, alpha=0.2, n_classes=10, generator=g)
    loss = soft_cross_entropy(model(x), y_soft, label_smoothing=0.1)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from spectrotune.errors import ConfigError, InputError

__all__ = ["MaskParams", "apply_masks", "draw_masks", "mixup", "soft_cross_entropy", "spec_augment"]


@dataclasses.dataclass(frozen=True)
class MaskParams:
    """SpecAugment masks for one batch: mask ``k`` of example ``b`` covers ``[start[b, k], start[b, k] + width[b, k])``.

    Attributes
    ----------
    time_start, time_width : Tensor int64 [batch, time_masks]
        First masked frame and number of masked frames (0 means no mask).
    freq_start, freq_width : Tensor int64 [batch, freq_masks]
        First masked mel bin and number of masked bins.
    n_mels, n_frames : int
        Shape the masks were drawn for.
    """

    time_start: torch.Tensor
    time_width: torch.Tensor
    freq_start: torch.Tensor
    freq_width: torch.Tensor
    n_mels: int
    n_frames: int

    @property
    def batch(self) -> int:
        return int(self.time_start.shape[0])

    def to_mask(self, *, device: torch.device | str | None = None) -> torch.Tensor:
        """Boolean ``[batch, n_mels, n_frames]`` tensor, True where a value is masked."""
        time = _ranges_to_mask(self.time_start, self.time_width, self.n_frames, device=device)  # [B, T]
        freq = _ranges_to_mask(self.freq_start, self.freq_width, self.n_mels, device=device)  # [B, M]
        return freq[:, :, None] | time[:, None, :]


def _ranges_to_mask(
    start: torch.Tensor, width: torch.Tensor, size: int, *, device: torch.device | str | None
) -> torch.Tensor:
    start, width = start.to(device), width.to(device)
    pos = torch.arange(size, device=device)[None, None, :]  # [1, 1, size]
    inside = (pos >= start[:, :, None]) & (pos < (start + width)[:, :, None])  # [B, K, size]
    return inside.any(dim=1)


def _check_count(key: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"bad value for {key}: {value!r} (must be an integer >= 0)")


def _draw_ranges(
    batch: int, count: int, max_width: int, size: int, *, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    # SpecAugment: width ~ U{0..W} (capped at the axis), start ~ U{0..size - width} so a mask never runs off the end.
    max_width = min(max_width, size)
    width = torch.randint(0, max_width + 1, (batch, count), generator=generator, device=generator.device)
    # Uniform start in [0, size - width] per entry: scale a uniform draw by each entry's own range.
    u = torch.rand((batch, count), generator=generator, device=generator.device, dtype=torch.float64)
    start = torch.floor(u * (size - width + 1).to(torch.float64)).to(torch.int64)
    return start, width


def draw_masks(
    batch: int,
    n_mels: int,
    n_frames: int,
    *,
    generator: torch.Generator,
    time_masks: int = 2,
    time_width: int = 20,
    freq_masks: int = 2,
    freq_width: int = 16,
) -> MaskParams:
    """Draw SpecAugment time and frequency masks independently for each example of a batch.

    Parameters
    ----------
    batch, n_mels, n_frames : int
        Shape of the batch the masks are for.
    generator : torch.Generator
        Source of randomness; the masks are created on its device.
    time_masks, freq_masks : int
        Masks per example along time (frames) and frequency (mel bins); 0 disables that axis.
    time_width, freq_width : int
        Largest mask width in frames / mel bins; each mask's width is uniform in ``[0, width]`` (capped at the
        axis length) and its start uniform over the positions where it fits.

    Returns
    -------
    MaskParams
    """
    for key, value in (
        ("batch", batch), ("n_mels", n_mels), ("n_frames", n_frames), ("time_masks", time_masks),
        ("time_width", time_width), ("freq_masks", freq_masks), ("freq_width", freq_width),
    ):  # fmt: skip
        _check_count(key, value)
    time_start, time_w = _draw_ranges(batch, time_masks, time_width, n_frames, generator=generator)
    freq_start, freq_w = _draw_ranges(batch, freq_masks, freq_width, n_mels, generator=generator)
    return MaskParams(time_start, time_w, freq_start, freq_w, n_mels=n_mels, n_frames=n_frames)


def _as_3d(x: torch.Tensor, what: str) -> tuple[torch.Tensor, bool]:
    if x.dim() == 3:
        return x, False
    if x.dim() == 4 and x.shape[1] == 1:
        return x[:, 0], True
    raise InputError(
        f"{what}: expected [batch, n_mels, n_frames] or [batch, 1, n_mels, n_frames], got {tuple(x.shape)}"
    )


def apply_masks(x: torch.Tensor, masks: MaskParams, *, fill: float | None = None) -> torch.Tensor:
    """Replace the masked time frames and mel bins of each example by ``fill``.

    Parameters
    ----------
    x : Tensor float [batch, n_mels, n_frames] (or [batch, 1, n_mels, n_frames])
        Log-mel batch; not modified.
    masks : MaskParams
        From :func:`draw_masks` for the same shape.
    fill : float or None
        Value written into masked cells. None (default) uses each example's own mean over (mel, time) — for
        log-mel in dB a literal 0 would be a loud value, not silence.

    Returns
    -------
    Tensor
        A new tensor with the shape, dtype and device of ``x``.
    """
    x3, squeezed = _as_3d(x, "apply_masks")
    if (masks.batch, masks.n_mels, masks.n_frames) != tuple(x3.shape):
        raise InputError(
            f"masks were drawn for shape {(masks.batch, masks.n_mels, masks.n_frames)}, got x {tuple(x3.shape)}"
        )
    mask = masks.to_mask(device=x3.device)
    if fill is None:
        value = x3.mean(dim=(1, 2), keepdim=True)  # [B, 1, 1]
    else:
        value = torch.as_tensor(fill, dtype=x3.dtype, device=x3.device)
    out = torch.where(mask, value, x3)  # torch.where allocates: x itself is never written
    return out[:, None] if squeezed else out


def spec_augment(
    x: torch.Tensor,
    *,
    generator: torch.Generator,
    time_masks: int = 2,
    time_width: int = 20,
    freq_masks: int = 2,
    freq_width: int = 16,
    fill: float | None = None,
) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) time and frequency masking, drawn per example.

    ``apply_masks(x, draw_masks(batch, n_mels, n_frames, generator=generator, ...), fill=fill)``; see those two
    functions for the parameters. Default widths suit 128 mels x 130 frames (3-s segments): each mask covers up
    to 20 frames (0.46 s) or 16 mel bins.

    Returns
    -------
    Tensor float, the shape of ``x``
        A new tensor; ``x`` is not modified.
    """
    x3, _ = _as_3d(x, "spec_augment")
    batch, n_mels, n_frames = (int(s) for s in x3.shape)
    masks = draw_masks(
        batch, n_mels, n_frames, generator=generator,
        time_masks=time_masks, time_width=time_width, freq_masks=freq_masks, freq_width=freq_width,
    )  # fmt: skip
    return apply_masks(x, masks, fill=fill)


def _one_hot(y: torch.Tensor, n_classes: int, *, dtype: torch.dtype) -> torch.Tensor:
    if y.dim() == 2:
        if y.shape[1] != n_classes:
            raise InputError(f"soft targets have {y.shape[1]} classes, expected n_classes={n_classes}")
        return y.to(dtype)
    if y.dim() != 1 or y.dtype.is_floating_point:
        raise InputError(
            f"labels must be int indices [batch] or soft targets [batch, n_classes], got {y.dtype} {tuple(y.shape)}"
        )
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise InputError(f"labels must lie in [0, {n_classes}), got min {int(y.min())} max {int(y.max())}")
    return F.one_hot(y.long(), n_classes).to(dtype)


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    alpha: float,
    n_classes: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018): blend each example with a random partner from the same batch.

    ``x_mixed[b] = lam[b] * x[b] + (1 - lam[b]) * x[perm[b]]`` and the same for the one-hot targets, with one
    ``lam[b] ~ Beta(alpha, alpha)`` per example and ``perm`` a random permutation of the batch.

    Parameters
    ----------
    x : Tensor float [batch, ...]
        Inputs (any trailing shape, e.g. [batch, n_mels, n_frames]); not modified.
    y : Tensor int64 [batch] or float [batch, n_classes]
        Class indices, or soft targets (e.g. from an earlier mixup).
    alpha : float
        Beta concentration, >= 0. 0 disables mixing: ``x`` is returned unchanged (as a copy) with one-hot targets.
    n_classes : int
        Number of classes of the targets.
    generator : torch.Generator
        Source of the permutation and (through a numpy Generator seeded from it) of the Beta draws, because
        ``torch.distributions.Beta`` cannot take a generator.

    Returns
    -------
    x_mixed : Tensor, the shape, dtype and device of ``x``
    y_soft : Tensor [batch, n_classes], dtype of ``x``
        Rows sum to 1.
    """
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha) or alpha < 0:
        raise ConfigError(f"bad value for mixup alpha: {alpha!r} (must be a finite number >= 0)")
    if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 1:
        raise ConfigError(f"bad value for n_classes: {n_classes!r} (must be an integer >= 1)")
    if y.shape[0] != x.shape[0]:
        raise InputError(f"x has {x.shape[0]} examples but y has {y.shape[0]}")
    dtype = x.dtype if x.dtype.is_floating_point else torch.float32
    y_soft = _one_hot(y, n_classes, dtype=dtype).to(x.device)
    if alpha == 0:
        return x.clone(), y_soft
    batch = int(x.shape[0])
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    lam_np = np.random.default_rng(seed).beta(alpha, alpha, size=batch)
    perm = torch.randperm(batch, generator=generator, device=generator.device).to(x.device)
    lam = torch.as_tensor(lam_np, dtype=dtype, device=x.device)
    lam_x = lam.view(batch, *([1] * (x.dim() - 1)))
    x_mixed = lam_x * x + (1 - lam_x) * x[perm]
    y_mixed = lam[:, None] * y_soft + (1 - lam[:, None]) * y_soft[perm]
    return x_mixed.to(x.dtype), y_mixed


def soft_cross_entropy(logits: torch.Tensor, y_soft: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy between logits and soft targets, with optional label smoothing.

    Parameters
    ----------
    logits : Tensor float [batch, n_classes]
    y_soft : Tensor float [batch, n_classes]
        Target distributions (rows sum to 1), e.g. from :func:`mixup`.
    label_smoothing : float
        In [0, 1]: targets become ``(1 - s) * y_soft + s / n_classes``, matching
        ``torch.nn.functional.cross_entropy(..., label_smoothing=s)`` for one-hot targets.

    Returns
    -------
    Tensor float scalar
        Mean over the batch, in nats.
    """
    if not isinstance(label_smoothing, (int, float)) or not 0.0 <= label_smoothing <= 1.0:
        raise ConfigError(f"bad value for label_smoothing: {label_smoothing!r} (must be in [0, 1])")
    if logits.shape != y_soft.shape or logits.dim() != 2:
        raise InputError(
            f"logits {tuple(logits.shape)} and y_soft {tuple(y_soft.shape)} must both be [batch, n_classes]"
        )
    target = y_soft.to(logits.dtype)
    if label_smoothing:
        target = (1.0 - label_smoothing) * target + label_smoothing / logits.shape[1]
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
