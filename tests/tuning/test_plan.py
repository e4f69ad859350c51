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


def test_a_sweep_over_every_model_reads_its_checkpoints_here_and_refuses_a_source_they_cannot_read(
        tmp_path, musicnn_cache, monkeypatch):
    """cnn, crnn, musicnn and vgg all train on a musicnn-front-end source, the two checkpoints they start from read
    once by the sweep's driver; a log-mel source is refused for musicnn, naming the source."""
    from musicnn_manifests import write_manifest

    from spectrotune.tuning.plan import trial_backbones
    from spectrotune.tuning.space import parse_space, validate_space

    monkeypatch.setenv("SPECTROTUNE_CACHE", str(musicnn_cache))
    musicnn, logmel = write_manifest(tmp_path / "m", musicnn=True), write_manifest(tmp_path / "l", musicnn=False)
    config = load_config("musicnn", overrides=["model.pretrained=null", f"sources.gtzan_musicnn={musicnn}",
                                               "tune.space={model.name: {grid: [cnn, crnn, musicnn, vgg]}}"])
    dims = parse_space(config.tune.space)
    validate_space(config, dims)
    backbones = trial_backbones(config, dims, dict(config.sources))
    assert sorted(backbones) == ["MSD_musicnn", "MSD_vgg"]
    assert [b.model for b in backbones.values()] == list(backbones) and all(len(b.sha256) == 64 for b in backbones.values())
    with pytest.raises(ConfigError, match=r"tune.space: source gtzan \(.*/l\): model.name=musicnn reads the musicnn "
                                          "front end, but the dataset was prepared with features.frontend=logmel"):
        trial_backbones(config, dims, {"gtzan_musicnn": str(musicnn), "gtzan": str(logmel)})
    assert trial_backbones(load_config("demo"), [], {"gtzan": str(logmel)}) == {}  # cnn: nothing to read
