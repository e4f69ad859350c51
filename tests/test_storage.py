"""Local paths and object-store URIs: the storage helpers, then the whole pipeline and a sweep on a real S3 server.

The S3 server is moto in server mode on 127.0.0.1 (installed with the test extra). The pipeline and the sweep run
as ``spectrotune`` subprocesses with the AWS variables pointing at it, the way a user runs them: their local Ray
starts with that environment, so Ray Data tasks, Train workers and Tune trials all reach the same bucket.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.bundle import load_bundle
from spectrotune.errors import DatasetError, OutputExistsError
from spectrotune.predict.driver import predict
from spectrotune.sources.synth.corpus import generate_corpus
from s3_server import moto_s3

BUCKET = "spectrotune-test"

# --------------------------------------------------------------------------------------------- local and pure


@pytest.mark.parametrize(("path", "uri"), [("s3://b/k", True), ("gs://b", True), ("hdfs://h:9000/x", True),
                                           ("file:///tmp/x", False), ("/tmp/x", False), ("rel/x", False),
                                           ("C:/x", False)])
def test_uris_are_told_from_local_paths(path, uri):
    assert storage.is_uri(path) is uri


def test_join_parent_and_name_keep_uris_intact():
    assert storage.join("s3://b/run/", "data", "split=train") == "s3://b/run/data/split=train"
    assert storage.parent("s3://b/run/data") == "s3://b/run" and storage.parent("s3://b") == "s3://b"
    assert storage.name("s3://b/run/") == "run"
    assert storage.join("/tmp/x", "a", "b") == Path("/tmp/x/a/b")
    assert str(storage.staging_sibling("s3://b/run/ds")).startswith("s3://b/run/.ds.tmp-")


def test_local_replace_dir_swaps_folders_and_copy_tree_copies_everything(tmp_path):
    (tmp_path / "new" / "sub").mkdir(parents=True)
    for rel in ("manifest.json", "a.txt", "sub/b.txt"):
        (tmp_path / "new" / rel).write_text(rel)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("old")
    storage.copy_tree(tmp_path / "new", tmp_path / "copy", last=["manifest.json"])
    assert storage.list_files(tmp_path / "copy") == ["a.txt", "manifest.json", "sub/b.txt"]
    assert (tmp_path / "copy" / "sub" / "b.txt").read_text() == "sub/b.txt"
    storage.replace_dir(tmp_path / "new", tmp_path / "out")
    assert storage.list_files(tmp_path / "out") == ["a.txt", "manifest.json", "sub/b.txt"]  # stale.txt gone
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_ordered_puts_marker_files_last():
    assert storage._ordered(["a", "manifest.json", "b", "c/bundle.json"], ["c/bundle.json", "manifest.json"]) == [
        "a", "b", "c/bundle.json", "manifest.json"]


# ------------------------------------------------------------------------------------------------ the S3 server


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on 127.0.0.1 with one bucket; yields the AWS variables that point at it."""
    with moto_s3(BUCKET) as env:
        yield env


@pytest.fixture
def s3_env(s3, monkeypatch):
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    return s3


def test_storage_helpers_on_s3(s3_env, tmp_path):
    base = f"s3://{BUCKET}/helpers"
    storage.write_text(storage.join(base, "a", "x.txt"), "hello")
    assert storage.read_text(f"{base}/a/x.txt") == "hello"
    assert storage.exists(f"{base}/a") and storage.is_dir(f"{base}/a") and storage.is_file(f"{base}/a/x.txt")
    assert not storage.exists(f"{base}/missing")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(f"{base}/missing.txt")
    (tmp_path / "up" / "sub").mkdir(parents=True)
    (tmp_path / "up" / "sub" / "y.bin").write_bytes(b"\x00\x01")
    (tmp_path / "up" / "manifest.json").write_text("{}")
    storage.upload(tmp_path / "up", f"{base}/tree", last=["manifest.json"])
    assert storage.list_files(f"{base}/tree") == ["manifest.json", "sub/y.bin"]
    with storage.local_input(f"{base}/tree") as local:
        assert (local / "sub" / "y.bin").read_bytes() == b"\x00\x01"
    storage.replace_dir(f"{base}/tree", f"{base}/a")  # server-side copies, then the staging prefix goes
    assert storage.list_files(f"{base}/a") == ["manifest.json", "sub/y.bin"] and not storage.exists(f"{base}/tree")
    storage.delete(f"{base}/a")
    assert not storage.exists(f"{base}/a")
    with pytest.raises(DatasetError, match="not a prepared spectrotune dataset"):
        D.read_manifest(f"{base}/nothing")


# ------------------------------------------------------------------------------------------ pipeline and sweep


