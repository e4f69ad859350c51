"""Fixtures of the tracking tests: a real MLflow tracking server on 127.0.0.1 (started once per session, in its own
process group, ended by that group's id), its client, and one tiny prepared dataset (helpers:
tests/tracking_helpers.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

import pytest
from tracking_helpers import free_port, mlflow_command


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """``http://127.0.0.1:<port>`` of an MLflow server (sqlite backend, artifacts proxied into a temp folder)."""
    base = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [mlflow_command(), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}",
               "--default-artifact-root", "mlflow-artifacts:/", "--artifacts-destination", str(base / "artifacts")]
    log = open(base / "server.log", "wb")  # noqa: SIM115 - open for the server's whole life
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=base)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start:\n" + (base / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own group: the server, its uvicorn worker and job runners
        try:
            server.wait(timeout=5)  # it can take 15 s to stop its job runners; the data is in sqlite already
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture(scope="session")
def client(mlflow_server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_server)


@pytest.fixture(scope="session")
def tracked_data(tmp_path_factory, ray_session):
    """A tiny prepared audio dataset (4 textures, 8 tracks each) that one epoch learns."""
    from tune_sources import texture_corpus

    from spectrotune.config import load_config
    from spectrotune.prepare.driver import prepare

    base = tmp_path_factory.mktemp("tracking-data")
    corpus = texture_corpus(base / "corpus")
    config = load_config("demo", overrides=["noise.enabled=false", "features.n_mels=32", "audio.hop_seconds.train=1.0",
                                            "split.fractions={train: 0.5, valid: 0.25, test: 0.25}"])
    prepare(corpus, base / "data", config=config, progress=False, log=lambda _: None)
    return base / "data"
