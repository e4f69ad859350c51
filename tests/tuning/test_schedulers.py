"""The space as Ray Tune domains (no Ray started: building domains only imports Ray Tune)."""

from __future__ import annotations

from spectrotune.tuning.schedulers import build_param_space
from spectrotune.tuning.space import parse_space


def test_grid_search_makes_choices_a_grid_and_source_varies_fastest():
    dims = parse_space({"train.lr": {"choice": [0.1, 0.2]}, "model.width": {"grid": [8, 16]}})
    grid = build_param_space(dims, sources=["a", "b"], search="grid")
    assert list(grid) == ["source", "train.lr", "model.width"]
    assert grid["source"] == {"grid_search": ["a", "b"]} and grid["train.lr"] == {"grid_search": [0.1, 0.2]}
    random = build_param_space(dims, sources=["a"], search="random")
    assert random["source"] == "a" and random["model.width"] == {"grid_search": [8, 16]}
    assert sorted(random["train.lr"].categories) == [0.1, 0.2]  # a Tune choice, sampled
    optuna = build_param_space(dims, sources=["a", "b"], search="optuna")  # Optuna samples every dimension
    assert sorted(optuna["source"].categories) == ["a", "b"] and sorted(optuna["model.width"].categories) == [8, 16]
