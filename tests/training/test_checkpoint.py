"""Tests of spectrotune.training.checkpoint: the checkpoint files, the spec compared on resume, which checkpoint
becomes the bundle, and the history read back from the latest one. A run's result is faked with its attributes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from spectrotune.config import load_config
from spectrotune.errors import SpectrotuneError
from spectrotune.schema import BUNDLE_WEIGHTS, SCORE
from spectrotune.training.checkpoint import (RESUMED_KEYS, SPEC, STATE, checkpoint_dir_name, keep_best, model_spec,
                                             pick_best, read_checkpoint, read_spec, run_history, spec_difference,
                                             unwrap_model, write_checkpoint)
from spectrotune.training.schedule import initial_state


@dataclass
class FakeCheckpoint:
    """A ``ray.train.Checkpoint`` stand-in: a local folder."""

    path: Path

    @contextlib.contextmanager
    def as_directory(self):
        yield str(self.path)


@dataclass
class FakeResult:
    """A ``ray.train.Result`` stand-in with the attributes the checkpoint helpers read."""

    checkpoint: Any = None
    best_checkpoints: list | None = None
    metrics: dict | None = None
    path: str = "runs/fake"


def _checkpoint(directory: Path, *, history: list[dict]) -> tuple[torch.nn.Module, dict, dict]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    state = {**initial_state(), "epoch": len(history), "history": history, "optimizer": optimizer.state_dict()}
    spec = {"model": "cnn", "params": {"width": 8}, "labels": ["a", "b", "c"], "input_shape": [16, 87], "data": "x"}
    directory.mkdir(parents=True, exist_ok=True)
    write_checkpoint(directory, model=model, state=state, spec=spec)
    return model, state, spec


def test_checkpoint_round_trips_weights_state_and_spec(tmp_path):
    history = [{"epoch": 1, SCORE: 0.5}, {"epoch": 2, SCORE: 0.75}]
    model, state, spec = _checkpoint(tmp_path / "c", history=history)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted([BUNDLE_WEIGHTS, SPEC, STATE])
    weights, loaded, loaded_spec = read_checkpoint(tmp_path / "c")
    expected = model.state_dict()
    assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in expected)
    assert loaded_spec == spec == read_spec(tmp_path / "c")
    assert {k: loaded[k] for k in RESUMED_KEYS} == {k: state[k] for k in RESUMED_KEYS}
    again = torch.optim.AdamW(model.parameters(), lr=1e-3)
    again.load_state_dict(loaded["optimizer"])  # plain tensors and dicts: what weights_only loading accepts
    assert read_spec(tmp_path) is None


def test_plain_models_are_their_own_unwrapped_model():
    model = torch.nn.Linear(2, 2)
    assert unwrap_model(model) is model


def test_checkpoint_folders_sort_by_epoch_and_keep_best_ranks_by_score():
    assert checkpoint_dir_name(3) == "checkpoint_epoch_0003"
    assert sorted(checkpoint_dir_name(e) for e in (10, 2, 1)) == [checkpoint_dir_name(e) for e in (1, 2, 10)]
    assert keep_best(2) == {"num_to_keep": 2, "checkpoint_score_attribute": SCORE, "checkpoint_score_order": "max"}


def test_model_spec_names_model_labels_shape_and_data():
    config = load_config("demo", overrides=["model.name=cnn", "model.width=8", "model.depth=3"])
    spec = model_spec(config, labels=("a", "b"), input_shape=(16, 87), data_id="abc")
    assert spec["model"] == "cnn" and spec["params"]["width"] == 8 and spec["params"]["depth"] == 3
    assert (spec["labels"], spec["input_shape"], spec["data"]) == (["a", "b"], [16, 87], "abc")


def test_spec_difference_says_what_changed_in_words():
    old = {"model": "cnn", "labels": ["a"], "data": "x"}
    new = {"model": "crnn", "labels": ["a"], "data": "y"}
    assert spec_difference(old, new) == ("another model (run: 'cnn', now: 'crnn'); "
                                         "another prepared dataset (run: 'x', now: 'y')")
    assert spec_difference(old, dict(old)) == ""


def test_pick_best_takes_the_highest_score_and_the_earliest_epoch_of_a_tie():
    best = [("c1", {"epoch": 1, SCORE: 0.5}), ("c3", {"epoch": 3, SCORE: 0.7}), ("c2", {"epoch": 2, SCORE: 0.7}),
            ("c4", {"epoch": 4})]
    assert pick_best(FakeResult(checkpoint="c4", best_checkpoints=best)) == ("c2", {"epoch": 2, SCORE: 0.7})
    # no scored checkpoint: the latest one, with the result's metrics
    assert pick_best(FakeResult(checkpoint="c4", best_checkpoints=[], metrics={"epoch": 4})) == ("c4", {"epoch": 4})
    with pytest.raises(SpectrotuneError, match="without a checkpoint"):
        pick_best(FakeResult())


def test_run_history_comes_from_the_latest_checkpoint(tmp_path):
    history = [{"epoch": 1, SCORE: 0.5}, {"epoch": 2, SCORE: 0.25}]
    _checkpoint(tmp_path / "latest", history=history)
    assert run_history(FakeResult(checkpoint=FakeCheckpoint(tmp_path / "latest"))) == history
    with pytest.raises(SpectrotuneError, match="runs/fake produced no checkpoint"):
        run_history(FakeResult())
