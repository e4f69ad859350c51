"""Model names and their hyperparameters: the one definition that the config, the networks and the sweeps share.

Each model (see :mod:`spectrotune.models.networks`) has a typed frozen dataclass of hyperparameters
(:class:`SeedCnnParams`, :class:`CnnParams`, :class:`CrnnParams`, :class:`MusicnnParams`, :class:`VggParams`);
:data:`PARAM_CLASSES` maps the model name to it and :data:`MODEL_PARAMS` lists the parameter names each model takes,
derived from those dataclasses. :func:`model_params` validates a plain mapping (from YAML, ``--set`` or Ray Tune)
and returns the fully resolved dict that a model bundle stores, so ``build_model(name, n_classes=..., n_mels=...,
params=model_params(name, params))`` rebuilds the exact same architecture. :class:`ModelConfig` is the config's
``model`` section (re-exported by :mod:`spectrotune.config`).

``musicnn`` and ``vgg`` (:data:`MUSICNN_MODELS`) are the networks of the pretrained musicnn package: they read the
musicnn front end's input (:func:`frontend_of`; a dataset prepared with ``features.frontend: musicnn``) and start
from a cached checkpoint (``model.pretrained``, :data:`PRETRAINED`; ``none``: random initialisation), with a new
classification head. They standardise their input with their own (pretrained) input batch norm, so training puts
no per-mel normalisation in front of them (:func:`own_input_norm`).

Pure Python (no torch, no numpy), so :mod:`spectrotune.config` imports it and stays fast to import.

Example
-------
>>> model_params("cnn", {"width": 16})
{'width': 16, 'depth': 4, 'dropout': 0.3}
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spectrotune.errors import ConfigError
from spectrotune.schema import FRONTEND_MUSICNN
from spectrotune.typed_config import choices

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_NAMES",
    "MODEL_PARAMS",
    "MUSICNN_MODELS",
    "NO_PRETRAINED",
    "PARAM_CLASSES",
    "PRETRAINED",
    "CnnParams",
    "CrnnParams",
    "ModelConfig",
    "MusicnnParams",
    "SeedCnnParams",
    "VggParams",
    "frontend_of",
    "model_params",
    "own_input_norm",
    "pretrained_of",
]

MODEL_NAMES: tuple[str, ...] = ("seed_cnn", "cnn", "crnn", "musicnn", "vgg")
DEFAULT_MODEL = "cnn"
#: The pretrained musicnn package's architectures (:mod:`spectrotune.models.musicnn`, ``musicnn_vgg``).
MUSICNN_MODELS: tuple[str, ...] = ("musicnn", "vgg")
NO_PRETRAINED = "none"
#: ``model.pretrained`` choices per architecture: the cached checkpoints of that architecture
#: (:data:`spectrotune.models.pretrained.ARCHITECTURES`; a test keeps the two equal), or ``none``.
PRETRAINED: dict[str, tuple[str, ...]] = {
    "musicnn": ("MSD_musicnn", "MTT_musicnn", NO_PRETRAINED), "vgg": ("MSD_vgg", "MTT_vgg", NO_PRETRAINED),
}


@dataclasses.dataclass(frozen=True)
class SeedCnnParams:
    """Hyperparameters of ``seed_cnn``.

    Parameters
    ----------
    dropout : float
        Dropout probability after each of the dense 64-32-16 layers, in [0, 1). The prototype used 0.5.
    """

    dropout: float = 0.5


@dataclasses.dataclass(frozen=True)
class CnnParams:
    """Hyperparameters of ``cnn``.

    Parameters
    ----------
    width : int
        Channels of the first conv block (1..512); each next block doubles it up to
        :data:`spectrotune.models.networks.MAX_CHANNELS`.
    depth : int
        Number of Conv-BN-ReLU-MaxPool(2x2) blocks (1..8).
    dropout : float
        Dropout probability before the linear head, in [0, 1).
    """

    width: int = 32
    depth: int = 4
    dropout: float = 0.3


@dataclasses.dataclass(frozen=True)
class CrnnParams:
    """Hyperparameters of ``crnn``.

    Parameters
    ----------
    width : int
        Channels of the first conv block (1..512); doubled per block up to
        :data:`spectrotune.models.networks.MAX_CHANNELS`.
    depth : int
        Number of conv blocks (1..6). Each pools frequency by 4; only the first two pool time by 2.
    hidden : int
        GRU hidden size per direction (1..1024); the GRU output has ``2 * hidden`` features.
    layers : int
        Stacked GRU layers (1..4).
    dropout : float
        Dropout probability before the linear head (and between GRU layers when ``layers > 1``), in [0, 1).
    """

    width: int = 32
    depth: int = 3
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.3


@dataclasses.dataclass(frozen=True)
class MusicnnParams:
    """Hyperparameters of ``musicnn`` (the architecture is the pretrained one's: nothing else to choose).

    Parameters
    ----------
    pretrained : str
        The checkpoint the network starts from (``spectrotune fetch musicnn`` caches them): ``MSD_musicnn`` (Million
        Song Dataset tags), ``MTT_musicnn`` (MagnaTagATune), or ``none`` (random initialisation). Its 50-tag output
        layer is replaced by a new head for the dataset's genres.
    """

    pretrained: str = "MSD_musicnn"


@dataclasses.dataclass(frozen=True)
class VggParams:
    """Hyperparameters of ``vgg``: ``pretrained`` is ``MSD_vgg``, ``MTT_vgg`` or ``none`` (see :class:`MusicnnParams`)."""

    pretrained: str = "MSD_vgg"


#: The hyperparameter dataclass of each model, keyed by model name (the keys are :data:`MODEL_NAMES`).
PARAM_CLASSES: dict[str, type] = {"seed_cnn": SeedCnnParams, "cnn": CnnParams, "crnn": CrnnParams,
                                  "musicnn": MusicnnParams, "vgg": VggParams}

#: The hyperparameter names each model takes, in dataclass order: ``{"cnn": ("width", "depth", "dropout"), ...}``.
MODEL_PARAMS: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in PARAM_CLASSES.items()
}

# (kind, low, high, high_inclusive) per parameter name; the same name means the same rule in every model.
_PARAM_RULES: dict[str, tuple[str, float, float, bool]] = {
    "width": ("int", 1, 512, True),
    "depth": ("int", 1, 8, True),
    "hidden": ("int", 1, 1024, True),
    "layers": ("int", 1, 4, True),
    "dropout": ("float", 0.0, 1.0, False),
}
# The CRNN collapses frequency by 4 per block; past 6 blocks even 128 mels are long gone.
_DEPTH_MAX = {"crnn": 6}


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}")


def _check_value(name: str, key: str, value: Any) -> int | float | str:
    if key == "pretrained":
        if isinstance(value, str) and value in PRETRAINED[name]:
            return value
        raise ConfigError(f"bad value for {name} parameter 'pretrained': {value!r} (must be one of "
                          f"{', '.join(PRETRAINED[name])})")
    kind, low, high, high_inclusive = _PARAM_RULES[key]
    if key == "depth":
        high = _DEPTH_MAX.get(name, high)
    closing = "]" if high_inclusive else ")"
    # bool is an int subclass; `depth: true` in YAML is a typo, not 1. (numpy's bool_ is neither Integral nor Real,
    # so it fails the isinstance checks below without this module importing numpy.)
    if kind == "int":
        rule = f"an integer in [{low}, {high}]"
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if ok:
            value = int(value)
    else:
        rule = f"a number in [{low}, {high}{closing}"
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if ok:
            value = float(value)
            ok = math.isfinite(value)
    if ok:
        ok = low <= value and (value <= high if high_inclusive else value < high)
    if not ok:
        raise ConfigError(f"bad value for {name} parameter {key!r}: {value!r} (must be {rule})")
    return value


def model_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, int | float | str]:
    """Validate hyperparameters of model ``name`` and return them with every default filled in.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    params : Mapping[str, Any] or None
        Overrides of the defaults in the model's dataclass (:class:`CnnParams` etc.); None means all defaults.

    Returns
    -------
    dict
        ``{field: value}`` for every field of the model's dataclass, values as plain ``int``/``float``/``str``
        (JSON-safe).
        Store it in the model bundle to rebuild the model exactly.

    Raises
    ------
    ConfigError
        If the name is unknown, a key is not a parameter of that model, or a value is out of range; the message
        names the bad key/value and lists the valid ones.
    """
    _check_name(name)
    fields = MODEL_PARAMS[name]
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ConfigError(f"parameters of model {name!r} must be a mapping, got {type(params).__name__}: {params!r}")
    unknown = [k for k in params if k not in fields]
    if unknown:
        raise ConfigError(f"unknown parameter {unknown[0]!r} for model {name!r}; valid parameters: {', '.join(fields)}")
    resolved = dataclasses.asdict(PARAM_CLASSES[name]())
    for key, value in params.items():
        resolved[key] = _check_value(name, key, value)
    return resolved


def frontend_of(name: str) -> str | None:
    """The input front end model ``name`` needs (``musicnn`` for :data:`MUSICNN_MODELS`), or None: any log-mel."""
    _check_name(name)
    return FRONTEND_MUSICNN if name in MUSICNN_MODELS else None


def pretrained_of(name: str, params: Mapping[str, Any] | None = None) -> str | None:
    """The checkpoint model ``name`` starts from with ``params`` (resolved as :func:`model_params` does), or None."""
    chosen = model_params(name, params).get("pretrained")
    return None if chosen in (None, NO_PRETRAINED) else str(chosen)


def own_input_norm(name: str) -> bool:
    """Whether the network standardises its own input (the musicnn models' input batch norm), so that training puts
    no per-mel normalisation in front of it (its bundle records mean 0 and std 1)."""
    _check_name(name)
    return name in MUSICNN_MODELS


@dataclass(frozen=True)
class ModelConfig:
    """The config's ``model`` section: which network and its hyperparameters (``None`` = the model's own default).

    The fields besides ``name`` are the union of :data:`MODEL_PARAMS` (a test keeps them equal)."""

    name: str = field(default=DEFAULT_MODEL, metadata=choices(*MODEL_NAMES))
    width: int | None = None
    depth: int | None = None
    dropout: float | None = None
    hidden: int | None = None
    layers: int | None = None
    pretrained: str | None = None

    def __post_init__(self) -> None:
        # A parameter the chosen model does not have is a mistake to report, not to drop: most often a shipped
        # config sets it for another model (demo sets width/depth for cnn) and the name was switched.
        takes = MODEL_PARAMS[self.name]
        extra = {key: value for key, value in self.params().items() if key not in takes}
        if extra:
            given = ", ".join(f"model.{k}={v!r}" for k, v in extra.items())
            unset = " ".join(f"--set model.{k}=null" for k in extra)
            raise ConfigError(f"{given}: not a parameter of model {self.name!r} (its parameters: {', '.join(takes)}); "
                              f"remove it from the config or add {unset}")

    def params(self) -> dict[str, Any]:
        """The hyperparameters that were set, for :func:`spectrotune.models.networks.build_model`."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "name" and v is not None}
