"""Sweeps on Ray Tune (``spectrotune tune``): the config errors caught before Ray starts (fast), then the Ray runs.

The Ray tests share two tiny prepared datasets (tests/tune_sources.py, the ``sources`` fixture of
tests/tuning/conftest.py). Each ``TorchTrainer.fit`` costs ~20 s of fixed overhead on 2 cores, so the file runs
4 + 2 + 1 + 2 fits: the sweep (which also checks ASHA), Optuna search, a failing trial, and the killed-and-resumed
sweep driver.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tune_sources import TRIAL, sweep_config

from spectrotune import dataset as D
from spectrotune.bundle import load_bundle
from spectrotune.config import load_config
from spectrotune.errors import ConfigError, OutputExistsError, SpectrotuneError
from spectrotune.tuning.results import STATUS_ASHA, STATUS_DONE
from spectrotune.tuning.sweep import tune


# ----------------------------------------------------------------------------------------------- before Ray


def test_source_names_are_checked_and_sources_are_required(tmp_path):
    config = load_config("demo", overrides=["sources.audio=/x", "tune.space={source: {grid: [audio, vinyl]}}"])
    with pytest.raises(ConfigError, match="vinyl"):
        tune(config, out=tmp_path, log=lambda _: None)
    with pytest.raises(ConfigError, match=r"sources\.<name>=PATH"):
        tune(load_config("demo"), out=tmp_path, log=lambda _: None)


def test_optuna_search_without_optuna_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if not installed: `import optuna` raises ImportError
    config = load_config("demo", overrides=["sources.audio=/x", "tune.search=optuna"])
    with pytest.raises(ConfigError, match=r"pip install spectrotune\[optuna\]"):
        tune(config, out=tmp_path, log=lambda _: None)


def test_an_existing_sweep_is_only_continued_with_resume(tmp_path):
    config = load_config("demo", overrides=["sources.audio=/x", "tune.name=s1"])
    experiment = tmp_path / "sweeps" / "s1"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(b"")  # what Tune writes first
    with pytest.raises(OutputExistsError, match="--resume s1"):
        tune(config, out=tmp_path, log=lambda _: None)
    with pytest.raises(ConfigError, match="no sweep of that name"):
        tune(config, out=tmp_path, resume="s2", log=lambda _: None)


# ----------------------------------------------------------------------------------------------- on Ray


@pytest.mark.integration
def test_sweep_over_audio_and_spotify_sources_stops_a_bad_lr_and_exports_the_best(sources, tmp_path):
    # 2 sources x 2 learning rates = 4 trials x 2 epochs, run one at a time in grid order (source varies
    # fastest): each source's good trial reaches its ASHA rung at epoch 1 first; the lr=1e6 trial then diverges
    # to NaN, predicts one class (chance: 1/4 or 1/3) and is stopped below the good trial's accuracy.
    config = sweep_config(sources, "train.epochs=2", "tune.search=grid", "tune.num_samples=1",
                          "tune.grace_period=1", "tune.reduction_factor=2",
                          "tune.space={train.lr: {grid: [0.01, 1.0e+6]}}")
    result = tune(config, out=tmp_path / "out", progress=False, log=lambda _: None)
    out = tmp_path / "out"
    rows = {(r["source"], r["train.lr"]): r for r in result.rows}
    assert sorted(rows) == [("audio", 0.01), ("audio", 1e6), ("spotify", 0.01), ("spotify", 1e6)]
    for source in ("audio", "spotify"):
        good, bad = rows[(source, 0.01)], rows[(source, 1e6)]
        assert good["status"] == STATUS_DONE and good["epochs_run"] == 2
        assert bad["status"] == STATUS_ASHA and bad["epochs_run"] == 1
        assert good["valid_clip_accuracy"] > bad["valid_clip_accuracy"]
    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert {r["source"] for r in table} == {"audio", "spotify"} and len(table) == 4
    for column in ("trial_id", "train.lr", "status", "best_epoch", "epochs_run", "valid_clip_accuracy"):
        assert column in table[0]
    markdown = (out / "results.md").read_text()
    assert "| audio |" in markdown and "| spotify |" in markdown and STATUS_ASHA in markdown
    for png in ("trial_curves.png", "accuracy_vs_params.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the best trial of each source is a bundle with that dataset's own labels, evaluated on its test split
    for source, n_genres in (("audio", 4), ("spotify", 3)):
        best = result.best[source]
        assert best["trial_id"] == rows[(source, 0.01)]["trial_id"]
        bundle = load_bundle(out / "best" / source / "bundle")
        assert bundle.labels == list(D.read_manifest(sources[source]).labels) and len(bundle.labels) == n_genres
        report = json.loads((out / "best" / source / "report" / "report.json").read_text())
        assert report["clip_accuracy"] == best["test_clip_accuracy"]
    assert json.loads((out / "sweep.json").read_text())["trials"] == 4


@pytest.mark.integration
def test_optuna_search_samples_the_space_and_reports_every_trial(sources, tmp_path):
    # Optuna (the test extra installs it) suggests each trial's lr and width from the space; 2 trials x 1 epoch.
    config = sweep_config(sources, "train.epochs=1", "tune.search=optuna", "tune.num_samples=2",
                          "tune.scheduler=none",
                          "tune.space={train.lr: {loguniform: [0.001, 0.05]}, model.width: {choice: [4, 8]}}",
                          names=("audio",))
    result = tune(config, out=tmp_path / "out", progress=False, log=lambda _: None)
    assert len(result.rows) == 2 and all(r["status"] == STATUS_DONE for r in result.rows)
    lrs = [r["train.lr"] for r in result.rows]
    assert all(0.001 <= lr <= 0.05 for lr in lrs) and lrs[0] != lrs[1]
    assert all(r["model.width"] in (4, 8) for r in result.rows)
    assert result.best["audio"]["trial_id"] in {r["trial_id"] for r in result.rows}
    assert load_bundle(result.best["audio"]["bundle"]).meta.config["train"]["lr"] in lrs


@pytest.mark.integration
def test_failing_trials_are_listed_with_their_error_and_fail_the_run(sources, tmp_path):
    config = sweep_config(sources, "train.variants=[white@3dB]", "tune.num_samples=1", names=("audio",))
    with pytest.raises(SpectrotuneError, match=r"all 1 trials failed .*white@3dB"):
        tune(config, out=tmp_path, progress=False, log=lambda _: None)
    with open(tmp_path / "results.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["status"] == "ERROR" and "white@3dB" in row["error"] and row["fits"] == "0"


def _experiment_statuses(experiment: Path) -> dict[str, str]:
    files = sorted(glob.glob(str(experiment / "experiment_state-*.json")))
    try:
        state = json.loads(Path(files[-1]).read_text()) if files else {"trial_data": []}
    except (OSError, ValueError):  # caught while Tune rewrites it
        return {}
    trials = [json.loads(t[0]) for t in state["trial_data"]]
    return {t["trial_id"]: t["status"] for t in trials}


@pytest.mark.integration
def test_killed_sweep_driver_resumes_without_rerunning_finished_trials(sources, tmp_path, ray_session):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "spectrotune.cli", "tune", "demo", "--out", str(out), "--no-progress",
               *(f"--set={s}" for s in [*TRIAL, f"sources.audio={sources['audio']}", "train.epochs=1",
                                         "tune.scheduler=none", "tune.search=grid", "tune.num_samples=1",
                                         "tune.name=killed",
                                         "tune.space={train.lr: {grid: [0.01, 0.02]}}"])]
    # The drivers join the test's Ray, like `ray job submit` drivers on a cluster that outlives them.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    experiment = out / "sweeps" / "killed"
    with open(tmp_path / "first.log", "w") as log:
        driver = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 240
        while STATUS_DONE not in _experiment_statuses(experiment).values():
            assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.5)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = _experiment_statuses(experiment)
    finished = [t for t, s in before.items() if s == STATUS_DONE]
    assert len(finished) == 1  # killed before the second trial finished

    resumed = subprocess.run([*command, "--resume", "killed"], env=env, capture_output=True, text=True, timeout=300,
                             check=False)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    with open(out / "results.csv", newline="") as f:
        rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    assert len(rows) == 2 and {r["status"] for r in rows.values()} == {STATUS_DONE}
    done = rows[finished[0]]
    assert (done["driver_starts"], done["fits"]) == ("1", "1")  # not started again after the resume
    (other,) = set(rows) - set(finished)
    assert rows[other]["epochs_run"] == "1" and int(rows[other]["fits"]) >= 1
    assert (out / "best" / "audio" / "bundle" / "model.safetensors").is_file()
