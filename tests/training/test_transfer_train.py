"""Transfer learning end to end through the command line, as the README's musicnn section shows it: a synthetic
corpus prepared with configs/musicnn.yaml, `spectrotune train musicnn` fine-tuning the cached MSD_musicnn for two
epochs (the first head only), then `predict` and `export` with the bundle and no cache at all.

The workers of the shared Ray were started before this test points SPECTROTUNE_CACHE at the cache, and the home
cache is empty: they can only have the pretrained weights from the driver."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from spectrotune.cli import main
from spectrotune.models.networks import build_model
from spectrotune.models.pretrained import read_pretrained
from spectrotune.sources.synth.corpus import generate_corpus
from spectrotune.training.transfer import backbone_digest, pretrained_network

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, ray_session, musicnn_cache):
    base = tmp_path_factory.mktemp("transfer")
    generate_corpus(base / "corpus", genres=2, tracks=4, seconds=3.5, seed=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECTROTUNE_CACHE", str(musicnn_cache))
        assert main(["prepare", "musicnn", "--source", str(base / "corpus"), "--out", str(base / "data"),
                     "--set", "features.handcrafted=false"]) == 0
        # the noisy train rows stay in the dataset; two tiny epochs train on the clean ones
        assert main(["train", "musicnn", "--data", str(base / "data"), "--out", str(base / "run"),
                     "--set", "train.epochs=2", "--set", "train.batch_size=4", "--set", "train.variants=[clean]",
                     "--set", "train.patience=0", "--set", "train.run_name=ft"]) == 0
    return base


def _expected(musicnn_cache):
    _, tensors = read_pretrained("MSD_musicnn", musicnn_cache / "musicnn")
    return tensors, backbone_digest(pretrained_network("MSD_musicnn", tensors))


def _checkpoint_model(path):
    model = build_model("musicnn", n_classes=2, n_mels=96, norm_mean=torch.zeros(96), norm_std=torch.ones(96))
    model.load_state_dict(load_file(str(path)))
    return model


def test_the_dataset_holds_musicnn_patches_and_says_so(finetuned):
    manifest = json.loads((finetuned / "data" / "manifest.json").read_text())
    assert manifest["config"]["features"]["frontend"] == "musicnn" and manifest["mel"]["shape"] == [96, 187]
    assert manifest["mel"]["values"] == "log10(10000 x mel power + 1) (musicnn)" and manifest["mel"]["top_db"] is None
    assert manifest["variants"] == ["clean", "pink@10dB", "white@20dB"]


def test_the_workers_started_from_the_pretrained_backbone_and_kept_it_while_frozen(finetuned, musicnn_cache):
    tensors, digest = _expected(musicnn_cache)
    meta = json.loads((finetuned / "run" / "bundle" / "bundle.json").read_text())
    # the worker's digest of the backbone it loaded, before training, equals the checkpoint's
    assert meta["metrics"]["pretrained"] == {"model": "MSD_musicnn", "backbone_sha256": digest}
    assert meta["model"]["params"] == {"pretrained": "MSD_musicnn"}
    assert meta["normalization"]["mean"] == [0.0] * 96 and meta["normalization"]["std"] == [1.0] * 96
    runs = finetuned / "run" / "runs" / "ft"
    frozen = _checkpoint_model(runs / "checkpoint_epoch_0001" / "model.safetensors")
    tuned = _checkpoint_model(runs / "checkpoint_epoch_0002" / "model.safetensors")
    # after the head-only epoch the first layer is still the checkpoint's (TF [kh, kw, in, out] -> torch), and so
    # is every other backbone weight and batch-norm statistic; the second epoch trained them
    first = torch.from_numpy(np.ascontiguousarray(tensors["conv2d/kernel"].transpose(3, 2, 0, 1)))
    assert torch.equal(frozen.net.timbral[0].conv.weight, first)
    assert backbone_digest(frozen) == digest != backbone_digest(tuned)
    assert not torch.equal(tuned.net.timbral[0].conv.weight, first)
    log = (finetuned / "run" / "train.log").read_text()
    assert f"backbone: pretrained MSD_musicnn (sha256 {digest[:12]}) from the cache" in log
    assert "its own input batch norm" in log


def test_the_bundle_predicts_and_exports_without_a_cache(finetuned, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECTROTUNE_CACHE", str(tmp_path / "no-cache"))
    song = sorted((finetuned / "corpus").rglob("*.wav"))[0]
    capsys.readouterr()
    assert main(["predict", str(finetuned / "run" / "bundle"), str(song), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "ok" and row["n_segments"] == 1 and row["top1"] in ("blues", "classical")
    assert main(["export", str(finetuned / "run" / "bundle"), "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 1_000_000
    assert not (tmp_path / "no-cache").exists()


def test_evaluate_puts_the_embedding_baselines_of_the_datasets_own_patches_beside_it(finetuned, musicnn_cache,
                                                                                     monkeypatch, capsys):
    monkeypatch.setenv("SPECTROTUNE_CACHE", str(musicnn_cache))
    assert main(["evaluate", str(finetuned / "run" / "bundle"), "--data", str(finetuned / "data")]) == 0
    report = json.loads((finetuned / "run" / "report" / "report.json").read_text())
    emb = report["baselines"]["embeddings"]
    assert emb["available"] and emb["source"] == "dataset" and (emb["layer"], emb["dimensions"]) == ("pool", 1506)
    assert set(emb["results"]) == {"MSD_musicnn embeddings (pool) + svm_rbf",
                                   "MSD_musicnn embeddings (pool) + logistic_regression"}
    assert report["baselines"]["available"] is False  # prepared with features.handcrafted=false: said, not hidden
    md = (finetuned / "run" / "report" / "report.md").read_text()
    assert "| MSD_musicnn embeddings (pool) + logistic_regression |" in md and "Baselines not run:" in md
