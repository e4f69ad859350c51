"""MLflow behind fail-soft calls: an MLflow that cannot be used is one clear warning (an error with ``strict``), and a
plain local folder is a working store. No server and no Ray here (the server tests are test_runs / test_sweeps)."""

from __future__ import annotations

import logging
import sys

import pytest
from tracking_helpers import free_port

from spectrotune.errors import TrackingError
from spectrotune.tracking.mlflow_sink import MlflowSink
from spectrotune.tracking.runs import open_run


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_unreachable_server_is_one_warning_and_no_sink(caplog):
    uri = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING):
        assert MlflowSink.connect(uri) is None
    (message,) = _warnings(caplog)
    assert message.startswith(f"MLflow tracking URI {uri} cannot be used: [Errno 111] Connection refused")
    assert "going on without MLflow" in message and "--strict-tracking" in message


def test_strict_turns_the_warning_into_an_error():
    with pytest.raises(TrackingError, match=r"cannot be used: \[Errno 111\] Connection refused"):
        MlflowSink.connect(f"http://127.0.0.1:{free_port()}", strict=True)


def test_a_uri_mlflow_does_not_take_is_one_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert MlflowSink.connect("nosuchscheme://tracking") is None
    (message,) = _warnings(caplog)
    assert "nosuchscheme://tracking cannot be used" in message


def test_mlflow_not_installed_says_how_to_install(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: `import mlflow` raises ImportError
    with caplog.at_level(logging.WARNING):
        assert MlflowSink.connect("http://127.0.0.1:5000") is None
    (message,) = _warnings(caplog)
    assert "MLflow is not installed: pip install 'spectrotune[mlflow]'" in message
    with pytest.raises(TrackingError, match=r"pip install 'spectrotune\[mlflow\]'"):
        MlflowSink.connect("http://127.0.0.1:5000", strict=True)


def test_a_local_folder_is_a_store_and_a_recorded_run_is_continued(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sink = MlflowSink.connect("mlruns")  # relative: made absolute (Ray's controller runs elsewhere)
    assert sink is not None and sink.uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    first = open_run(sink, tmp_path / "run", experiment="local", name="r", tags={"k": "v"}, params={"a": "1"})
    sink.log_metrics(first.run_id, {"loss": 0.5}, step=1)
    (tmp_path / "note.txt").write_text("hello")
    sink.log_files(first.run_id, [tmp_path / "note.txt", tmp_path / "missing.txt"])
    sink.end(first.run_id, "done")
    again = open_run(sink, tmp_path / "run", experiment="local", name="r", tags={"k": "v"},
                     params={"a": "2", "b": "3"})
    assert again == first  # the record in the run folder names the run: continued, not a new one
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=sink.uri)
    run = client.get_run(first.run_id)
    assert run.info.status == "RUNNING" and run.data.params == {"a": "1", "b": "3"}
    assert run.data.tags["spectrotune.params_kept"] == "a"
    assert [a.path for a in client.list_artifacts(first.run_id)] == ["note.txt"]
    assert (tmp_path / "mlruns" / "artifacts").is_dir()  # artifacts beside the database, in the folder


def test_log_to_none_attaches_nothing_and_contacts_no_server(tmp_path, caplog):
    from spectrotune.tracking.records import RunRecord
    from spectrotune.tracking.runs import attach_report

    RunRecord.of(tracking_uri=f"http://127.0.0.1:{free_port()}", experiment="e", experiment_id="1",
                 run_id="r").write(tmp_path)  # a bundle that records a run on a server that is gone
    with caplog.at_level(logging.WARNING):
        assert attach_report({}, report_dir=tmp_path, bundle_dir=tmp_path, run_id="none") is None
        assert attach_report({}, report_dir=tmp_path, bundle_dir=tmp_path / "untracked") is None
    assert _warnings(caplog) == []
    with caplog.at_level(logging.WARNING):  # the recorded run: its server is unreachable, one warning
        assert attach_report({"clip_accuracy": 1.0}, report_dir=tmp_path, bundle_dir=tmp_path) is None
    assert len(_warnings(caplog)) == 1
