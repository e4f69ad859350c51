"""The ``tracking`` config section: defaults, checks, and that it does not change the config hash (a run's name)."""

from __future__ import annotations

import pytest

from spectrotune.config import load_config
from spectrotune.errors import ConfigError


def test_defaults_tensorboard_on_mlflow_off():
    tracking = load_config("demo").tracking
    assert tracking.tensorboard is True and tracking.mlflow_uri is None and tracking.experiment is None
    assert tracking.tags == {} and tracking.log_bundle is False and tracking.strict is False


def test_unknown_key_fails_naming_it():
    with pytest.raises(ConfigError, match=r"unknown key 'tracking\.mlfow_uri'.*mlflow_uri"):
        load_config("demo", overrides=["tracking.mlfow_uri=http://127.0.0.1:5000"])


@pytest.mark.parametrize("item, match", [
    ("tracking.mlflow_uri=' '", "tracking.mlflow_uri: must not be empty"),
    ("tracking.tags={team: 3}", r"tracking\.tags\.team=3 is not valid: expected a string"),
    ("tracking.tensorboard=yes please", r"tracking\.tensorboard=.*expected true or false"),
])
def test_bad_values_fail_naming_key_and_value(item, match):
    with pytest.raises(ConfigError, match=match):
        load_config("demo", overrides=[item])


def test_tracking_is_saved_but_not_part_of_the_hash():
    plain = load_config("demo")
    tracked = load_config("demo", overrides=["tracking.mlflow_uri=http://127.0.0.1:5000", "tracking.tags={a: b}"])
    assert tracked.to_dict()["tracking"]["mlflow_uri"] == "http://127.0.0.1:5000"
    assert tracked.hash() == plain.hash()  # turning MLflow on for a rerun continues the same train run
    assert load_config("demo", overrides=["train.lr=0.5"]).hash() != plain.hash()
