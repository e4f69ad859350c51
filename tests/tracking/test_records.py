"""Tracking records as plain data: parameters from a config, metric names, the run record file, tracking URIs."""

from __future__ import annotations

import json
import math

import pytest

from spectrotune.config import load_config
from spectrotune.errors import ConfigError, TrackingError
from spectrotune.schema import METRIC_KEYS, TRACKING_JSON
from spectrotune.tracking.records import (MAX_PARAM_CHARS, RunRecord, epoch_metrics, flat_params, normalize_uri,
                                          read_record, report_metrics)


def test_flat_params_one_per_leaf_json_for_non_strings_and_no_tracking_section():
    config = load_config("demo", overrides=["train.lr=0.01", "tracking.mlflow_uri=http://127.0.0.1:5000",
                                            "sources.audio=/data/audio", "train.variants=[clean]"])
    params = flat_params(config.to_dict())
    assert params["train.lr"] == "0.01" and params["model.name"] == config.model.name
    assert params["sources.audio"] == "/data/audio" and params["train.variants"] == '["clean"]'
    assert params["train.run_name"] == "null" and params["noise.enabled"] in ("true", "false")
    assert json.loads(params["noise.variants"]) == config.to_dict()["noise"]["variants"]
    assert not any(k.startswith("tracking") for k in params)
    assert all(isinstance(v, str) for v in params.values())


def test_flat_params_cuts_values_mlflow_would_refuse():
    params = flat_params({"sources": {"x": "a" * (MAX_PARAM_CHARS + 50)}})
    assert len(params["sources.x"]) == MAX_PARAM_CHARS and params["sources.x"].endswith("...")


def test_epoch_metrics_are_the_history_keys_at_step_epoch_without_nan():
    report = {key: float(i) for i, key in enumerate(METRIC_KEYS)}
    report.update({"epoch": 3, "train_loss": math.nan, "checkpoint_dir_name": "x", "timestamp": 1})
    epoch, values = epoch_metrics(report)
    assert epoch == 3
    assert set(values) == set(METRIC_KEYS) - {"epoch", "train_loss"}
    with pytest.raises(ConfigError, match="no 'epoch'"):
        epoch_metrics({"loss": 1.0})


def test_report_metrics_names_every_number_mlflow_can_take():
    report = {"clip_accuracy": 0.75, "segment_accuracy": 0.5, "macro_f1": 0.7,
              "robustness": {"available": True, "results": [{"variant": "white@10dB", "clip_accuracy": 0.5},
                                                            {"variant": "pink@-5dB", "clip_accuracy": 0.25}]},
              "baselines": {"available": True, "results": {"rf": {"test_accuracy": 0.6}}}}
    assert report_metrics(report) == {
        "test_clip_accuracy": 0.75, "test_segment_accuracy": 0.5, "test_macro_f1": 0.7,
        "test_clip_accuracy_white_10dB": 0.5, "test_clip_accuracy_pink_-5dB": 0.25,
        "baseline_rf_test_accuracy": 0.6}
    parent = report_metrics(report, prefix="best/audio/test_")
    assert parent["best/audio/test_clip_accuracy"] == 0.75 and parent["best/audio/baseline_rf_test_accuracy"] == 0.6
    unavailable = {"clip_accuracy": 1.0, "robustness": {"available": False}, "baselines": {"available": False}}
    assert report_metrics(unavailable) == {"test_clip_accuracy": 1.0}


def test_normalize_uri(tmp_path):
    assert normalize_uri("http://127.0.0.1:5000") == ("http://127.0.0.1:5000", None)
    assert normalize_uri("databricks") == ("databricks", None)
    assert normalize_uri("sqlite:////abs/m.db") == ("sqlite:////abs/m.db", None)
    assert normalize_uri("sqlite:///rel/m.db", base=tmp_path) == (f"sqlite:///{tmp_path / 'rel' / 'm.db'}", None)
    uri, artifacts = normalize_uri("mlruns", base=tmp_path)
    assert uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert artifacts == (tmp_path / "mlruns" / "artifacts").as_uri()


def test_run_record_round_trip_and_a_bad_file_names_itself(tmp_path):
    assert read_record(tmp_path) is None
    record = RunRecord.of(tracking_uri="http://127.0.0.1:5000", experiment="e", experiment_id="1", run_id="abc")
    record.write(tmp_path)
    assert read_record(tmp_path) == record
    (tmp_path / TRACKING_JSON).write_text("{not json")
    with pytest.raises(TrackingError, match=str(tmp_path / TRACKING_JSON)):
        read_record(tmp_path)
    (tmp_path / TRACKING_JSON).write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(TrackingError, match="unsupported tracking format 'other/9'"):
        read_record(tmp_path)
