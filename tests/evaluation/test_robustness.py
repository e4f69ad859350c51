"""Robustness on a dataset and a bundle written by main at 325b798, without Ray: the noisy test variants are
rebuilt from the (re-synthesized) source with the shared audio chain; when robustness cannot apply, it says why.
The source may be an ``s3://`` prefix (the loopback S3 server of tests/s3_server.py): the rebuild is that of the
local copy, and a file that cannot be read or decoded is named as the local case names it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from legacy_data import LEGACY_BUNDLE, LEGACY_DATASET, legacy_corpus, legacy_dataset, track_file
from s3_server import moto_s3

from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.sources import listing
from spectrotune.bundle import load_bundle
from spectrotune.config import EvaluateConfig
from spectrotune.errors import DatasetError
from spectrotune.evaluation.evaluate import evaluate
from spectrotune.evaluation.robustness import check_compatible, measure_robustness

CONFIG = EvaluateConfig(noise_kinds=("white", "pink"), snr_db=(20.0, 0.0), baselines=False)
QUIET = {"log": lambda _: None}
CLEAN = {"clip_accuracy": 0.5, "segment_accuracy": 0.5}
TEST_TRACKS = {"blues.00001": 0, "classical.00002": 1, "country.00000": 2}  # the legacy dataset's test split
BUCKET = "spectrotune-robustness"


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


@pytest.fixture(scope="module")
def s3(data):
    """The legacy corpus on the loopback S3 server: yields (local corpus, the URI of its copy there)."""
    corpus = Path(D.read_manifest(data).source.path)
    with moto_s3(BUCKET) as env, pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        storage.upload(corpus, f"s3://{BUCKET}/corpus")
        yield corpus, f"s3://{BUCKET}/corpus/"


def _robustness(data, **kw):
    return measure_robustness(load_bundle(LEGACY_BUNDLE), D.read_manifest(data), data_dir=data, config=CONFIG,
                              clean=CLEAN, **QUIET, **kw)


def test_an_s3_source_rebuilds_what_its_local_copy_rebuilds(data, s3, tmp_path):
    _, uri = s3
    remote = legacy_dataset(tmp_path / "ds", uri)
    report = evaluate(LEGACY_BUNDLE, remote, out=tmp_path / "report", config=CONFIG, **QUIET)
    local = evaluate(LEGACY_BUNDLE, data, out=tmp_path / "local", config=CONFIG, **QUIET)
    rob = report["robustness"]
    assert rob["available"] and rob["rebuilt_from"] == f"s3://{BUCKET}/corpus"  # a URI, not "s3:/..."
    assert {r["source"] for r in rob["results"]} == {"rebuilt"} and len(rob["results"]) == 4
    assert {**rob, "rebuilt_from": local["robustness"]["rebuilt_from"]} == local["robustness"]


def _remove_after_listing(monkeypatch, track_id: str) -> None:
    """The file of ``track_id`` disappears between the listing and the read (a local file or an object)."""
    real = listing.list_source

    def list_then_remove(root, **kw):
        found = real(root, **kw)
        storage.delete(next(i.path for i in found.items if i.track_id == track_id))
        return found

    monkeypatch.setattr(listing, "list_source", list_then_remove)


def test_an_unreadable_or_undecodable_object_is_named_as_a_local_file_is(s3, tmp_path, monkeypatch):
    corpus, _ = s3
    bad = tmp_path / "corpus"
    shutil.copytree(corpus, bad)
    track_file(bad, "blues.00001").write_bytes(b"not audio\n" * 40)  # listed, fails to decode
    storage.upload(bad, f"s3://{BUCKET}/bad")
    _remove_after_listing(monkeypatch, "country.00000")  # listed, then gone before it is read
    local = _robustness(legacy_dataset(tmp_path / "local", bad), test_tracks=TEST_TRACKS)
    remote = _robustness(legacy_dataset(tmp_path / "remote", f"s3://{BUCKET}/bad/"), test_tracks=TEST_TRACKS)
    failed, local_failed = remote["tracks_not_rebuilt"]["failed"], local["tracks_not_rebuilt"]["failed"]
    assert failed[0] == local_failed[0] and failed[0].startswith("blues.00001: ")  # the decoder's reason
    assert "spectrotune-src-" not in failed[0] and str(tmp_path) not in failed[0]
    assert failed[1] == "country.00000: object not found (removed after listing?)"
    assert local_failed[1].startswith("country.00000: ") and len(failed) == len(local_failed) == 2
    assert remote["tracks_not_rebuilt"]["n_failed"] == local["tracks_not_rebuilt"]["n_failed"] == 2
    assert remote["results"] == local["results"] and {r["n_tracks"] for r in remote["results"]} == {1}


def test_an_empty_s3_prefix_says_the_source_audio_is_unavailable(s3, tmp_path):
    rob = _robustness(legacy_dataset(tmp_path / "ds", f"s3://{BUCKET}/gone/"), test_tracks=TEST_TRACKS)
    assert rob == {"applies": True, "available": False, "reason": f"source audio unavailable: s3://{BUCKET}/gone: "
                   "source folder not found (no objects under this prefix)"}
