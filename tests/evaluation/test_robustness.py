"""Robustness on a dataset and a bundle written by main at 325b798, without Ray: the noisy test variants are
rebuilt from the (re-synthesized) source with the shared audio chain; when robustness cannot apply, it says why."""

from __future__ import annotations

import json
import shutil

import pytest
from legacy_data import LEGACY_BUNDLE, LEGACY_DATASET, legacy_corpus, legacy_dataset

from spectrotune import dataset as D
from spectrotune.bundle import load_bundle
from spectrotune.config import EvaluateConfig
from spectrotune.errors import DatasetError
from spectrotune.evaluation.evaluate import evaluate
from spectrotune.evaluation.robustness import check_compatible, measure_robustness

CONFIG = EvaluateConfig(noise_kinds=("white", "pink"), snr_db=(20.0, 0.0), baselines=False)
QUIET = {"log": lambda _: None}
CLEAN = {"clip_accuracy": 0.5, "segment_accuracy": 0.5}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("legacy")
    return legacy_dataset(base / "ds", legacy_corpus(base / "corpus"))


def test_the_legacy_dataset_and_bundle_evaluate_with_rebuilt_noise(data, tmp_path):
    report = evaluate(LEGACY_BUNDLE, data, out=tmp_path, config=CONFIG, **QUIET)
    rob = report["robustness"]
    assert rob["applies"] and rob["available"] and rob["rebuilt_from"].endswith("corpus")
    assert [(r["variant"], r["source"], r["n_tracks"], r["n_segments"]) for r in rob["results"]] == [
        ("white@20dB", "rebuilt", 3, 12), ("white@0dB", "rebuilt", 3, 12), ("pink@20dB", "rebuilt", 3, 12),
        ("pink@0dB", "rebuilt", 3, 12)]
    assert report["n_test_tracks"] == 3 and report["data"]["source"]["path"] == rob["rebuilt_from"]
    assert json.loads((tmp_path / "report.json").read_text())["robustness"] == rob


def test_the_rebuild_is_deterministic(data):
    bundle, manifest = load_bundle(LEGACY_BUNDLE), D.read_manifest(data)
    tracks = {"blues.00001": 0, "country.00003": 2}
    first = measure_robustness(bundle, manifest, data_dir=data, config=CONFIG, clean=CLEAN, test_tracks=tracks, **QUIET)
    again = measure_robustness(bundle, manifest, data_dir=data, config=CONFIG, clean=CLEAN, test_tracks=tracks, **QUIET)
    assert first == again and {r["n_tracks"] for r in first["results"]} == {2}


def test_without_the_source_robustness_says_why(tmp_path):
    data = legacy_dataset(tmp_path / "ds", tmp_path / "gone")
    rob = measure_robustness(load_bundle(LEGACY_BUNDLE), D.read_manifest(data), data_dir=data, config=CONFIG,
                             clean=CLEAN, test_tracks={"blues.00001": 0}, **QUIET)
    assert rob == {"applies": True, "available": False,
                   "reason": f"source audio unavailable: {tmp_path / 'gone'}: source folder not found"}


def test_image_datasets_have_no_robustness(tmp_path):
    shutil.copytree(LEGACY_DATASET, tmp_path / "ds")
    raw = json.loads((tmp_path / "ds" / D.MANIFEST).read_text())
    raw["source"]["kind"] = "spotify"
    (tmp_path / "ds" / D.MANIFEST).write_text(json.dumps(raw))
    rob = measure_robustness(load_bundle(LEGACY_BUNDLE), D.read_manifest(tmp_path / "ds"), data_dir=tmp_path / "ds",
                             config=CONFIG, clean=CLEAN, test_tracks={}, **QUIET)
    assert rob == {"applies": False, "available": False, "reason": "image sources have no audio to add noise to"}


def test_a_bundle_must_speak_the_datasets_labels():
    bundle, manifest = load_bundle(LEGACY_BUNDLE), D.read_manifest(LEGACY_DATASET)
    check_compatible(bundle, manifest, bundle_dir="b", data_dir="d", log=pytest.fail)  # compatible: no warning
    bundle.meta = type(bundle.meta).from_dict({**bundle.meta.to_dict(), "labels": ["a", "b", "c"]})
    with pytest.raises(DatasetError, match="has labels"):
        check_compatible(bundle, manifest, bundle_dir="b", data_dir="d", log=print)
