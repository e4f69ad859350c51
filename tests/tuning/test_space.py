"""The search-space language: nested and dotted keys, distribution specs, and every key and value checked against
the config before a sweep starts."""

from __future__ import annotations

import pytest

from spectrotune.config import load_config
from spectrotune.errors import ConfigError
from spectrotune.tuning.space import Dimension, parse_space, validate_space


def test_nested_and_dotted_space_keys_are_the_same():
    nested = parse_space({"train": {"lr": {"loguniform": [1e-4, 1e-2]}, "spec_augment": True},
                          "model": {"width": {"choice": [8, 16]}}})
    dotted = parse_space({"train.lr": {"loguniform": [1e-4, 1e-2]}, "train.spec_augment": True,
                          "model.width": {"choice": [8, 16]}})
    assert sorted(nested, key=lambda d: d.key) == sorted(dotted, key=lambda d: d.key)
    kinds = {d.key: (d.kind, d.values) for d in dotted}
    assert kinds == {"train.lr": ("loguniform", (1e-4, 1e-2)), "train.spec_augment": ("fixed", (True,)),
                     "model.width": ("choice", (8, 16))}


@pytest.mark.parametrize(("space", "named"), [
    ({"train.lrate": {"loguniform": [1e-4, 1e-2]}}, "lrate"),
    ({"modle": {"width": {"choice": [8]}}}, "modle"),
    ({"train.lr": {"choice": ["fast"]}}, "train.lr"),
    ({"model.width": {"uniform": [8, 16]}}, "model.width"),  # width takes integers, not a float range
    ({"tune.num_samples": {"choice": [2, 4]}}, "tune.num_samples"),
    ({"model.name": {"choice": ["seed_cnn"]}, "model.width": {"choice": [8]}}, "width"),
])
def test_bad_space_key_or_value_is_a_config_error_naming_it(space, named):
    config = load_config("demo", overrides=["sources.a=/nowhere"])
    with pytest.raises(ConfigError, match=named):
        validate_space(config, parse_space(space))


@pytest.mark.parametrize("spec", [{"loguniform": [0, 1]}, {"uniform": [2, 1]}, {"randint": [1.5, 4]},
                                  {"choice": []}, {"loguniform": [1e-3]}])
def test_malformed_distribution_is_rejected(spec):
    with pytest.raises(ConfigError, match="tune.space.train.lr"):
        parse_space({"train.lr": spec})


def test_dimension_candidates_cover_both_ends_of_a_range():
    assert Dimension("model.width", "randint", (8, 33)).candidates() == [8, 32]  # hi is exclusive, as in Tune
    assert not Dimension("model.width", "choice", (8,)).swept and Dimension("train.lr", "uniform", (0.1, 1)).swept
