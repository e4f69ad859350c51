"""How Ray Tune runs a sweep's trials: the space as Tune domains, the search algorithm, per-source ASHA and the
trial's resource request.

Early stopping. ASHA (``tune.scheduler: asha``) compares ``tune.metric`` at rungs of ``grace_period *
reduction_factor**k`` epochs and stops trials below the rung's top ``1 / reduction_factor``; it keeps separate
rungs per source (:class:`PerSourceASHA`), because clip accuracies on different datasets are not comparable.

Search. ``tune.search: random`` and ``grid`` use Tune's ``BasicVariantGenerator`` seeded with ``tune.seed``;
``optuna`` uses ``OptunaSearch`` (``pip install spectrotune[optuna]``), which samples every dimension.

Resources. A trial's driver asks Tune for no CPU, only a token of memory (:data:`DRIVER_RESOURCES`): its training
workers ask Ray Train for theirs (see :mod:`spectrotune.tuning.plan`).

Imports Ray at module level: :class:`PerSourceASHA` subclasses a Ray Tune scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ray import tune as rt
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

from spectrotune.errors import ConfigError
from spectrotune.tuning.space import FOLD_KEY, SOURCE_KEY, Dimension

__all__ = ["DRIVER_RESOURCES", "PerSourceASHA", "build_param_space", "fold_param_space", "search_algorithm"]

# Tune refuses a trial with an empty resource request ("Cannot initialize a ResourceRequest with an empty head and
# zero worker bundles"); the driver does no work, so it asks for a token of memory instead of a CPU.
DRIVER_RESOURCES = {"cpu": 0, "memory": 2**20}


def build_param_space(dims: Sequence[Dimension], *, sources: Sequence[str], search: str) -> dict[str, Any]:
    """The Tune ``param_space``: ``source`` first (so it varies fastest in a grid), then the space's keys.

    ``choice`` becomes a grid when ``search == "grid"``; ``grid`` becomes a choice when ``search == "optuna"``.
    """

    def domain(kind: str, values: Sequence[Any]) -> Any:
        if kind == "loguniform":
            return rt.loguniform(*values)
        if kind == "uniform":
            return rt.uniform(*values)
        if kind == "randint":
            return rt.randint(*values)
        if kind == "fixed":
            return values[0]
        as_grid = (kind == "grid" and search != "optuna") or (kind == "choice" and search == "grid")
        return rt.grid_search(list(values)) if as_grid else rt.choice(list(values))

    space: dict[str, Any] = {SOURCE_KEY: domain("fixed" if len(sources) == 1 else "grid", list(sources))}
    for dim in dims:
        if dim.key != SOURCE_KEY:
            space[dim.key] = domain(dim.kind, dim.values)
    return space


def fold_param_space(folds: int, *, sources: Sequence[str]) -> dict[str, Any]:
    """The cross-validation ``param_space``: a grid over the ``folds`` fold indices and over the sources."""
    return {FOLD_KEY: rt.grid_search(list(range(folds))),
            SOURCE_KEY: rt.grid_search(list(sources)) if len(sources) > 1 else sources[0]}


def search_algorithm(search: str, *, seed: int, concurrency: int) -> tuple[Any, int | None]:
    """The Tune search algorithm for ``tune.search`` and the ``max_concurrent_trials`` to give ``TuneConfig``
    (``BasicVariantGenerator`` caps concurrency itself).

    Raises
    ------
    ConfigError
        ``search == "optuna"`` and Optuna is not installed (called before anything starts, to fail early).
    """
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if search != "optuna":
        return BasicVariantGenerator(max_concurrent=concurrency, random_state=seed), None
    try:
        import optuna  # noqa: F401
    except ImportError as e:
        raise ConfigError("tune.search=optuna needs Optuna: pip install spectrotune[optuna]") from e
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=seed), concurrency


class PerSourceASHA(FIFOScheduler):
    """ASHA with one set of rungs per source: a trial is only compared with trials on the same dataset.

    Clip accuracies on a 14-genre image set and a 10-genre audio set are not comparable, so a single ASHA would
    stop every trial of the harder source. Each source gets its own ``AsyncHyperBandScheduler`` (time attribute
    ``epoch``); trials run in submission order (FIFO), as with plain ASHA.

    Parameters
    ----------
    max_t : int
        Epochs of the longest trial.
    grace_period : int
        Epochs before a trial may be stopped.
    reduction_factor : float
        Rungs at ``grace_period * reduction_factor**k`` epochs keep the top ``1 / reduction_factor``.
    """

    def __init__(self, *, max_t: int, grace_period: int, reduction_factor: float) -> None:
        super().__init__()
        self._options = {"time_attr": "epoch", "max_t": max_t, "grace_period": grace_period,
                         "reduction_factor": reduction_factor}
        self._metric: str | None = None
        self._mode: str | None = None
        self._by_source: dict[str, AsyncHyperBandScheduler] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def _asha(self, trial: Any) -> AsyncHyperBandScheduler:
        source = str((trial.config or {}).get(SOURCE_KEY))
        if source not in self._by_source:
            self._by_source[source] = AsyncHyperBandScheduler(metric=self._metric, mode=self._mode,
                                                              **self._options)
        return self._by_source[source]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._asha(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._asha(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "; ".join(f"{s}: {a.debug_string()}" for s, a in self._by_source.items()) or "ASHA per source"
