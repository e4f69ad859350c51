"""Tests of spectrotune.models.params: the model names, their parameter tables and model_params' validation."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from spectrotune.errors import ConfigError
from spectrotune.models.params import (
    DEFAULT_MODEL,
    MODEL_NAMES,
    MODEL_PARAMS,
    PARAM_CLASSES,
    CnnParams,
    model_params,
)


def test_model_params_fills_defaults_and_coerces_types() -> None:
    resolved = model_params("cnn", {"width": np.int64(16), "dropout": 0})
    assert resolved == {"width": 16, "depth": CnnParams().depth, "dropout": 0.0}
    assert type(resolved["width"]) is int and type(resolved["dropout"]) is float


def test_every_model_name_has_one_parameter_class_and_table() -> None:
    assert tuple(PARAM_CLASSES) == MODEL_NAMES == tuple(MODEL_PARAMS)
    assert DEFAULT_MODEL in MODEL_NAMES
    for name, cls in PARAM_CLASSES.items():
        assert MODEL_PARAMS[name] == tuple(f.name for f in dataclasses.fields(cls))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_defaults_are_the_dataclass_defaults(name: str) -> None:
    assert model_params(name) == dataclasses.asdict(PARAM_CLASSES[name]())


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"'resnet'.*seed_cnn, cnn, crnn"):
        model_params("resnet")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unknown_param_lists_valid_params(name: str) -> None:
    with pytest.raises(ConfigError, match=f"'kernel'.*{', '.join(MODEL_PARAMS[name])}"):
        model_params(name, {"kernel": 5})


def test_params_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        model_params("cnn", [("width", 8)])


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("cnn", "depth", 0),
        ("cnn", "depth", 9),
        ("cnn", "depth", "4"),
        ("cnn", "depth", True),
        ("cnn", "depth", np.True_),
        ("cnn", "width", 2.5),
        ("cnn", "dropout", 1.0),
        ("cnn", "dropout", -0.1),
        ("cnn", "dropout", float("nan")),
        ("cnn", "dropout", np.False_),
        ("seed_cnn", "dropout", "high"),
        ("crnn", "depth", 7),
        ("crnn", "hidden", 0),
        ("crnn", "layers", 5),
    ],
)
def test_bad_param_value_names_key_and_value(name: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"'{key}': {value!r}"):
        model_params(name, {key: value})


def test_importing_params_loads_neither_torch_nor_numpy() -> None:
    # spectrotune.config imports this module; the config must stay fast to import.
    code = "import sys, spectrotune.models.params; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
