"""The musicnn-embedding baselines through Ray Data, as `spectrotune baseline` runs them: a log-mel dataset's tracks
embedded from its source audio (the penultimate layer here; the pooled vectors of a musicnn-front-end dataset's own
rows are tests/training/test_transfer_train.py's evaluate), and the one line a missing cache leaves instead.

The source may be an ``s3://`` prefix (the loopback S3 server of tests/s3_server.py): without Ray, its tracks are
listed by URI and the embedder reads each object into the vectors of the local copy's file, naming an object it
cannot read as a local file is named; with Ray, ``spectrotune baseline`` as a child process (the actors need the
server's AWS variables, so it starts its own Ray with a private ``RAY_TMPDIR``) gives the local source's results."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from legacy_data import legacy_corpus, legacy_dataset, track_file
from ray_processes import kill_group
from s3_server import moto_s3

from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.cli import main
from spectrotune.config import load_config
from spectrotune.evaluation.embedding_data import Embedder
from spectrotune.evaluation.embeddings import _source_files
from spectrotune.models.pretrained import read_pretrained
from spectrotune.prepare.driver import prepare
from spectrotune.sources.synth.corpus import generate_corpus

BUCKET = "spectrotune-embeddings"
RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def s3_env():
    with moto_s3(BUCKET) as env, pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


@pytest.fixture(scope="module")
def logmel_data(tmp_path_factory, ray_session):
    base = tmp_path_factory.mktemp("embeddings")
    generate_corpus(base / "corpus", genres=2, tracks=6, seconds=3.5, seed=1)
    config = load_config("demo", overrides=["noise.enabled=false", "features.n_mels=32"])
    prepare(base / "corpus", base / "data", config=config, progress=False, log=lambda _: None)
    return base / "data"


@pytest.fixture(scope="module")
def local_run(logmel_data, musicnn_cache, tmp_path_factory):
    """``spectrotune baseline --data DATA --embeddings penultimate --out B`` on the local source: (B, its stdout)."""
    out, printed = tmp_path_factory.mktemp("local-baseline") / "b", io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.setenv("SPECTROTUNE_CACHE", str(musicnn_cache))
        assert main(["baseline", "--data", str(logmel_data), "--embeddings", "penultimate", "--out", str(out)]) == 0
    return out, printed.getvalue()


@pytest.mark.integration
def test_baseline_embeds_a_log_mel_datasets_tracks_from_its_source_audio(logmel_data, local_run):
    out, printed = local_run
    saved = json.loads((out / "baselines.json").read_text())
    n_test = len(set(D.read_split(logmel_data, "test", columns=[D.TRACK_ID]).column(D.TRACK_ID).to_pylist()))
    for estimator in ("svm_rbf", "logistic_regression"):
        row = saved[f"MSD_musicnn embeddings (penultimate) + {estimator}"]
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["n_test"] == n_test and row["n_train"] >= 4
    assert "random_forest" in saved and "notes" not in saved  # the handcrafted ones beside them
    assert "| MSD_musicnn embeddings (penultimate) + svm_rbf |" in printed


@pytest.mark.integration
def test_without_the_cache_the_report_says_so_in_one_line(logmel_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECTROTUNE_CACHE", str(tmp_path / "empty"))
    assert main(["baseline", "--data", str(logmel_data), "--out", str(tmp_path / "b")]) == 0
    saved = json.loads((tmp_path / "b" / "baselines.json").read_text())
    assert "notes" not in saved  # baselines.json maps model names to results, nothing else
    (note,) = [line for line in (tmp_path / "b" / "baselines.md").read_text().splitlines()
               if line.startswith("musicnn embeddings not run")]
    assert note.startswith("musicnn embeddings not run: pretrained model MSD_musicnn is not in the cache")
    assert "spectrotune fetch musicnn" in note and "\n" not in note
    assert "svm_rbf" in saved and not any("embeddings" in name for name in saved)
    assert note in capsys.readouterr().out and note in (tmp_path / "b" / "baselines.md").read_text()


def _batch(files):
    return {"track_id": np.array([f["track_id"] for f in files], dtype=object),
            "path": np.array([f["path"] for f in files], dtype=object)}


def test_an_s3_sources_tracks_embed_as_its_local_copys_and_a_bad_object_is_named(s3_env, musicnn_cache, tmp_path,
                                                                                monkeypatch):
    corpus = legacy_corpus(tmp_path / "corpus")
    track_file(corpus, "blues.00002").write_bytes(b"not audio\n" * 40)  # listed, but no decoder reads it
    storage.upload(corpus, f"s3://{BUCKET}/corpus")
    ids = ["blues.00001", "blues.00002", "country.00003"]
    local, local_notes = _source_files(D.read_manifest(legacy_dataset(tmp_path / "l", corpus)), ids)
    remote, notes = _source_files(D.read_manifest(legacy_dataset(tmp_path / "r", f"s3://{BUCKET}/corpus/")),
                                  [*ids, "jazz.00000"])
    assert [f["path"] for f in remote] == [f["path"].replace(str(corpus), f"s3://{BUCKET}/corpus") for f in local]
    assert notes == {"not_in_source": ["jazz.00000"], "n_not_in_source": 1} and local_notes == {}
    meta, weights = read_pretrained("MSD_musicnn", musicnn_cache / "musicnn")
    embedder = Embedder("MSD_musicnn", weights=weights, meta=meta.to_dict(), layer="penultimate", device="cpu")
    storage.delete(remote[2]["path"])  # country.00003: listed, then gone before an actor reads it
    got, want = embedder(_batch(remote)), embedder(_batch(local[:2]))
    np.testing.assert_array_equal(got["vector"][:2], want["vector"])
    assert list(got["weight"][:2]) == list(want["weight"]) and want["weight"][0] > 0 and got["weight"][2] == 0
    assert list(got["reason"][:2]) == list(want["reason"]) and want["reason"][1] and not want["reason"][0]
    assert got["reason"][2] == "object not found (removed after listing?)"


def _run_child(args: list[str], env: dict[str, str]) -> str:
    ray_tmp = tempfile.mkdtemp(prefix="st-emb-", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, **env, "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "spectrotune.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        out = f"did not finish in {RUN_TIMEOUT_S} s"
    finally:
        kill_group(proc.pid)
        proc.wait(timeout=30)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, f"spectrotune {' '.join(args)} exited {proc.returncode}:\n{out[-4000:]}"
    return out


@pytest.mark.integration
def test_baseline_of_a_dataset_with_an_s3_source_gives_the_local_sources_results(logmel_data, local_run, s3_env,
                                                                                 musicnn_cache, tmp_path):
    local = local_run[0] / "baselines.json"
    corpus = Path(D.read_manifest(logmel_data).source.path)
    storage.upload(corpus, f"s3://{BUCKET}/logmel")
    shutil.copytree(logmel_data, tmp_path / "data")
    raw = json.loads((tmp_path / "data" / D.MANIFEST).read_text())
    raw["source"]["path"] = f"s3://{BUCKET}/logmel"
    (tmp_path / "data" / D.MANIFEST).write_text(json.dumps(raw, indent=2))
    out = _run_child(["baseline", "--data", str(tmp_path / "data"), "--embeddings", "penultimate", "--out",
                      str(tmp_path / "b")], {**s3_env, "SPECTROTUNE_CACHE": str(musicnn_cache)})
    assert "| MSD_musicnn embeddings (penultimate) + svm_rbf |" in out
    saved, want = (json.loads(p.read_text()) for p in (tmp_path / "b" / "baselines.json", local))
    rows = [name for name in want if "embeddings" in name]
    assert len(rows) == 2 and {n: saved[n] for n in rows} == {n: want[n] for n in rows}
