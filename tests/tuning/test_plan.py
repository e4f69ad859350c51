"""A sweep outside Ray: deterministic names, and concurrency capped to the cluster (the K-fold dealing is tested
with sources.splits, where it lives)."""

from __future__ import annotations

import pytest

from spectrotune.config import load_config
from spectrotune.errors import ConfigError
from spectrotune.tuning.plan import sweep_name, trial_concurrency


def test_sweep_names_are_deterministic():
    config = load_config("demo", overrides=["sources.audio=/x"])
    assert sweep_name(config) == sweep_name(load_config("demo", overrides=["sources.audio=/x"]))
    assert sweep_name(config).startswith("sweep-") and sweep_name(config, folds=3).startswith("cv3-")
    assert sweep_name(load_config("demo", overrides=["sources.audio=/y"])) != sweep_name(config)
    assert sweep_name(load_config("demo", overrides=["tune.name=mine"])) == "mine"


@pytest.mark.parametrize(("wanted", "cpus", "gpus", "cluster", "expected"), [
    (4, 1.0, 0.0, {"CPU": 2}, 1),       # 2 cores: one trial, one CPU left for Ray Data
    (0, 0.5, 0.0, {"CPU": 2}, 2),       # 0 = as many as fit
    (3, 1.0, 0.0, {"CPU": 16}, 3),
    (0, 2.0, 0.5, {"CPU": 16, "GPU": 1}, 2),  # fractional GPUs: two trials share one GPU
    (2, 1.0, 0.0, {}, 2),               # an autoscaler starting from zero CPUs: not capped
])
def test_concurrency_is_capped_to_what_the_cluster_holds(wanted, cpus, gpus, cluster, expected):
    got = trial_concurrency(wanted=wanted, cpus_per_trial=cpus, gpus_per_trial=gpus, cluster=cluster,
                            log=lambda _: None)
    assert got == expected


@pytest.mark.parametrize(("cpus", "gpus"), [(4.0, 0.0), (1.0, 2.0)])
def test_a_trial_larger_than_the_cluster_is_refused(cpus, gpus):
    with pytest.raises(ConfigError, match="no trial could start"):
        trial_concurrency(wanted=1, cpus_per_trial=cpus, gpus_per_trial=gpus, cluster={"CPU": 2, "GPU": 1})
