"""A trial's status from its reported epochs: completion, ASHA and patience told apart; a trial's id."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from spectrotune.config import load_config
from spectrotune.tuning.results import STATUS_ASHA, STATUS_DONE, STATUS_PATIENCE, result_trial_id, trial_status


@pytest.mark.parametrize(("scores", "patience", "asha", "expected"), [
    ([0.3, 0.5, 0.6], 0, True, STATUS_DONE),
    ([0.3], 0, True, STATUS_ASHA),
    ([0.5, 0.4], 1, True, STATUS_PATIENCE),
])
def test_status_tells_completion_asha_and_patience_apart(scores, patience, asha, expected):
    config = load_config("demo", overrides=["train.epochs=3", f"train.patience={patience}"])
    history = [{"epoch": i + 1, "valid_clip_accuracy": s} for i, s in enumerate(scores)]
    assert trial_status(history, error=None, config=config, asha=asha) == expected


@pytest.mark.parametrize(("metrics", "folder", "expected"), [
    ({"trial_id": "4433e_00001", "epoch": 1}, "4433e_00001_01f0", "4433e_00001"),  # restored: Tune's unique suffix
    ({"trial_id": "4433e_00000"}, "4433e_00000", "4433e_00000"),
    ({}, "4433e_00001_01f0", "4433e_00001"),  # never reported
    (None, "4433e_00002", "4433e_00002"),
])
def test_a_trial_is_named_by_its_id_not_by_a_folder_tune_renamed_on_restore(metrics, folder, expected, tmp_path):
    """A sweep resumed after its driver was killed: a trial whose folder the killed driver had made is restored
    into ``<id>_<4 hex>``; its events, done.json and Train run are under the id (the killed-driver test's fits=0)."""
    result = SimpleNamespace(metrics=metrics, path=str(tmp_path / "sweeps" / "killed" / folder))
    assert result_trial_id(result) == expected
