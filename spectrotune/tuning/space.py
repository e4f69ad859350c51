"""The search-space language of ``tune.space``: parse it into dimensions and check them against the config.

Each leaf of ``tune.space`` is one of ``{loguniform: [lo, hi]}`` (``0 < lo < hi``), ``{uniform: [lo, hi]}``,
``{randint: [lo, hi]}`` (integers, ``hi`` exclusive, as in Tune), ``{choice: [...]}``, ``{grid: [...]}``, or a
plain value (fixed for every trial)::

    tune:
      space:                      # keys are config keys (nested or dotted), plus `source`
        source: {grid: [gtzan, spotify]}
        train.lr: {loguniform: [1.0e-4, 3.0e-3]}
        model: {width: {choice: [16, 32]}}

Keys are config keys — ``train.lr``, ``train.weight_decay``, ``train.batch_size``, ``model.name``,
``model.width``, ``model.depth``, ``model.dropout``, ``train.mixup_alpha``, ``train.spec_augment``, … — given
nested or dotted, plus the special key ``source`` (names from ``sources``; a grid over all of them when absent).
Every key and value is checked against the config before anything starts (:func:`validate_space`): an unknown key
or a bad value is a :class:`~spectrotune.errors.ConfigError` naming it. How the dimensions become Tune domains
(``choice`` as a grid under ``search: grid``, ``grid`` as a choice under ``search: optuna``) is
:func:`spectrotune.tuning.schedulers.build_param_space`.

Pure Python: no ``ray``, so the space is checked (and unit-tested) without starting or importing it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spectrotune.config import Config, build
from spectrotune.errors import ConfigError

__all__ = [
    "DISTRIBUTIONS",
    "FOLD_KEY",
    "SOURCE_KEY",
    "Dimension",
    "apply_params",
    "max_epochs",
    "parse_space",
    "space_sources",
    "validate_space",
]

DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice", "grid")
#: The special key naming the prepared dataset (``sources.<name>``) a trial trains on.
SOURCE_KEY = "source"
#: The key of a cross-validation trial's fold index (set by :mod:`spectrotune.tuning.cv`, never by the space).
FOLD_KEY = "fold"
# Keys a sweep may not vary: they place the outputs or define the sweep itself.
FORBIDDEN_KEYS = ("tune", "sources", "train.run_name", "train.storage_path")


@dataclass(frozen=True)
class Dimension:
    """One key of the search space.

    Attributes
    ----------
    key : str
        Dotted config key (``train.lr``) or ``source``.
    kind : str
        One of :data:`DISTRIBUTIONS`, or ``fixed``.
    values : tuple
        ``(lo, hi)`` for ``loguniform``/``uniform``/``randint``; the options for ``choice``/``grid``; ``(value,)``
        for ``fixed``.
    """

    key: str
    kind: str
    values: tuple[Any, ...]

    @property
    def swept(self) -> bool:
        """Whether trials can differ in this key."""
        return self.kind != "fixed" and not (self.kind in ("choice", "grid") and len(self.values) == 1)

    def candidates(self) -> list[Any]:
        """Values to validate against the config: every option, or both ends of a range."""
        if self.kind == "randint":
            return [self.values[0], self.values[1] - 1]
        return list(self.values)


def parse_space(space: Mapping[str, Any]) -> list[Dimension]:
    """Flatten ``tune.space`` (nested or dotted keys) into dimensions, checking the distribution specs.

    A mapping with exactly one key that is a distribution name (:data:`DISTRIBUTIONS`) is a distribution; any
    other mapping is a section whose keys are prefixed with its own; anything else is a fixed value.

    Raises
    ------
    ConfigError
        A malformed distribution (wrong number of bounds, ``lo >= hi``, non-positive log-uniform bound, empty
        choice list) or a key given twice; the message names the key.
    """
    out: dict[str, Dimension] = {}

    def visit(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping) and len(node) == 1 and next(iter(node)) in DISTRIBUTIONS:
            kind, values = next(iter(node.items()))
            add(Dimension(prefix, kind, _check_distribution(prefix, kind, values)))
        elif isinstance(node, Mapping) and node:
            for key, value in node.items():
                if not isinstance(key, str) or not key:
                    raise ConfigError(f"tune.space: key {key!r} under {prefix or 'space'!r} must be a non-empty string")
                visit(value, f"{prefix}.{key}" if prefix else key)
        else:
            if not prefix:
                raise ConfigError(f"tune.space: must be a mapping of config keys, got {node!r}")
            add(Dimension(prefix, "fixed", (node,)))

    def add(dim: Dimension) -> None:
        if dim.key in out:
            raise ConfigError(f"tune.space: key {dim.key!r} is given twice (nested and dotted?)")
        out[dim.key] = dim

    if not isinstance(space, Mapping):
        raise ConfigError(f"tune.space: must be a mapping of config keys, got {space!r}")
    if space:
        visit(space, "")
    return list(out.values())


def _check_distribution(key: str, kind: str, values: Any) -> tuple[Any, ...]:
    where = f"tune.space.{key}: {{{kind}: {values!r}}}"
    if kind in ("choice", "grid"):
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"{where}: expected a non-empty list of values")
        return tuple(values)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != 2:
        raise ConfigError(f"{where}: expected [lo, hi]")
    lo, hi = values
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi))
    if not numbers or not all(math.isfinite(v) for v in (lo, hi)):
        raise ConfigError(f"{where}: bounds must be finite numbers")
    if kind == "randint" and not all(isinstance(v, int) for v in (lo, hi)):
        raise ConfigError(f"{where}: randint bounds must be integers (hi is exclusive)")
    if lo >= hi:
        raise ConfigError(f"{where}: needs lo < hi")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(f"{where}: log-uniform bounds must be > 0")
    return (lo, hi) if kind == "randint" else (float(lo), float(hi))


def _set_nested(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def apply_params(base: Mapping[str, Any], params: Mapping[str, Any], *, origin: str) -> Config:
    """``base`` (a plain config dict, :meth:`Config.to_dict`) with a trial's dotted-key ``params`` applied.

    ``source`` and ``fold`` are the trial's, not config keys, and are skipped.

    Raises
    ------
    ConfigError
        The result is not a valid config; the message starts with ``origin``.
    """
    data = copy.deepcopy(dict(base))
    for key, value in params.items():
        if key not in (SOURCE_KEY, FOLD_KEY):
            _set_nested(data, key, value)
    return build(Config, data, origin=origin)


def space_sources(config: Config, dims: Sequence[Dimension]) -> list[str]:
    """The source names a sweep covers (the ``source`` dimension, else every source), checked against
    ``config.sources``.

    Raises
    ------
    ConfigError
        No sources at all, a ``source`` dimension that is a range, or a name not in ``config.sources``.
    """
    if not config.sources:
        raise ConfigError("tune: no prepared datasets; set sources.<name>=PATH (e.g. --set sources.gtzan=data/gtzan)")
    dim = next((d for d in dims if d.key == SOURCE_KEY), None)
    if dim is None:
        return list(config.sources)
    if dim.kind not in ("choice", "grid", "fixed"):
        raise ConfigError(f"tune.space.source: must be a grid, a choice or one name, got {dim.kind}")
    unknown = [v for v in dim.values if v not in config.sources]
    if unknown:
        raise ConfigError(f"tune.space.source: {unknown[0]!r} is not in sources (have {', '.join(config.sources)})")
    return list(dict.fromkeys(dim.values))


def validate_space(config: Config, dims: Sequence[Dimension]) -> None:
    """Check every key and candidate value of the space against the config (and the models' parameters).

    Raises
    ------
    ConfigError
        An unknown key, a key a sweep may not vary, or a value the config (or the chosen model) rejects; the
        message names the key and the value.
    """
    from spectrotune.models.params import model_params

    base = config.to_dict()
    for dim in dims:
        if dim.key == SOURCE_KEY:
            continue
        if dim.key == FOLD_KEY or any(dim.key == k or dim.key.startswith(k + ".") for k in FORBIDDEN_KEYS):
            raise ConfigError(f"tune.space: key {dim.key!r} cannot be swept")
        values = dim.candidates()
        if dim.kind in ("loguniform", "uniform", "randint"):
            # A range stands for numbers of its own kind: check that the key takes numbers at all.
            values = [int(v) for v in values] if dim.kind == "randint" else [float(v) for v in values]
        for value in values:
            try:
                apply_params(base, {dim.key: value}, origin="tune.space")
            except ConfigError as e:
                raise ConfigError(f"tune.space: {dim.key}={value!r}: {_strip_origin(e)}") from e
    # Model parameters depend on the model: check each swept value with each model name the sweep can pick.
    names_dim = next((d for d in dims if d.key == "model.name"), None)
    names = list(names_dim.candidates()) if names_dim else [config.model.name]
    for name in names:
        for dim in [d for d in dims if d.key.startswith("model.") and d.key != "model.name"] or [None]:
            for value in dim.candidates() if dim else [None]:
                params = {"model.name": name, **({dim.key: value} if dim else {})}
                trial = apply_params(base, params, origin="tune.space")
                try:
                    model_params(trial.model.name, trial.model.params())
                except ConfigError as e:
                    raise ConfigError(f"tune.space: model.name={name!r} with "
                                      f"{dim.key + '=' + repr(value) if dim else 'the config'}: {e}") from e


def _strip_origin(error: ConfigError) -> str:
    text = str(error)
    return text.split(": ", 1)[1] if text.startswith("tune.space: ") else text


def max_epochs(config: Config, dims: Sequence[Dimension]) -> int:
    """The most epochs any trial can run: the largest ``train.epochs`` candidate, else the config's (ASHA's
    ``max_t``)."""
    dim = next((d for d in dims if d.key == "train.epochs"), None)
    if dim is None:
        return config.train.epochs
    return int(max(dim.candidates()))
