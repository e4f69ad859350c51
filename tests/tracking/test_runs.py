"""``spectrotune train`` and ``evaluate`` tracked to a real MLflow server and TensorBoard, as the README's Tracking
section types them; a rerun continuing the same MLflow run; an unreachable server (one warning, a normal local
result); ``--strict-tracking``.

Each ``train`` costs one Ray Train fit (~20 s on 2 cores): the module runs three (train, its resumption, the run
against an unreachable server); each ``spectrotune train`` command starts its own local Ray, as a user's does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tracking_helpers import TINY, free_port, sets, spectrotune

from spectrotune.config import load_config
from spectrotune.schema import METRIC_KEYS, TRACKING_JSON
from spectrotune.tracking.records import read_record
from spectrotune.tracking.tensorboard import read_scalars
from spectrotune.training.driver import train

LEGACY = Path(__file__).resolve().parents[1] / "data" / "main-325b798"


@pytest.fixture(scope="module")
def tracked(tracked_data, mlflow_server, client, ray_session, tmp_path_factory):
    """train (1 epoch), evaluate, train again with 2 epochs (the same run name resumes): what each left."""
    out = tmp_path_factory.mktemp("tracked") / "out"
    settings = [*TINY, "train.run_name=tracked", f"tracking.mlflow_uri={mlflow_server}",
                "tracking.experiment=tracking-tests", "tracking.tags={team: audio}", "tracking.log_bundle=true"]
    first = spectrotune("train", "demo", "--data", tracked_data, "--out", out, "--no-progress",
                        *sets(*settings, "train.epochs=1"))
    assert first.returncode == 0, first.stderr[-3000:]
    record = read_record(out / "runs" / "tracked")
    after_first = {"status": client.get_run(record.run_id).info.status,
                   "steps": [m.step for m in client.get_metric_history(record.run_id, "valid_clip_accuracy")]}
    evaluated = spectrotune("evaluate", out / "bundle", "--data", tracked_data, "--no-baselines")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    second = spectrotune("train", "demo", "--data", tracked_data, "--out", out, "--no-progress",
                         *sets(*settings, "train.epochs=2"))
    assert second.returncode == 0, second.stderr[-3000:]
    return {"out": out, "record": record, "after_first": after_first, "first": first, "second": second,
            "evaluated": evaluated}


@pytest.mark.integration
def test_train_run_has_the_config_tags_epoch_metrics_and_artifacts(tracked, client, mlflow_server):
    record = tracked["record"]
    run = client.get_run(record.run_id)
    assert record.tracking_uri == mlflow_server and run.info.run_name == "tracked"
    assert client.get_experiment(run.info.experiment_id).name == "tracking-tests"
    params = run.data.params
    assert params["model.name"] == "cnn" and params["model.width"] == "8" and params["train.batch_size"] == "4"
    assert not any(k.startswith("tracking.") for k in params)
    tags = run.data.tags
    latest = load_config("demo", overrides=[*TINY, "train.run_name=tracked", "train.epochs=2"])
    assert tags["spectrotune.config_hash"] == latest.hash() and tags["team"] == "audio"  # the latest invocation's
    assert tags["spectrotune.kind"] == "train" and len(tags["spectrotune.dataset_id"]) == 12
    for key in set(METRIC_KEYS) - {"epoch"}:  # every history key, one value per epoch, at step = epoch
        assert [m.step for m in client.get_metric_history(record.run_id, key)] == [1, 2], key
    top = {a.path for a in client.list_artifacts(record.run_id)}
    assert {"history.json", "train.log", "curves.png", "config.yaml", "bundle"} <= top
    assert "bundle/model.safetensors" in {a.path for a in client.list_artifacts(record.run_id, "bundle")}
    assert "tracking: MLflow run " + record.run_id in tracked["first"].stderr


@pytest.mark.integration
def test_rerun_continues_the_same_mlflow_run(tracked, client):
    record, out = tracked["record"], tracked["out"]
    assert tracked["after_first"] == {"status": "FINISHED", "steps": [1]}
    assert read_record(out / "runs" / "tracked") == record  # the rerun kept the run, it did not open another
    runs = client.search_runs([record.experiment_id], filter_string="attributes.run_name = 'tracked'")
    assert [r.info.run_id for r in runs] == [record.run_id]
    run = client.get_run(record.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "1" and run.data.tags["spectrotune.params_kept"] == "train.epochs"
    assert [m.step for m in client.get_metric_history(record.run_id, "epoch_seconds")] == [1, 2]
    assert read_record(out / "bundle") == record  # evaluate finds the run through the bundle


@pytest.mark.integration
def test_tensorboard_events_hold_every_epoch_of_both_invocations(tracked):
    folder = tracked["out"] / "tb" / "tracked"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 2  # one per invocation
    scalars = read_scalars(folder)
    assert set(scalars) == set(METRIC_KEYS) - {"epoch"}
    assert [step for step, _ in scalars["valid_clip_accuracy"]] == [1, 2]
    assert all(0.0 <= value <= 1.0 for _, value in scalars["valid_clip_accuracy"])


@pytest.mark.integration
def test_evaluate_attaches_its_metrics_and_plots_to_the_bundle_run(tracked, client):
    run_id = tracked["record"].run_id
    assert f"report attached to MLflow run {run_id}" in tracked["evaluated"].stderr
    metrics = client.get_run(run_id).data.metrics
    assert 0.0 <= metrics["test_clip_accuracy"] <= 1.0 and "test_macro_f1" in metrics
    assert "test_clip_accuracy_white_10dB" in metrics  # the robustness table, per variant
    files = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/robustness.png", "evaluation/report.json"} <= files


@pytest.mark.integration
def test_evaluate_log_to_attaches_to_a_given_run(mlflow_server, client, tmp_path):
    experiment = client.create_experiment("log-to")
    run_id = client.create_run(experiment, run_name="elsewhere").info.run_id
    done = spectrotune("evaluate", LEGACY / "bundle", "--data", LEGACY / "dataset", "--out", tmp_path / "report",
                       "--no-baselines", "--log-to", run_id, "--tracking-uri", mlflow_server)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test_clip_accuracy" in client.get_run(run_id).data.metrics
    assert "evaluation/confusion_matrix.png" in {a.path for a in client.list_artifacts(run_id, "evaluation")}
    missing = spectrotune("evaluate", LEGACY / "bundle", "--data", LEGACY / "dataset", "--out", tmp_path / "r2",
                          "--no-baselines", "--log-to", run_id)
    assert missing.returncode == 2 and "no MLflow tracking URI" in missing.stderr
    assert (tmp_path / "r2" / "report.json").is_file()  # written before the error


@pytest.mark.integration
def test_unreachable_server_warns_once_and_the_run_is_complete_locally(tracked_data, tmp_path, caplog):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = load_config("demo", overrides=[*TINY, "train.epochs=1", f"tracking.mlflow_uri={uri}"])
    with caplog.at_level(logging.WARNING):
        result = train(tracked_data, tmp_path / "out", config=config, progress=False, log=lambda _: None)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and uri in r.getMessage()]
    assert len(warnings) == 1 and "Connection refused" in warnings[0]
    assert "going on without MLflow" in warnings[0] and "--strict-tracking" in warnings[0]
    assert (tmp_path / "out" / "bundle" / "model.safetensors").is_file() and len(result.history) == 1
    assert (tmp_path / "out" / "history.json").is_file() and (tmp_path / "out" / "curves.png").is_file()
    assert not (tmp_path / "out" / "bundle" / TRACKING_JSON).exists()
    (folder,) = (tmp_path / "out" / "tb").iterdir()  # TensorBoard still written
    assert [step for step, _ in read_scalars(folder)["train_loss"]] == [1]


def test_strict_tracking_fails_before_training(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    done = spectrotune("train", "demo", "--data", LEGACY / "dataset", "--out", tmp_path / "out", "--no-progress",
                       "--set", f"tracking.mlflow_uri={uri}", "--strict-tracking", timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"MLflow tracking URI {uri} cannot be used: [Errno 111] Connection refused" in done.stderr
    assert not (tmp_path / "out" / "runs").exists() or not any((tmp_path / "out" / "runs").iterdir())
