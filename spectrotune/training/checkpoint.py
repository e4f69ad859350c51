"""Checkpoints of a training run: what one holds, how it is written and read, and which ones are kept.

A checkpoint folder (``checkpoint_epoch_NNNN``, written by rank 0 only) holds

- ``model.safetensors``: the unwrapped model's ``state_dict`` (normalisation buffers included), CPU tensors;
- ``state.pt``: plain tensors and dicts (early-stopping state, history, optimiser, LR scheduler, AMP scaler), read
  back with ``torch.load(weights_only=True)``, so loading never executes stored code;
- ``spec.json``: the checkpoint spec (model name and parameters, labels, input shape ``[n_mels, n_frames]``,
  dataset id), compared on resume so that a run never continues with another model or onto other data.

Ray Train keeps the best ``train.keep_checkpoints`` by :data:`~spectrotune.schema.SCORE` plus the latest
(:func:`keep_best`); :func:`pick_best` chooses the one that becomes the bundle. Functions that take a run's
``result`` only read its ``checkpoint`` / ``best_checkpoints`` / ``metrics`` attributes (a ``ray.train.Result``),
so this module never imports ``ray``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from spectrotune.errors import SpectrotuneError
from spectrotune.schema import BUNDLE_WEIGHTS, SCORE

if TYPE_CHECKING:
    from spectrotune.config import Config

__all__ = ["RESUMED_KEYS", "SPEC", "STATE", "checkpoint_dir_name", "keep_best", "model_spec", "pick_best",
           "read_checkpoint", "read_spec", "run_history", "spec_difference", "unwrap_model", "write_checkpoint"]

STATE = "state.pt"
SPEC = "spec.json"
#: Keys of the checkpoint state that a resumed worker takes over (the rest are optimiser, scheduler and scaler).
RESUMED_KEYS = ("epoch", "history", "best", "best_epoch", "bad_epochs", "attempt")


def checkpoint_dir_name(epoch: int) -> str:
    """The checkpoint folder of epoch ``epoch`` (1-based) inside the run folder, e.g. ``checkpoint_epoch_0003``."""
    return f"checkpoint_epoch_{epoch:04d}"


def keep_best(keep: int) -> dict[str, Any]:
    """``ray.train.CheckpointConfig`` arguments: keep the ``keep`` checkpoints with the highest :data:`SCORE`."""
    return {"num_to_keep": keep, "checkpoint_score_attribute": SCORE, "checkpoint_score_order": "max"}


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside ``torch.compile``'s and ``DistributedDataParallel``'s wrappers (checkpoints store it without
    their ``_orig_mod.`` and ``module.`` prefixes)."""
    model = getattr(model, "_orig_mod", model)  # torch.compile's OptimizedModule (train.compile)
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def write_checkpoint(directory: Path, *, model: torch.nn.Module, state: Mapping[str, Any],
                     spec: Mapping[str, Any]) -> None:
    """Write ``model.safetensors``, ``state.pt`` and ``spec.json`` into the existing folder ``directory``."""
    from safetensors.torch import save_file

    weights = {k: v.detach().cpu().contiguous() for k, v in unwrap_model(model).state_dict().items()}
    save_file(weights, str(directory / BUNDLE_WEIGHTS))
    torch.save(dict(state), directory / STATE)
    (directory / SPEC).write_text(json.dumps(dict(spec), indent=2), encoding="utf-8")


def read_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Weights (CPU tensors by parameter name), training state and spec of a checkpoint folder.

    Nothing here executes stored code (safetensors, ``torch.load(weights_only=True)``, JSON).
    """
    from safetensors.torch import load_file

    weights = load_file(str(directory / BUNDLE_WEIGHTS))
    state = torch.load(directory / STATE, map_location="cpu", weights_only=True)
    spec = json.loads((directory / SPEC).read_text(encoding="utf-8"))
    return weights, state, spec


def read_spec(directory: Path) -> dict[str, Any] | None:
    """The spec of a checkpoint folder, or ``None`` when it has none (not a spectrotune checkpoint)."""
    path = directory / SPEC
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def model_spec(config: Config, *, labels: Sequence[str], input_shape: Sequence[int], data_id: str
               ) -> dict[str, Any]:
    """The checkpoint spec of a run: model name and resolved parameters, labels, ``[n_mels, n_frames]``, data id."""
    from spectrotune.models.params import model_params

    return {"model": config.model.name, "params": model_params(config.model.name, config.model.params()),
            "labels": list(labels), "input_shape": [int(s) for s in input_shape], "data": data_id}


def spec_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What differs between a run's checkpoint spec and this config's, in words (for the resume refusal)."""
    what = {"data": "another prepared dataset", "model": "another model", "params": "other model parameters",
            "labels": "other labels", "input_shape": "another input shape"}
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return "; ".join(f"{what.get(k, k)} (run: {old.get(k)!r}, now: {new.get(k)!r})" for k in keys)


def pick_best(result: Any) -> tuple[Any, dict[str, Any]]:
    """The retained checkpoint with the highest clip accuracy and its metrics; ties go to the earliest epoch."""
    candidates = [(c, m) for c, m in (result.best_checkpoints or []) if m and SCORE in m]
    if not candidates:
        if result.checkpoint is None:
            raise SpectrotuneError("training finished without a checkpoint (no epoch was trained)")
        return result.checkpoint, dict(result.metrics or {})
    return max(candidates, key=lambda cm: (cm[1][SCORE], -int(cm[1].get("epoch", 0))))


def run_history(result: Any) -> list[dict[str, Any]]:
    """Metrics of every epoch of a finished run (from its latest checkpoint's state), in order."""
    if result.checkpoint is None:
        raise SpectrotuneError(f"training run {result.path} produced no checkpoint")
    with result.checkpoint.as_directory() as directory:
        _, latest_state, _ = read_checkpoint(Path(directory))
    return [dict(h) for h in latest_state["history"]]
