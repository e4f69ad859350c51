"""Tests of spectrotune.training.schedule: the LR schedules, per-epoch seeds and early stopping."""

from __future__ import annotations

import pytest

from spectrotune.errors import ConfigError
from spectrotune.training.schedule import epoch_seed, initial_state, lr_factor, stopped_early, track_best


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_lr_schedules_warm_up_peak_and_end(schedule):
    factors = [lr_factor(s, total_steps=100, warmup_steps=10, schedule=schedule) for s in range(101)]
    assert max(factors) == pytest.approx(1.0)
    assert factors[0] < 0.2  # warm-up starts low
    assert all(0 <= f <= 1.0 + 1e-12 for f in factors)
    if schedule == "constant":
        assert factors[-1] == 1.0
    else:
        assert factors[-1] < 1e-3  # decays to (almost) zero at the end
    assert lr_factor(10_000, total_steps=100, warmup_steps=10, schedule=schedule) == factors[-1]


def test_unknown_schedule_is_a_config_error():
    with pytest.raises(ConfigError, match="train.schedule: unknown schedule 'step'"):
        lr_factor(50, total_steps=100, warmup_steps=10, schedule="step")


def test_epoch_seeds_repeat_and_differ_per_rank_and_epoch():
    seeds = {(rank, epoch): epoch_seed(0, rank, epoch) for rank in range(3) for epoch in range(1, 5)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds.values())
    assert epoch_seed(0, 1, 2) == seeds[(1, 2)] and epoch_seed(1, 1, 2) != seeds[(1, 2)]


def test_early_stopping_counts_epochs_without_strict_improvement():
    state: dict = {"history": [], "best": None}
    stops = []
    for epoch, score in enumerate([0.5, 0.7, 0.7, 0.6, 0.8, 0.8, 0.8], start=1):
        state.update(track_best(state, {"epoch": epoch, "valid_clip_accuracy": score}, patience=2))
        stops.append(state["stop"])
    # 0.7 at epoch 2 is best; the tie at 3 and the drop at 4 make two bad epochs -> stop after epoch 4
    assert stops == [False, False, False, True, False, False, True]
    assert state["best_epoch"] == 5 and state["best"]["valid_clip_accuracy"] == 0.8  # a tie keeps the earlier
    assert [h["epoch"] for h in state["history"]] == list(range(1, 8))
    state = {"history": [], "best": None}
    for epoch in range(1, 6):  # patience 0: never stop
        state.update(track_best(state, {"epoch": epoch, "valid_clip_accuracy": 0.1}, patience=0))
        assert not state["stop"]


def test_a_resumed_run_that_had_stopped_stays_stopped():
    state = initial_state()
    assert state["epoch"] == 0 and state["best"] is None and not stopped_early(state, patience=2)
    for epoch in range(1, 4):
        state.update(track_best(state, {"epoch": epoch, "valid_clip_accuracy": 0.5}, patience=2))
    assert state["stop"] and stopped_early(state, patience=2)
    assert not stopped_early(state, patience=0)  # patience 0: never stop
