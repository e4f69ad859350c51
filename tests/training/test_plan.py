"""Tests of spectrotune.training.plan: row selection and checks, the run's identity, and the errors
:func:`~spectrotune.training.driver.train` raises before Ray starts.

Pure pyarrow: they read the dataset written by ``main`` at 325b798 (``tests/data``), so they also check that a
dataset prepared before the reorganisation still plans a run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from spectrotune import dataset as D
from spectrotune.config import load_config
from spectrotune.errors import ConfigError, DatasetError
from spectrotune.schema import CLEAN, TRACK_ID, VARIANT
from spectrotune.training.driver import train
from spectrotune.training.plan import RowSelection, dataset_id, plan_run, run_name

STORED = Path(__file__).parents[1] / "data" / "main-325b798" / "dataset"
TRAIN_SETTINGS = ["train.batch_size=16", "model.name=cnn", "model.width=8", "model.depth=3",
                  "train.shuffle_buffer=64", "train.patience=0", "train.keep_checkpoints=2"]


@pytest.fixture
def prepared():
    """A dataset prepared by an earlier version (read only: tests copy it before changing it)."""
    return STORED


def _config(*extra: str):
    return load_config("demo", overrides=[*TRAIN_SETTINGS, *extra])


def _other_preparation(prepared, tmp_path):
    """The same dataset prepared again: identical rows, a new manifest (another creation time), so another id."""
    data = tmp_path / "again"
    shutil.copytree(prepared, data)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["created_unix"] += 1.0
    (data / "manifest.json").write_text(json.dumps(manifest))
    return data


# ----------------------------------------------------------------------------------------------- plan


def test_plan_of_a_stored_dataset_selects_its_splits_and_normalises_over_train(prepared):
    plan = plan_run(prepared, config=_config())
    manifest = D.read_manifest(prepared)
    counts = manifest.counts.per_split_genre_variant
    assert plan.labels == tuple(manifest.labels) and plan.input_shape == manifest.input_shape
    assert plan.valid_rows.variants == (CLEAN,) and plan.train_rows.variants == ()
    assert plan.n_train == sum(sum(genre.values()) for genre in counts["train"].values())
    assert plan.n_valid == sum(genre[CLEAN] for genre in counts["valid"].values())
    train_mel = D.mel_array(D.read_split(prepared, "train")).astype(np.float64)
    np.testing.assert_allclose(plan.norm_mean, train_mel.mean(axis=(0, 2)), atol=1e-4)
    assert plan.norm_mean.shape == plan.norm_std.shape == (plan.input_shape[0],)
    assert plan.spec == {"model": "cnn", "params": plan.spec["params"], "labels": list(plan.labels),
                         "input_shape": list(plan.input_shape), "data": dataset_id(manifest)}


def test_plan_for_given_tracks_reads_them_from_every_split(prepared):
    tracks = D.read_split(prepared, "train", columns=[TRACK_ID]).column(TRACK_ID).to_pylist()
    test_tracks = D.read_split(prepared, "test", columns=[TRACK_ID]).column(TRACK_ID).to_pylist()
    fold = {"train": sorted(set(tracks)), "valid": sorted(set(test_tracks))}
    plan = plan_run(prepared, config=_config(), tracks=fold)
    assert plan.train_rows.tracks == tuple(fold["train"]) and plan.valid_rows.variants == (CLEAN,)
    assert plan.n_valid == len(plan.valid_rows.arrow_table([TRACK_ID]))
    with pytest.raises(DatasetError, match="both in train and valid"):
        plan_run(prepared, config=_config(), tracks={"train": fold["train"], "valid": fold["train"][:1]})
    with pytest.raises(ConfigError, match="missing \\['valid'\\]"):
        plan_run(prepared, config=_config(), tracks={"train": fold["train"]})


def test_row_selection_filters_by_track_and_variant(prepared):
    folders = (prepared / "data" / "split=train",)
    everything = RowSelection(folders)
    assert everything.arrow_filter() is None
    noisy = RowSelection(folders, variants=("white@20dB",))
    table = noisy.arrow_table([TRACK_ID, VARIANT])
    assert 0 < len(table) < len(everything.arrow_table([TRACK_ID]))
    assert set(table.column(VARIANT).to_pylist()) == {"white@20dB"}
    one = table.column(TRACK_ID)[0].as_py()
    both = RowSelection(folders, tracks=(one,), variants=("white@20dB",)).arrow_table([TRACK_ID, VARIANT])
    assert set(both.column(TRACK_ID).to_pylist()) == {one} and set(both.column(VARIANT).to_pylist()) == {"white@20dB"}


# ----------------------------------------------------------------------------------------------- identity


def test_default_run_name_follows_config_and_dataset(prepared, tmp_path):
    other = D.read_manifest(_other_preparation(prepared, tmp_path))
    manifest = D.read_manifest(prepared)
    assert dataset_id(manifest) == dataset_id(D.read_manifest(prepared)) != dataset_id(other)
    config = _config()
    name = run_name(config, dataset_id(manifest))
    assert name.startswith("train-") and name == run_name(_config(), dataset_id(manifest))
    assert name != run_name(config, dataset_id(other))
    assert name != run_name(_config("train.lr=0.01"), dataset_id(manifest))
    assert run_name(_config("train.run_name=mine"), dataset_id(other)) == "mine"



# ----------------------------------------------------------------------------------------------- errors before Ray


def test_missing_dataset_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="not a prepared spectrotune dataset"):
        train(tmp_path / "nothing", tmp_path / "out", config=_config(), log=lambda _: None)


@pytest.mark.parametrize("split", ["train", "valid"])
def test_empty_split_is_named(prepared, tmp_path, split):
    data = tmp_path / "data"
    shutil.copytree(prepared, data)
    for shard in (data / "data" / f"split={split}").glob("*.parquet"):
        shard.unlink()
    with pytest.raises(DatasetError, match=f"the {split} split is empty"):
        train(data, tmp_path / "out", config=_config(), log=lambda _: None)


def test_unknown_variant_is_a_config_error(prepared, tmp_path):
    with pytest.raises(ConfigError, match="white@3dB"):
        train(prepared, tmp_path / "out", config=_config("train.variants=[white@3dB]"), log=lambda _: None)
