"""Sweeps and cross-validation on Ray Tune: the space rules, folds and concurrency (fast), then three Ray runs.

The Ray tests share two tiny prepared datasets made here: a GTZAN-layout audio source (4 "genres" of distinct
textures, learnt in one epoch) and a Spotify-layout image source rendered from 3 of those genres. Each
``TorchTrainer.fit`` costs ~20 s of fixed overhead on 2 cores, so the file runs 4 + 2 + 3 fits: the sweep (which
also checks ASHA), the killed-and-resumed sweep driver, and 3-fold cross-validation.
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

import numpy as np
import pytest
import soundfile as sf

from spectrotune import dataset as D
from spectrotune.bundle import load_bundle
from spectrotune.cli import main as cli_main
from spectrotune.config import load_config
from spectrotune.errors import ConfigError, OutputExistsError, SpectrotuneError
from spectrotune.tuning.tune import (
    STATUS_ASHA,
    STATUS_DONE,
    STATUS_PATIENCE,
    Dimension,
    _status,
    build_param_space,
    parse_space,
    stratified_folds,
    sweep_name,
    trial_concurrency,
    tune,
    validate_space,
)

SR = 22050
GENRES = ("blues", "classical", "country", "disco")
# Small, fast trials: a 2-block CNN, constant lr, no early stopping of its own (ASHA decides).
TRIAL = ["train.batch_size=4", "model.name=cnn", "model.width=8", "model.depth=2", "train.schedule=constant",
         "train.warmup_epochs=0", "train.patience=0", "train.shuffle_buffer=64", "evaluate.baselines=false",
         "evaluate.noise_kinds=[]"]


def _clip(genre: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One clip of a "genre" with its own spectro-temporal texture, so one epoch is enough to tell them apart."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    if genre == 0:  # steady harmonic tone: horizontal lines
        f0 = rng.uniform(200, 600)
        y = sum(0.3 / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) for h in (1, 2, 3))
    elif genre == 1:  # broadband noise: a flat texture
        y = 0.3 * rng.standard_normal(n)
    elif genre == 2:  # clicks every 80-150 ms: vertical lines
        y = np.zeros(n)
        period = int(rng.uniform(0.08, 0.15) * SR)
        for start in range(int(rng.integers(0, period)), n - 200, period):
            y[start:start + 200] += rng.standard_normal(200) * np.hanning(200)
    else:  # rising chirps: diagonal lines
        period = rng.uniform(0.2, 0.4)
        y = 0.5 * np.sin(2 * np.pi * np.cumsum(300 * 2 ** (4 * ((t % period) / period))) / SR)
    y = y + 0.005 * rng.standard_normal(n)
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


def _texture_corpus(root: Path, *, tracks: int = 8, seconds: float = 9.0, seed: int = 0,
                    genres: int = len(GENRES)) -> Path:
    for g, genre in enumerate(GENRES[:genres]):
        for k in range(tracks):
            path = root / "genres_original" / genre / f"{genre}.{k:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _clip(g, seconds, np.random.default_rng([seed, g, k])), SR, subtype="PCM_16")
    return root / "genres_original"


@pytest.fixture(scope="module")
def sources(tmp_path_factory, ray_session):
    from spectrotune.sources.spotify import render_spotify_corpus
    from spectrotune.prepare.driver import prepare

    base = tmp_path_factory.mktemp("tune")
    audio = _texture_corpus(base / "corpus")
    # The image source has 3 genres (the audio source 4) and twice the tracks: ~115 train images give the good
    # trial as many steps in its first epoch as the audio source's, so it is clearly above chance when ASHA
    # compares the bad-lr trial with it at epoch 1 (with 8 tracks it sometimes was not).
    render_spotify_corpus(_texture_corpus(base / "image-corpus", tracks=16, genres=3), base / "images", seed=0)
    common = ["noise.enabled=false", "features.n_mels=32", "split.fractions={train: 0.5, valid: 0.25, test: 0.25}"]
    prepare(audio, base / "audio", progress=False, log=lambda _: None, config=load_config(
        "demo", overrides=[*common, "audio.hop_seconds.train=1.0"]))
    prepare(base / "images", base / "spotify", progress=False, log=lambda _: None,
            config=load_config("spotify", overrides=[*common, "features.handcrafted=false"]))
    return {"audio": base / "audio", "spotify": base / "spotify"}


def _config(sources, *extra: str, names=("audio", "spotify")):
    return load_config("demo", overrides=[*TRIAL, *(f"sources.{n}={sources[n]}" for n in names), *extra])


# ----------------------------------------------------------------------------------------------- search space


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


def test_grid_search_makes_choices_a_grid_and_source_varies_fastest():
    dims = parse_space({"train.lr": {"choice": [0.1, 0.2]}, "model.width": {"grid": [8, 16]}})
    grid = build_param_space(dims, sources=["a", "b"], search="grid")
    assert list(grid) == ["source", "train.lr", "model.width"]
    assert grid["source"] == {"grid_search": ["a", "b"]} and grid["train.lr"] == {"grid_search": [0.1, 0.2]}
    random = build_param_space(dims, sources=["a"], search="random")
    assert random["source"] == "a" and random["model.width"] == {"grid_search": [8, 16]}
    assert sorted(random["train.lr"].categories) == [0.1, 0.2]  # a Tune choice, sampled
    optuna = build_param_space(dims, sources=["a", "b"], search="optuna")  # Optuna samples every dimension
    assert sorted(optuna["source"].categories) == ["a", "b"] and sorted(optuna["model.width"].categories) == [8, 16]


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


def test_sweep_names_are_deterministic():
    config = load_config("demo", overrides=["sources.audio=/x"])
    assert sweep_name(config) == sweep_name(load_config("demo", overrides=["sources.audio=/x"]))
    assert sweep_name(config).startswith("sweep-") and sweep_name(config, folds=3).startswith("cv3-")
    assert sweep_name(load_config("demo", overrides=["sources.audio=/y"])) != sweep_name(config)
    assert sweep_name(load_config("demo", overrides=["tune.name=mine"])) == "mine"


def test_an_existing_sweep_is_only_continued_with_resume(tmp_path):
    config = load_config("demo", overrides=["sources.audio=/x", "tune.name=s1"])
    experiment = tmp_path / "sweeps" / "s1"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(b"")  # what Tune writes first
    with pytest.raises(OutputExistsError, match="--resume s1"):
        tune(config, out=tmp_path, log=lambda _: None)
    with pytest.raises(ConfigError, match="no sweep of that name"):
        tune(config, out=tmp_path, resume="s2", log=lambda _: None)


# ----------------------------------------------------------------------------------------------- folds, resources


def test_stratified_folds_are_disjoint_balanced_and_order_independent():
    tracks = {f"{g}.{i:05d}": g for g in ("a", "b", "c") for i in range(7)}
    folds = stratified_folds(tracks, k=3, seed=1)
    assert sorted(t for f in folds for t in f) == sorted(tracks)  # every track exactly once
    for genre in ("a", "b", "c"):
        counts = [sum(tracks[t] == genre for t in f) for f in folds]
        assert max(counts) - min(counts) <= 1
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert stratified_folds(dict(reversed(list(tracks.items()))), k=3, seed=1) == folds
    assert stratified_folds(tracks, k=3, seed=2) != folds
    for k in (1, 22):
        with pytest.raises(ConfigError, match=f"--cv {k}"):
            stratified_folds(tracks, k=k, seed=0)


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


@pytest.mark.parametrize(("scores", "patience", "asha", "expected"), [
    ([0.3, 0.5, 0.6], 0, True, STATUS_DONE),
    ([0.3], 0, True, STATUS_ASHA),
    ([0.5, 0.4], 1, True, STATUS_PATIENCE),
])
def test_status_tells_completion_asha_and_patience_apart(scores, patience, asha, expected):
    config = load_config("demo", overrides=["train.epochs=3", f"train.patience={patience}"])
    history = [{"epoch": i + 1, "valid_clip_accuracy": s} for i, s in enumerate(scores)]
    assert _status(history, error=None, config=config, asha=asha) == expected


# ----------------------------------------------------------------------------------------------- on Ray


def test_sweep_over_audio_and_spotify_sources_stops_a_bad_lr_and_exports_the_best(sources, tmp_path):
    # 2 sources x 2 learning rates = 4 trials x 2 epochs, run one at a time in grid order (source varies
    # fastest): each source's good trial reaches its ASHA rung at epoch 1 first; the lr=1e6 trial then diverges
    # to NaN, predicts one class (chance: 1/4 or 1/3) and is stopped below the good trial's accuracy.
    config = _config(sources, "train.epochs=2", "tune.search=grid", "tune.num_samples=1", "tune.grace_period=1",
                     "tune.reduction_factor=2", "tune.space={train.lr: {grid: [0.01, 1.0e+6]}}")
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
        assert bundle.labels == D.read_manifest(sources[source])["labels"] and len(bundle.labels) == n_genres
        report = json.loads((out / "best" / source / "report" / "report.json").read_text())
        assert report["clip_accuracy"] == best["test_clip_accuracy"]
    assert json.loads((out / "sweep.json").read_text())["trials"] == 4


def test_optuna_search_samples_the_space_and_reports_every_trial(sources, tmp_path):
    # Optuna (the test extra installs it) suggests each trial's lr and width from the space; 2 trials x 1 epoch.
    config = _config(sources, "train.epochs=1", "tune.search=optuna", "tune.num_samples=2", "tune.scheduler=none",
                     "tune.space={train.lr: {loguniform: [0.001, 0.05]}, model.width: {choice: [4, 8]}}",
                     names=("audio",))
    result = tune(config, out=tmp_path / "out", progress=False, log=lambda _: None)
    assert len(result.rows) == 2 and all(r["status"] == STATUS_DONE for r in result.rows)
    lrs = [r["train.lr"] for r in result.rows]
    assert all(0.001 <= lr <= 0.05 for lr in lrs) and lrs[0] != lrs[1]
    assert all(r["model.width"] in (4, 8) for r in result.rows)
    assert result.best["audio"]["trial_id"] in {r["trial_id"] for r in result.rows}
    assert load_bundle(result.best["audio"]["bundle"]).meta["config"]["train"]["lr"] in lrs


def test_failing_trials_are_listed_with_their_error_and_fail_the_run(sources, tmp_path):
    config = _config(sources, "train.variants=[white@3dB]", "tune.num_samples=1", names=("audio",))
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


def test_killed_sweep_driver_resumes_without_rerunning_finished_trials(sources, tmp_path, ray_session):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "spectrotune.cli", "tune", "demo", "--out", str(out), "--no-progress",
               *(f"--set={s}" for s in [*TRIAL, f"sources.audio={sources['audio']}", "train.epochs=1",
                                         "tune.scheduler=none", "tune.search=grid", "tune.num_samples=1",
                                         "tune.name=killed",
                                         "tune.space={train.lr: {grid: [0.01, 0.02]}}"])]
    # The drivers join the test's Ray, like `ray job submit` drivers on a cluster that outlives them.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
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


def test_three_fold_cross_validation_reports_three_disjoint_folds(sources, tmp_path, capsys):
    settings = [*TRIAL, f"sources.audio={sources['audio']}", f"sources.spotify={sources['spotify']}",
                "train.epochs=1", "tune.cpus_per_trial=0.5", "tune.max_concurrent_trials=0"]
    code = cli_main(["cv", "demo", "--folds", "3", "--source", "audio", "--out", str(tmp_path / "cv"),
                     "--no-progress", *(f"--set={s}" for s in settings)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert report["k"] == 3 and list(report["sources"]) == ["audio"]
    folds = report["sources"]["audio"]["folds"]
    assert [f["fold"] for f in folds] == [0, 1, 2]
    seen: dict[str, int] = {}
    for fold in folds:
        for track in fold["tracks"]:
            assert track not in seen, f"{track} in folds {seen[track]} and {fold['fold']}"
            seen[track] = fold["fold"]
        assert 0.0 <= fold["cnn"]["clip_accuracy"] <= 1.0 and fold["cnn"]["status"] == STATUS_DONE
        assert set(fold["baselines"]) >= {"random_forest", "svm_rbf", "knn"}
    # the folds cover exactly the train and valid tracks; the test split stays held out
    held_in = {t for split in ("train", "valid")
               for t in D.read_split(sources["audio"], split, columns=["track_id"]).column("track_id").to_pylist()}
    assert set(seen) == held_in
    summary = report["sources"]["audio"]["summary"]
    assert summary["cnn"]["per_fold"] == [f["cnn"]["clip_accuracy"] for f in folds]
    assert summary["cnn"]["std"] == pytest.approx(np.std(summary["cnn"]["per_fold"], ddof=1))
    assert "±" in (tmp_path / "cv" / "cv.md").read_text()


def test_dimension_candidates_cover_both_ends_of_a_range():
    assert Dimension("model.width", "randint", (8, 33)).candidates() == [8, 32]  # hi is exclusive, as in Tune
    assert not Dimension("model.width", "choice", (8,)).swept and Dimension("train.lr", "uniform", (0.1, 1)).swept
