"""What a finished run leaves in ``OUT``: the bundle of its best checkpoint, the resolved config, the history, the
learning curves and ``train.log``.

Output layout::

    OUT/
      bundle/          the model bundle (weights of the best epoch, labels, audio/feature parameters, metrics)
      config.yaml      the resolved config
      history.json     one entry per epoch (:data:`~spectrotune.schema.METRIC_KEYS`)
      curves.png       loss and accuracy per epoch
      train.log        this command's messages and one line per epoch of the run (what the console showed)
      runs/<run name>/ Ray Train's run folder: checkpoints and the checkpoint-manager snapshot

:func:`export_run` reads the run's ``result`` (a ``ray.train.Result``) through its attributes only, so this module
never imports ``ray``; the bundle format is :mod:`spectrotune.bundle`'s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spectrotune import storage
from spectrotune.config import Config, save_config
from spectrotune.dataset import DatasetManifest
from spectrotune.schema import BUNDLE_DIR, BUNDLE_META, CURVES_PNG, HISTORY, SCORE, TRAIN_LOG
from spectrotune.training.checkpoint import pick_best, read_checkpoint, run_history
from spectrotune.training.metrics import epoch_line
from spectrotune.training.plan import RunPlan

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "export_run", "recording", "train_log"]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`spectrotune.training.driver.train` produced.

    Attributes
    ----------
    bundle : Path or str
        The model bundle folder (weights of the best epoch); a string when the output is a URI.
    run_dir : Path or str
        Ray Train's run folder (checkpoints), ``storage_path/run_name``.
    metrics : dict
        The best epoch's metrics (see :data:`~spectrotune.schema.METRIC_KEYS`).
    history : list of dict
        Metrics of every epoch trained in this run, in order.
    """

    bundle: Path | str
    run_dir: Path | str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def export_run(
    plan: RunPlan,
    result: Any,
    out: str | Path,
    *,
    run_dir: Path | None = None,
    log: Callable[[str], None] = logger.info,
    t_start: float | None = None,
    driver_log: Sequence[str] = (),
) -> TrainResult:
    """Turn a run's best checkpoint into ``out/bundle`` plus ``config.yaml``, ``history.json``, ``curves.png`` and
    ``train.log`` (``driver_log``, this command's messages, then one line per epoch of the whole run).

    Parameters
    ----------
    plan : RunPlan
        The plan the run was made with (labels, shapes and normalisation go into the bundle).
    result : ray.train.Result
        From ``TorchTrainer.fit()`` or ``ray.train.Result.from_path(run folder)``.
    out : path
        Output folder (created), or a URI: the files are written locally, then uploaded (``bundle.json`` last).
    run_dir : Path, optional
        Reported in :class:`TrainResult`; default ``result.path``.
    log : callable
        Receives the one-line summary.
    t_start : float, optional
        ``time.perf_counter()`` when the command started (the summary reports seconds since); default now.
    """
    from spectrotune.models.networks import build_model
    from spectrotune.models.params import model_params

    t_start = time.perf_counter() if t_start is None else t_start
    out = storage.norm(out)
    config = plan.config
    history = run_history(result)
    best_checkpoint, best_metrics = pick_best(result)
    with best_checkpoint.as_directory() as directory:
        weights, state, _ = read_checkpoint(Path(directory))
    best_epoch = int(best_metrics["epoch"])
    best = next((h for h in history if int(h["epoch"]) == best_epoch), dict(best_metrics))

    name = config.model.name
    params = model_params(name, config.model.params())
    labels = list(plan.labels)
    model = build_model(name, n_classes=len(labels), n_mels=plan.input_shape[0], params=params, norm_mean=plan.norm_mean,
                        norm_std=plan.norm_std)
    model.load_state_dict(weights)
    model.eval()
    bundle = storage.join(out, BUNDLE_DIR)
    summary = (f"best epoch {best_epoch}/{len(history)}: valid clip accuracy {best[SCORE]:.3f}, segment accuracy "
               f"{best['valid_accuracy']:.3f}; bundle at {bundle} ({time.perf_counter() - t_start:.1f} s)")
    if len(history) < config.train.epochs and config.train.patience:
        summary += (f"; stopped early after epoch {len(history)} of {config.train.epochs} "
                    f"(train.patience={config.train.patience} epochs without improvement)")
    log_text = train_log(driver_log, history, epochs=config.train.epochs, summary=summary)
    with storage.local_output(out, last=[f"{BUNDLE_DIR}/{BUNDLE_META}"]) as local:
        _write_outputs(local, plan=plan, config=config, model=model, params=params, labels=labels,
                       best_epoch=best_epoch, best=best, history=history, log_text=log_text,
                       pretrained=state.get("pretrained"))
    log(summary)
    return TrainResult(bundle=bundle, run_dir=run_dir if run_dir is not None else str(result.path),
                       metrics=dict(best), history=history)


def recording(log: Callable[[str], None], lines: list[str]) -> Callable[[str], None]:
    """``log`` that also keeps each message, timestamped (local time, to the second), in ``lines``."""

    def record(message: str) -> None:
        lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}")
        log(message)

    return record


def train_log(driver_log: Sequence[str], history: Sequence[Mapping[str, Any]], *, epochs: int,
              summary: str) -> str:
    """``train.log``: the command's own messages, every epoch of the run (a resumption marked), the outcome."""
    lines = list(driver_log)
    attempt = None
    for entry in history:
        if entry.get("attempt") != attempt:
            attempt = entry.get("attempt")
            lines.append(f"-- attempt {attempt} (a resumed run or a restarted worker starts a new one)"
                         if attempt != 1 else "-- attempt 1")
        lines.append(epoch_line(entry, epochs=epochs))
    lines.append(summary)
    return "\n".join(lines) + "\n"


def _audio_params(manifest: DatasetManifest) -> dict[str, Any]:
    """The prepare config's audio section plus ``test_hop_seconds``: how predict segments new audio."""
    audio = dataclasses.asdict(manifest.audio_config)
    audio["test_hop_seconds"] = float(manifest.audio_config.hop_for("test"))
    return audio


def _write_outputs(out: Path, *, plan: RunPlan, config: Config, model: torch.nn.Module, params: Mapping[str, Any],
                   labels: list[str], best_epoch: int, best: Mapping[str, Any], history: list[dict[str, Any]],
                   log_text: str, pretrained: Mapping[str, str] | None = None) -> None:
    from spectrotune.bundle import save_bundle
    from spectrotune.evaluation.plots import plot_learning_curves, save_figure

    n_mels, n_frames = plan.input_shape
    name = config.model.name
    out.mkdir(parents=True, exist_ok=True)
    save_bundle(
        out / BUNDLE_DIR, model=model, model_name=name, model_params=params, labels=labels,
        input_shape=(n_mels, n_frames), source_kind=plan.manifest.source.kind,
        audio=_audio_params(plan.manifest), features=dataclasses.asdict(plan.manifest.feature_config),
        norm_mean=plan.norm_mean,
        norm_std=plan.norm_std, metrics={"best_epoch": best_epoch, "best": best, "history": history,
                                         # the backbone the workers loaded, as they digested it (transfer only)
                                         **({"pretrained": dict(pretrained)} if pretrained else {})},
        config=config.to_dict(), config_hash=config.hash(),
    )  # fmt: skip
    save_config(config, out)
    storage.write_text(out / HISTORY, json.dumps(history, indent=2))
    storage.write_text(out / TRAIN_LOG, log_text)
    save_figure(plot_learning_curves({"history": history, "best_epoch": best_epoch}), out / CURVES_PNG)
