"""Sweeps and cross-validation tracked to a real MLflow server and TensorBoard: one nested MLflow run per trial under
the sweep's parent run, with the sampled parameters, per-epoch metrics and final status; the best bundle's
evaluation on the parent; one TensorBoard folder per trial under ``OUT/tb``.

A two-trial sweep run as the README types it (2 x 2 epochs, ASHA stops the diverging one; the command starts its
own local Ray) and a two-fold cross-validation (2 x 1 epoch); the end-of-sweep bookkeeping (statuses, including a
failed trial) is also checked alone, without Ray.
"""

from __future__ import annotations

import csv
import json

import pytest
from tracking_helpers import TINY, sets, spectrotune

from spectrotune.config import load_config
from spectrotune.tracking.records import read_record
from spectrotune.tracking.sweeps import TrialOutcome, start_sweep_tracking
from spectrotune.tracking.tensorboard import read_scalars
from spectrotune.tuning.cv import cross_validate
from spectrotune.tuning.results import STATUS_ASHA, STATUS_DONE, STATUS_ERROR

pytestmark = pytest.mark.integration


def _children(client, parent):
    runs = client.search_runs([parent.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'")
    return {r.info.run_name: r for r in runs}


def test_sweep_logs_nested_trial_runs_with_status_and_the_best_evaluation(tracked_data, mlflow_server, client,
                                                                         tmp_path):
    out = tmp_path / "out"
    done = spectrotune("tune", "demo", "--out", out, "--no-progress", *sets(
        *TINY, f"sources.audio={tracked_data}", "train.epochs=2", "tune.search=grid", "tune.num_samples=1",
        "tune.grace_period=1", "tune.reduction_factor=2", "tune.space={train.lr: {grid: [0.01, 1.0e+6]}}",
        "tune.name=tracked-sweep", f"tracking.mlflow_uri={mlflow_server}"))
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "results.csv", newline="") as f:
        rows = {float(r["train.lr"]): r for r in csv.DictReader(f)}
    good, bad = rows[0.01], rows[1e6]
    assert (good["status"], bad["status"]) == (STATUS_DONE, STATUS_ASHA)
    best = json.loads((out / "sweep.json").read_text())["best"]["audio"]

    experiment = out / "sweeps" / "tracked-sweep"
    parent = read_record(experiment)
    run = client.get_run(parent.run_id)
    assert run.info.run_name == "tracked-sweep" and run.info.status == "FINISHED"
    assert client.get_experiment(parent.experiment_id).name == "tracked-sweep"  # default: the sweep's name
    assert run.data.tags["spectrotune.kind"] == "sweep" and run.data.params["tune.search"] == "grid"
    assert run.data.metrics["best/audio/test_clip_accuracy"] == pytest.approx(best["test_clip_accuracy"])
    assert run.data.metrics["best/audio/valid_clip_accuracy"] == pytest.approx(best["valid_clip_accuracy"])
    assert run.data.tags["best/audio/trial_id"] == good["trial_id"]
    parent_files = {a.path for a in client.list_artifacts(parent.run_id)}
    assert {"results.csv", "results.md", "sweep.json", "trial_curves.png"} <= parent_files
    assert "best/audio/confusion_matrix.png" in {a.path for a in client.list_artifacts(parent.run_id, "best/audio")}

    children = _children(client, parent)
    assert set(children) == {good["trial_id"], bad["trial_id"]}
    for row, status, steps in ((good, "FINISHED", [1, 2]), (bad, "KILLED", [1])):
        child = children[row["trial_id"]]
        assert child.info.status == status and child.data.tags["spectrotune.status"] == row["status"]
        assert float(child.data.params["train.lr"]) == float(row["train.lr"]) and child.data.params["source"] == "audio"
        assert json.loads(child.data.tags["spectrotune.sampled"])["train.lr"] == float(row["train.lr"])
        history = client.get_metric_history(child.info.run_id, "valid_clip_accuracy")
        assert [m.step for m in history] == steps
        assert child.data.metrics["epochs_run"] == len(steps)
    # the best bundle records its trial's run, and its evaluation was attached there
    assert read_record(out / "best" / "audio" / "bundle").run_id == children[good["trial_id"]].info.run_id
    assert client.get_run(children[good["trial_id"]].info.run_id).data.metrics["test_clip_accuracy"] == \
        pytest.approx(best["test_clip_accuracy"])

    # TensorBoard: OUT/tb/<trial id>, one folder per trial, and nothing in Ray Tune's trial folders any more
    for row, steps in ((good, [1, 2]), (bad, [1])):
        assert [s for s, _ in read_scalars(out / "tb" / row["trial_id"])["valid_clip_accuracy"]] == steps
    assert not list(experiment.glob("*/events.out.tfevents.*"))


def test_cross_validation_logs_one_nested_run_per_fold(tracked_data, mlflow_server, client, tmp_path):
    config = load_config("demo", overrides=[*TINY, f"sources.audio={tracked_data}", "train.epochs=1",
                                            f"tracking.mlflow_uri={mlflow_server}", "tracking.experiment=cv-tests"])
    result = cross_validate(config, out=tmp_path / "out", folds=2, progress=False, log=lambda _: None)
    parent = read_record(result.path)
    run = client.get_run(parent.run_id)
    assert run.data.tags["spectrotune.kind"] == "cv" and run.info.status == "FINISHED"
    summary = result.sources["audio"]["summary"]["cnn"]
    assert run.data.metrics["audio/cnn/mean"] == pytest.approx(summary["mean"])
    assert {"cv.json", "cv.md"} <= {a.path for a in client.list_artifacts(parent.run_id)}
    children = _children(client, parent)
    folds = {f["cnn"]["trial_id"]: f["fold"] for f in result.sources["audio"]["folds"]}
    assert set(children) == set(folds)
    for trial_id, child in children.items():
        assert child.data.params["fold"] == str(folds[trial_id]) and child.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")] == [1]


def test_finish_gives_each_trial_its_status_and_the_parent_its_numbers(mlflow_server, client, tmp_path):
    # the end-of-sweep bookkeeping alone (no Ray): three trials that ended three ways
    config = load_config("demo", overrides=[f"tracking.mlflow_uri={mlflow_server}", "tracking.experiment=finish"])
    session = start_sweep_tracking(config, kind="sweep", name="finish-check", experiment_dir=str(tmp_path / "exp"),
                                   out=tmp_path / "out", published=tmp_path / "out",
                                   trial_folder=lambda t: str(tmp_path / "exp" / "trial_state" / t),
                                   trial_config=lambda params: config, log=lambda _: None)
    for trial in ("t_done", "t_asha", "t_error"):
        session.trial_started(trial, {"source": "audio", "train.lr": 0.1})
    session.trial_epoch("t_done", {"source": "audio"}, {"epoch": 1, "valid_clip_accuracy": 0.5})
    outcomes = [TrialOutcome("t_done", STATUS_DONE, "done", {"epochs_run": 1.0}),
                TrialOutcome("t_asha", STATUS_ASHA, "stopped"), TrialOutcome("t_error", STATUS_ERROR, "failed")]
    assert session.finish(outcomes, metrics={"best/audio/test_clip_accuracy": 0.75}, files={}) is None
    children = _children(client, session.parent)
    assert {name: (r.info.status, r.data.tags["spectrotune.status"]) for name, r in children.items()} == {
        "t_done": ("FINISHED", STATUS_DONE), "t_asha": ("KILLED", STATUS_ASHA), "t_error": ("FAILED", STATUS_ERROR)}
    assert children["t_done"].data.metrics == {"valid_clip_accuracy": 0.5, "epochs_run": 1.0}
    parent = client.get_run(session.parent.run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics == {"best/audio/test_clip_accuracy": 0.75}
    assert read_record(tmp_path / "exp" / "trial_state" / "t_asha").run_id == children["t_asha"].info.run_id
