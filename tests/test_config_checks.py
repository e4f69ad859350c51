"""Config combinations Ray would reject with a bare assertion once trials run, refused by the command as typed
right after its config loads, naming the keys, before Ray starts (spectrotune.config_checks and the sections' own
rules in spectrotune.config)."""

from __future__ import annotations

import pytest

@pytest.fixture
def no_ray(monkeypatch):
    from spectrotune import runtime

    monkeypatch.setattr(runtime, "init_ray", lambda **_: pytest.fail("Ray was started for a config to refuse"))


def _cli_error(argv, capsys) -> str:
    from spectrotune.cli import main

    assert main(argv) == 2
    out, err = capsys.readouterr()
    error = err.splitlines()[-1]  # after the command's own messages (the sources it found)
    assert out == "" and error.startswith("spectrotune: error: ") and "Traceback" not in err, err
    return error


def test_a_sweep_whose_grace_period_exceeds_the_epochs_is_refused_at_load(tmp_path, monkeypatch, capsys, no_ray):
    """The command the issue quotes (Ray: ``AssertionError: grace_period must be <= max_t!``), as typed."""
    monkeypatch.chdir(tmp_path)
    err = _cli_error(["tune", "sweep", "--set", "train.epochs=2"], capsys)
    assert "tune.grace_period=3 is more than train.epochs=2: ASHA (tune.scheduler=asha)" in err
    assert "set tune.scheduler=none" in err and list(tmp_path.iterdir()) == []  # nothing written
    space = "--set=tune.space={train.epochs: {choice: [1, 2]}, source: {grid: [gtzan]}}"
    err = _cli_error(["tune", "sweep", "--set", "train.epochs=10", space], capsys)
    assert "tune.grace_period=3 is more than the largest train.epochs in tune.space (2)" in err


def test_the_same_config_without_asha_or_for_cross_validation_passes_that_check(tmp_path, monkeypatch, capsys,
                                                                               no_ray):
    monkeypatch.chdir(tmp_path)  # the next error is sweep.yaml's own source, prepared/gtzan, which is not there
    for argv in (["tune", "sweep", "--set", "train.epochs=2", "--set", "tune.scheduler=none"],
                 ["tune", "sweep", "--set", "train.epochs=3"],
                 ["cv", "sweep", "--source", "gtzan", "--folds", "3", "--set", "train.epochs=2"]):
        assert "prepared/gtzan: not a prepared spectrotune dataset" in _cli_error(argv, capsys)


@pytest.mark.parametrize("override, message", [
    ("tune.reduction_factor=1", "tune.reduction_factor: must be > 1, got 1.0"),
    ("tune.num_samples=0", "tune.num_samples: must be > 0, got 0"),
    ("tune.grace_period=0", "tune.grace_period: must be > 0, got 0"),
    ("train.batch_size=0", "train.batch_size: must be > 0, got 0"),
    ("train.epochs=0", "train.epochs: must be > 0, got 0"),
    ("train.keep_checkpoints=0", "train.keep_checkpoints: must be > 0, got 0"),
    ("train.max_failures=-1", "train.max_failures: must be >= 0, got -1"),
    ("tune.cpus_per_trial=0", "tune.cpus_per_trial: must be > 0, got 0"),
])
def test_values_ray_would_assert_on_are_refused_at_load_naming_the_key(tmp_path, monkeypatch, capsys, no_ray,
                                                                        override, message):
    monkeypatch.chdir(tmp_path)
    assert message in _cli_error(["tune", "sweep", "--set", override], capsys)


def test_more_folds_than_tracks_is_refused_before_ray(tmp_path, monkeypatch, capsys, no_ray):
    import shutil

    from legacy_data import LEGACY_DATASET

    monkeypatch.chdir(tmp_path)
    data = shutil.copytree(LEGACY_DATASET, tmp_path / "data")
    err = _cli_error(["cv", "--set", f"sources.gtzan={data}", "--folds", "50"], capsys)
    assert "--cv 50: only" in err and "tracks to split into 50 folds" in err
