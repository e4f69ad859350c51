"""Checks across config sections that Ray would otherwise make with a bare assertion, once the trials have started.

A section's own rules live in its dataclass (:mod:`spectrotune.config`: ``tune.num_samples >= 1``,
``tune.reduction_factor > 1``, ``train.batch_size >= 1`` ...). A rule that ties two sections together and holds only
for one command is checked here, by that command, right after its config is loaded and before Ray starts, with a
:class:`~spectrotune.errors.ConfigError` naming every key involved:

- a sweep with ASHA (``tune.scheduler: asha``): ``tune.grace_period`` must not exceed the epochs of the longest trial
  (``train.epochs``, or the largest ``train.epochs`` the space can pick), which is ASHA's ``max_t`` (Ray:
  ``AssertionError: grace_period must be <= max_t!``). Cross-validation and ``train`` use no scheduler, so the
  same config is fine for them.

No ``ray``.
"""

from __future__ import annotations

from typing import Any

from spectrotune.errors import ConfigError

__all__ = ["check_sweep_schedule"]


def check_sweep_schedule(config: Any, *, max_epochs: int, swept: bool = False) -> None:
    """Refuse a sweep whose ASHA rungs cannot fit in its trials (``config``: a :class:`~spectrotune.config.Config`).

    Parameters
    ----------
    max_epochs : int
        Epochs of the longest trial (ASHA's ``max_t``).
    swept : bool
        ``max_epochs`` is the largest ``train.epochs`` of ``tune.space`` rather than ``train.epochs`` itself.
    """
    tc = config.tune
    if tc.scheduler != "asha" or tc.grace_period <= max_epochs:
        return
    epochs = (f"the largest train.epochs in tune.space ({max_epochs})" if swept
              else f"train.epochs={config.train.epochs}")
    raise ConfigError(f"tune.grace_period={tc.grace_period} is more than {epochs}: ASHA (tune.scheduler=asha) "
                      "stops trials only after grace_period epochs, so it must be <= the epochs a trial runs; lower "
                      "tune.grace_period, raise train.epochs or set tune.scheduler=none")
