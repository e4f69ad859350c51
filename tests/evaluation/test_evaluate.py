"""Evaluation of a bundle on a prepared dataset: headline metrics, plots, robustness (both paths), baselines.

One tiny synthetic corpus (3 genres x 4 tracks x 6 s) is prepared twice: with noisy test variants written by
prepare (robustness read from the dataset; handcrafted features on, so baselines run) and without them
(robustness rebuilt from the source audio; features off, so baselines must say why they did not run). One small
CNN is trained for a few steps with plain torch on the first dataset and saved as a bundle.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spectrotune import dataset as D
from spectrotune.bundle import save_bundle
from spectrotune.config import EvaluateConfig, load_config
from spectrotune.errors import DatasetError
from spectrotune.evaluation.evaluate import evaluate
from spectrotune.evaluation.report import headline
from spectrotune.models.networks import build_model
from spectrotune.models.params import model_params
from spectrotune.prepare.driver import prepare
from spectrotune.sources.synth.corpus import generate_corpus

pytestmark = pytest.mark.integration

KINDS = ("white", "pink")
SNRS = (30.0, 20.0, 10.0, 0.0)
TEST_VARIANTS = "[" + ", ".join(f"{{kind: {k}, snr_db: {s:g}}}" for k in KINDS for s in SNRS) + "]"
BASE = ["features.n_mels=32"]  # small inputs keep the CNN fast; evaluate must follow the bundle's n_mels
NO_BASELINES = EvaluateConfig(baselines=False)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _train_bundle(data: Path, out: Path, *, labels: list[str] | None = None) -> Path:
    """A briefly trained cnn (clean train rows) saved as a bundle, with a real per-epoch metrics history."""
    manifest = D.read_manifest(data)
    config = load_config("demo", overrides=BASE)
    train = D.read_split(data, "train", columns=[D.LABEL, D.MEL], variants=[D.CLEAN])
    valid = D.read_split(data, "valid", columns=[D.TRACK_ID, D.LABEL, D.MEL], variants=[D.CLEAN])
    x, y = (torch.from_numpy(D.mel_array(train).copy()),
            torch.from_numpy(train.column(D.LABEL).to_numpy().astype(np.int64)))
    xv, yv = (torch.from_numpy(D.mel_array(valid).copy()),
              torch.from_numpy(valid.column(D.LABEL).to_numpy().astype(np.int64)))
    mean, std = x.mean(dim=(0, 2)), x.std(dim=(0, 2)) + 1e-3
    params = model_params("cnn", {"width": 8, "depth": 2})
    torch.manual_seed(0)
    model = build_model("cnn", n_classes=len(manifest.labels), n_mels=x.shape[1], params=params,
                        norm_mean=mean, norm_std=std)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for epoch in range(1, 9):
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(xv)
        history.append({"epoch": epoch, "train_loss": loss.item(),
                        "valid_loss": float(torch.nn.functional.cross_entropy(logits, yv)),
                        "valid_accuracy": float((logits.argmax(1) == yv).float().mean()),
                        "valid_clip_accuracy": float((logits.argmax(1) == yv).float().mean())})
    best = max(history, key=lambda h: h["valid_accuracy"])
    cfg = config.to_dict()
    return save_bundle(out, model=model.eval(), model_name="cnn", model_params=params,
                       labels=labels or list(manifest.labels), input_shape=manifest.input_shape,
                       source_kind="audio", audio=cfg["audio"], features=cfg["features"], norm_mean=mean.numpy(),
                       norm_std=std.numpy(), metrics={"best_epoch": best["epoch"], "best": best, "history": history},
                       config=cfg, config_hash=config.hash())


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ray_session):
    base = tmp_path_factory.mktemp("evaluate")
    generate_corpus(base / "corpus", genres=3, tracks=4, seconds=6.0, seed=0)
    # Test variants only (train needs none here): prepare stays cheap.
    with_variants = load_config("demo", overrides=[*BASE, "noise.splits=[test]", f"noise.variants={TEST_VARIANTS}"])
    prepare(base / "corpus", base / "data_variants", config=with_variants, progress=False, log=lambda _: None)
    plain = load_config("demo", overrides=[*BASE, "features.handcrafted=false"])
    prepare(base / "corpus", base / "data_plain", config=plain, progress=False, log=lambda _: None)
    bundle = _train_bundle(base / "data_variants", base / "run" / "bundle")
    from_dataset = evaluate(bundle, base / "data_variants", log=lambda _: None)  # default out: run/report
    rebuilt = evaluate(bundle, base / "data_plain", out=base / "report_plain", log=lambda _: None)
    return {"base": base, "bundle": bundle, "from_dataset": from_dataset, "rebuilt": rebuilt}


def test_report_has_documented_keys_and_types(setup):
    report = setup["from_dataset"]
    for key in ("segment_accuracy", "clip_accuracy", "macro_f1", "per_class", "robustness", "baselines",
                "n_test_tracks", "n_test_segments", "confusion_matrix", "labels", "bundle", "data"):
        assert key in report, key
    on_disk = json.loads((setup["base"] / "run" / "report" / "report.json").read_text())
    assert on_disk["clip_accuracy"] == report["clip_accuracy"]
    assert set(on_disk) == set(report)
    for key in ("segment_accuracy", "clip_accuracy", "macro_f1"):
        assert isinstance(report[key], float) and 0.0 <= report[key] <= 1.0, (key, report[key])
    manifest = D.read_manifest(setup["base"] / "data_variants")
    assert report["labels"] == list(manifest.labels)
    assert report["n_test_tracks"] == manifest.counts.tracks_per_split["test"]
    assert report["n_test_segments"] == manifest.counts.rows_per_split["test"] // (1 + len(KINDS) * len(SNRS))
    assert report["bundle"]["path"] == str(setup["bundle"]) and report["data"]["path"].endswith("data_variants")


def test_accuracies_match_an_independent_count(setup):
    # Recompute from the bundle's own probabilities with pandas: segment argmax, then mean per track.
    import pandas as pd

    from spectrotune.bundle import load_bundle

    table = D.read_split(setup["base"] / "data_variants", "test", variants=[D.CLEAN])
    proba = load_bundle(setup["bundle"]).predict_proba(D.mel_array(table))
    frame = pd.DataFrame(proba).assign(track=table.column(D.TRACK_ID).to_pylist(),
                                       label=table.column(D.LABEL).to_pylist())
    report = setup["from_dataset"]
    assert report["segment_accuracy"] == pytest.approx((proba.argmax(1) == frame["label"]).mean())
    clips = frame.groupby("track").mean()
    assert report["clip_accuracy"] == pytest.approx((clips[[0, 1, 2]].to_numpy().argmax(1) == clips["label"]).mean())


def test_confusion_matrix_and_per_class_count_test_clips(setup):
    report = setup["from_dataset"]
    cm = np.asarray(report["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == report["n_test_tracks"]
    assert np.trace(cm) / cm.sum() == pytest.approx(report["clip_accuracy"])
    assert list(report["per_class"]) == report["labels"]
    assert [m["support"] for m in report["per_class"].values()] == cm.sum(axis=1).tolist()


def test_plots_are_pngs_and_markdown_links_them(setup):
    out = setup["base"] / "run" / "report"
    md = (out / "report.md").read_text()
    for name in ("confusion_matrix.png", "learning_curves.png", "robustness.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
        assert f"]({name})" in md
    assert "| **CNN (cnn)** |" in md and "random_forest" in md and "white@0dB" in md


@pytest.mark.parametrize("which, how", [("from_dataset", "dataset"), ("rebuilt", "rebuilt")])
def test_robustness_covers_every_kind_and_snr(setup, which, how):
    rob = setup[which]["robustness"]
    assert rob["applies"] and rob["available"]
    got = {(r["kind"], r["snr_db"]) for r in rob["results"]}
    assert got == {(k, s) for k in KINDS for s in SNRS}
    assert {r["source"] for r in rob["results"]} == {how}
    for r in rob["results"]:
        assert 0.0 <= r["clip_accuracy"] <= 1.0 and r["n_tracks"] == setup[which]["n_test_tracks"]


def test_rebuilt_noise_equals_what_prepare_wrote(setup):
    # Same corpus, split and seed: rebuilding from the audio must give exactly the dataset's noisy test rows.
    a, b = setup["from_dataset"], setup["rebuilt"]
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["clip_accuracy"] == b["clip_accuracy"]
    for ra, rb in zip(a["robustness"]["results"], b["robustness"]["results"], strict=True):
        assert (ra["variant"], ra["n_segments"]) == (rb["variant"], rb["n_segments"])
        assert ra["segment_accuracy"] == pytest.approx(rb["segment_accuracy"])
        assert ra["clip_accuracy"] == pytest.approx(rb["clip_accuracy"])


def test_variants_missing_from_the_dataset_are_rebuilt_beside_the_ones_it_has(setup, tmp_path):
    config = EvaluateConfig(noise_kinds=("white",), snr_db=(30.0, 5.0), baselines=False)
    report = evaluate(setup["bundle"], setup["base"] / "data_variants", out=tmp_path, config=config,
                      log=lambda _: None)
    got = [(r["variant"], r["source"]) for r in report["robustness"]["results"]]
    assert got == [("white@30dB", "dataset"), ("white@5dB", "rebuilt")]


def _copy_with_manifest(src: Path, dst: Path, **changes) -> Path:
    shutil.copytree(src, dst)
    manifest = json.loads((dst / D.MANIFEST).read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            manifest[section][field] = value
        else:
            manifest[section] = value
    (dst / D.MANIFEST).write_text(json.dumps(manifest))
    return dst


@pytest.mark.parametrize("change, expected", [
    ({"source__path": "/nonexistent/corpus"}, {"applies": True, "available": False, "reason": "source"}),
    ({"source__kind": "spotify"}, {"applies": False, "reason": "image sources have no audio"}),
])
def test_robustness_without_audio_says_why_instead_of_failing(setup, tmp_path, change, expected):
    data = _copy_with_manifest(setup["base"] / "data_plain", tmp_path / "data", **change)
    report = evaluate(setup["bundle"], data, out=tmp_path / "report", config=NO_BASELINES, log=lambda _: None)
    rob = report["robustness"]
    assert rob["applies"] is expected["applies"]
    assert rob.get("available") is False and expected["reason"] in rob["reason"]
    assert report["clip_accuracy"] == setup["rebuilt"]["clip_accuracy"]  # the rest of the report is intact
    assert not (tmp_path / "report" / "robustness.png").exists()


def test_baselines_sit_next_to_the_cnn(setup):
    base = setup["from_dataset"]["baselines"]
    assert base["available"]
    assert {"random_forest", "svm_rbf", "knn"} <= set(base["results"])
    for r in base["results"].values():
        assert 0.0 <= r["test_accuracy"] <= 1.0 and 0.0 <= r["test_macro_f1"] <= 1.0
        assert r["n_test"] == setup["from_dataset"]["n_test_tracks"]


def test_baselines_without_features_record_the_reason(setup):
    base = setup["rebuilt"]["baselines"]  # that dataset was prepared with features.handcrafted=false
    assert base["available"] is False and "handcrafted" in base["reason"]
    assert "Baselines not run" in (setup["base"] / "report_plain" / "report.md").read_text()


def test_baselines_can_be_switched_off(setup, tmp_path):
    report = evaluate(setup["bundle"], setup["base"] / "data_variants", out=tmp_path, config=NO_BASELINES,
                      log=lambda _: None)
    assert report["baselines"] == {"available": False, "reason": "disabled (evaluate.baselines: false)"}


def test_bundle_labels_must_match_the_dataset(setup, tmp_path):
    bundle = _train_bundle(setup["base"] / "data_variants", tmp_path / "bundle", labels=["x", "y", "z"])
    with pytest.raises(DatasetError, match=r"\['x', 'y', 'z'\].*\['blues'"):
        evaluate(bundle, setup["base"] / "data_plain", out=tmp_path / "r", config=NO_BASELINES, log=lambda _: None)
    assert not (tmp_path / "r").exists()


def test_headline_is_short_and_has_the_numbers(setup):
    text = headline(setup["from_dataset"])
    assert 1 <= len(text.splitlines()) <= 2
    assert f"{setup['from_dataset']['clip_accuracy']:.3f}" in text and "baseline" in text