def _run_cli(args: list[str], *, env: dict[str, str], ray_tmp: Path, timeout: float = 420) -> str:
    full = {**os.environ, **env, "RAY_TMPDIR": str(ray_tmp), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    full.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "spectrotune.cli", *args], env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"spectrotune {args[0]} did not finish in {timeout:.0f} s:\n{out[-4000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # Ray processes the CLI left behind, if any
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"spectrotune {args[0]} exited {proc.returncode}:\n{out[-4000:]}"
    return out


SMALL = ["train.epochs=1", "train.batch_size=16", "train.lr=0.003", "train.schedule=constant", "model.width=16",
         "model.depth=3", "audio.hop_seconds.train=1.0", "split.fractions={train: 0.5, valid: 0.25, test: 0.25}",
         "noise.variants=[{kind: white, snr_db: 10}]", "evaluate.snr_db=[10]", "evaluate.noise_kinds=[white]",
         # the splits streamed from the bucket every epoch, in the seed's shard order, as a dataset too big to hold is
         "train.materialize=false"]


@pytest.fixture(scope="module")
def on_s3(s3, tmp_path_factory):
    """``spectrotune pipeline --out s3://...`` on a tiny synthetic corpus (its own local Ray)."""
    base = tmp_path_factory.mktemp("s3flow")
    generate_corpus(base / "corpus", genres=3, tracks=6, seconds=6.0, seed=4, borrow=0.0)
    ray_tmp = Path(tempfile.mkdtemp(prefix="st-s3-", dir="/tmp" if os.path.isdir("/tmp") else None))
    out = f"s3://{BUCKET}/flows/one"
    try:
        log = _run_cli(["pipeline", "--config", "demo", "--source", str(base / "corpus"), "--out", out,
                        *(a for kv in SMALL for a in ("--set", kv))], env=s3, ray_tmp=ray_tmp)
        yield base, out, log, ray_tmp
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_a_dataset_on_s3_is_checked_from_its_footers_and_a_truncated_shard_named(s3_env, tmp_path):
    from legacy_data import LEGACY_DATASET

    from spectrotune.dataset_check import check_shards

    uri = f"s3://{BUCKET}/checked"
    storage.upload(LEGACY_DATASET, uri, last=["manifest.json"])
    assert check_shards(uri) == {"train": 48, "valid": 12, "test": 12}
    assert D.read_split(uri, "test").num_rows == 12
    shard = f"{uri}/data/split=valid/part-00001.parquet"
    payload = storage.read_bytes(shard)
    storage.write_bytes(shard, payload[: len(payload) // 2])
    with pytest.raises(DatasetError, match=f"^{shard}: not a readable Parquet shard \\(truncated or corrupt"):
        D.read_split(uri, "test")


@pytest.mark.integration
def test_pipeline_writes_dataset_checkpoints_bundle_and_report_to_s3(on_s3, s3_env):
    base, out, log, _ = on_s3
    data = storage.join(out, "dataset")
    manifest = D.read_manifest(data)
    assert list(manifest.labels) == sorted(p.name for p in (base / "corpus" / "genres_original").iterdir())
    # the shards read back with plain pyarrow, straight from the bucket, and match the manifest's counts
    table = pq.read_table(f"{data}/data", columns=["split", "variant"])
    counts = {s: 0 for s in ("train", "valid", "test")}
    for split in table.column("split").to_pylist():
        counts[split] += 1
    assert counts == manifest.counts.rows_per_split and counts["train"] > 0
    assert set(table.column("variant").to_pylist()) == {"clean", "white@10dB"}
    assert D.read_errors(data).num_rows == 0
    files = storage.list_files(out)
    assert any(f.startswith("run/runs/") and "/checkpoint_" in f for f in files)  # Ray Train's storage_path
    assert {"dataset/manifest.json", "dataset/config.yaml", "run/bundle/bundle.json", "run/bundle/model.safetensors",
            "run/history.json", "run/report/report.json", "run/report/report.md"} <= set(files)
    assert not [f for f in files if ".tmp-" in f], [f for f in files if ".tmp-" in f]  # no staging prefix left
    report = json.loads(storage.read_text(storage.join(out, "run", "report", "report.json")))
    assert report["bundle"]["path"] == f"{out}/run/bundle" and report["data"]["path"] == data
    assert f"{out}/run/report/report.md" in log


@pytest.mark.integration
def test_cli_output_shows_each_epoch_once_and_no_ray_chatter(on_s3):
    """The pipeline run above is the suite's one CLI run with its own local Ray: its output must stay readable."""
    log = re.sub(r"\x1b\[[0-9;]*m", "", on_s3[2])  # Ray colours the "(RayTrainWorker pid=…)" prefixes
    assert len([line for line in log.splitlines() if "epoch 1/1: train loss" in line]) == 1
    # Ray's own per-second / per-epoch lines: hundreds of them in a demo before spectrotune.runtime
    for chatter in ("Failed to query Ray Train Controller", "Reporting training result", "Progress bars disabled",
                    "Checkpoint successfully created"):
        assert chatter not in log, chatter
    worker_lines = [line for line in log.splitlines() if line.startswith(("(RayTrainWorker", "(SplitCoordinator"))]
    assert not [line for line in worker_lines if "execution finished" in line], worker_lines


@pytest.mark.integration
def test_bundle_on_s3_predicts_and_writes_predictions_to_s3(on_s3, s3_env):
    base, out, _, _ = on_s3
    bundle = load_bundle(storage.join(out, "run", "bundle"))
    assert bundle.path == f"{out}/run/bundle" and len(bundle.labels) == 3
    wavs = sorted((base / "corpus" / "genres_original").rglob("*.wav"))[:4]
    result = predict(storage.join(out, "run", "bundle"), wavs, top_k=2, output=f"{out}/preds.csv", use_ray=False,
                     log=lambda _: None)
    rows = list(csv.DictReader(io.StringIO(storage.read_text(f"{out}/preds.csv"))))
    assert [r["path"] for r in rows] == [r["path"] for r in result.rows] and all(r["status"] == "ok" for r in rows)


@pytest.mark.integration
def test_existing_dataset_on_s3_is_refused_without_overwrite(on_s3, s3_env):
    from spectrotune.config import load_config
    from spectrotune.prepare.driver import prepare

    base, out, _, _ = on_s3
    with pytest.raises(OutputExistsError, match="--overwrite"):
        prepare(base / "corpus", storage.join(out, "dataset"), config=load_config("demo"), log=lambda _: None)


@pytest.mark.integration
def test_sweep_with_sources_and_outputs_on_s3(on_s3, s3):
    _, out, _, ray_tmp = on_s3
    sweep = f"s3://{BUCKET}/sweeps/one"
    args = ["tune", "--config", "demo", "--out", sweep, "--no-progress", "--set", f"sources.audio={out}/dataset",
            "--set", "tune.name=s3sweep", "--set", "tune.num_samples=1", "--set", "evaluate.baselines=false",
            *(a for kv in SMALL for a in ("--set", kv))]
    _run_cli(args, env=s3, ray_tmp=ray_tmp)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in s3.items():
            mp.setenv(key, value)
        table = list(csv.DictReader(io.StringIO(storage.read_text(f"{sweep}/results.csv"))))
        assert len(table) == 1 and table[0]["source"] == "audio" and table[0]["status"] == "TERMINATED"
        files = storage.list_files(sweep)
        assert any(f.startswith("sweeps/s3sweep/") for f in files)  # Tune's experiment, on the bucket
        assert {"results.md", "sweep.json", "best/audio/bundle/bundle.json", "best/audio/report/report.json"} <= set(
            files)
        summary = json.loads(storage.read_text(f"{sweep}/sweep.json"))
        assert summary["best"]["audio"]["bundle"] == f"{sweep}/best/audio/bundle"
        assert load_bundle(summary["best"]["audio"]["bundle"]).labels == list(D.read_manifest(f"{out}/dataset").labels)
        # the same name again is refused, pointing at --resume (the state is found on the bucket)
        with pytest.raises(OutputExistsError, match="--resume s3sweep"):
            from spectrotune.config import load_config
            from spectrotune.tuning.sweep import tune

            tune(load_config("demo", overrides=[f"sources.audio={out}/dataset", "tune.name=s3sweep"]), out=sweep,
                 log=lambda _: None)


def test_a_corpus_uri_pyarrow_cannot_open_is_refused_naming_it(tmp_path):
    """Corpus URIs are read (tests/prepare/test_faults.py prepares from s3://); one that no file system serves is
    one clear line, and nothing is written."""
    from spectrotune.config import load_config
    from spectrotune.errors import StorageError
    from spectrotune.prepare.driver import prepare

    with pytest.raises(StorageError, match=r"^nosuch://bucket/gtzan: cannot open this URI"):
        prepare("nosuch://bucket/gtzan/", tmp_path / "out", config=load_config("demo"), log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_baselines_read_a_dataset_on_s3_and_write_their_report_there(on_s3, s3_env, capsys):
    from spectrotune.cli import main as cli_main

    _, out, _, _ = on_s3
    assert cli_main(["baseline", "--data", f"{out}/dataset", "--out", f"{out}/baselines"]) == 0
    report = json.loads(storage.read_text(f"{out}/baselines/baselines.json"))
    assert {"random_forest", "svm_rbf", "knn"} <= set(report)
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in report.values())
    assert storage.read_text(f"{out}/baselines/baselines.md").startswith("| model |")
    assert f"written to {out}/baselines" in capsys.readouterr().out
