"""``spectrotune train``: fit a genre CNN on a prepared Parquet dataset with Ray Train (V2).

The driver (:func:`train`) reads the manifest, computes per-mel-bin normalisation statistics over the train split
(streamed with pyarrow, float64 accumulation), builds one Ray Dataset per split and runs a ``TorchTrainer``. Each
worker (:func:`train_fn_per_worker`) streams its share of the train split (``DataConfig(datasets_to_split=
["train"])``) and evaluates on the *whole* valid split, so every rank computes the same clip accuracy (mean of the
segment probabilities per track, argmax vs label) and early stopping needs no extra coordination. After the fit the
best checkpoint by ``valid_clip_accuracy`` becomes a model bundle (:mod:`spectrotune.bundle`).

Output layout::

    OUT/
      bundle/          the model bundle (weights of the best epoch, labels, audio/feature parameters, metrics)
      config.yaml      the resolved config
      history.json     one entry per epoch (the metrics below)
      curves.png       loss and accuracy per epoch
      train.log        this command's messages and one line per epoch of the run (what the console showed)
      runs/<run name>/ Ray Train's run folder: checkpoints and the checkpoint-manager snapshot

Per-epoch metrics: ``epoch``, ``train_loss``, ``train_accuracy``, ``valid_loss``, ``valid_accuracy`` (per segment),
``valid_clip_accuracy``, ``lr`` (at the end of the epoch), ``epoch_seconds`` (train + validation),
``train_seconds``, ``samples_per_second`` (train samples of all workers / train seconds) and ``attempt`` (1 for the
first session of a run, +1 for every resumption, so a history shows where a run was resumed).

Resuming. Ray Train V2 keeps a checkpoint-manager snapshot in the run folder (``storage_path/name``); a new
``TorchTrainer`` with the same ``RunConfig(name, storage_path)`` loads it and hands its latest checkpoint to the
workers through ``ray.train.get_checkpoint()``, exactly as after a worker failure (``FailureConfig``). The worker
loop therefore only has one resume path: load weights, optimiser, schedule, scaler, history and early-stopping
state, continue at ``epoch + 1``. The default run name is ``train-<hash of the config and the dataset>`` (the
dataset's :func:`dataset_id`), so rerunning the same command on the same prepared dataset continues the same run
(a finished run just rebuilds the bundle); change the config or prepare the data again and a new run starts. The
checkpoint spec holds the dataset id too, so an explicit ``train.run_name`` cannot resume onto other data.

Validation uses the valid split's clean rows (see :func:`_valid_variants`); ``train.variants`` filters the train
rows.

Every checkpoint holds ``model.safetensors`` (the unwrapped model, normalisation included), ``state.pt`` (plain
tensors and dicts, read back with ``torch.load(weights_only=True)``) and ``spec.json`` (model, labels, input shape
and dataset id, used to refuse resuming a run with another model or onto other data). Only rank 0 writes checkpoints.

Randomness: the model is initialised from ``seed``; the dropout RNG, the augmentation generator and Ray Data's
local shuffle are reseeded at the start of every epoch from ``(seed, rank, epoch)``, so a resumed run draws the
same augmentation as an uninterrupted one would have. The train split is read with Ray Data's ``preserve_order``,
so its rows reach the shuffle buffer in the same order whichever read task finishes first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as pads
import torch
import torch.nn.functional as F

from spectrotune import storage
from spectrotune.config import Config, save_config
from spectrotune.dataset import CLEAN, LABEL, MEL, TRACK_ID, VARIANT, read_manifest, shards_dir
from spectrotune.errors import ConfigError, DatasetError, SpectrotuneError
from spectrotune.evaluation.scores import clip_accuracy
from spectrotune.schema import METRIC_KEYS, SCORE

__all__ = [
    "METRIC_KEYS",
    "RowSelection",
    "RunPlan",
    "TrainResult",
    "clip_accuracy",
    "export_run",
    "lr_factor",
    "make_trainer",
    "norm_stats",
    "plan_run",
    "run_history",
    "track_best",
    "train",
    "train_fn_per_worker",
]

WEIGHTS = "model.safetensors"
STATE = "state.pt"
SPEC = "spec.json"
STD_FLOOR = 1e-3
MATERIALIZE_FRACTION = 0.3
LOCAL_READ_BYTES = 256 * 2**20  # splits up to this size are read with pyarrow in the driver (see make_trainer)
ONECYCLE_DIV = 25.0  # torch OneCycleLR defaults: start at lr / 25, end at lr / (25 * 1e4)
ONECYCLE_FINAL_DIV = 1e4


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    bundle : Path or str
        The model bundle folder (weights of the best epoch); a string when the output is a URI.
    run_dir : Path or str
        Ray Train's run folder (checkpoints), ``storage_path/run_name``.
    metrics : dict
        The best epoch's metrics (see :data:`METRIC_KEYS`).
    history : list of dict
        Metrics of every epoch trained in this run, in order.
    """

    bundle: Path | str
    run_dir: Path | str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


# ----------------------------------------------------------------------------------------------- pure helpers


def norm_stats(
    batches: Any, *, n_mels: int, std_floor: float = STD_FLOOR
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-mel-bin mean and standard deviation over a stream of mel batches.

    Parameters
    ----------
    batches : iterable of ndarray float [rows, n_mels, n_frames]
        The train split's mel values (dB, or colormap positions for image datasets), in any number of batches.
    n_mels : int
        Mel bins (rows of each segment).
    std_floor : float
        Smallest standard deviation returned, so constant bins (e.g. above ``fmax``) do not divide by zero.

    Returns
    -------
    mean, std : ndarray float32 [n_mels]
        Accumulated in float64 (sums of squares of ~10^8 dB values lose digits in float32).
    rows : int
        Segments seen.
    """
    total = np.zeros(n_mels, np.float64)
    total_sq = np.zeros(n_mels, np.float64)
    count = 0
    rows = 0
    for mel in batches:
        mel = np.asarray(mel)
        if mel.ndim != 3 or mel.shape[1] != n_mels:
            raise DatasetError(f"mel batch has shape {mel.shape}, expected [rows, {n_mels}, n_frames]")
        m = mel.astype(np.float64, copy=False)
        total += m.sum(axis=(0, 2))
        total_sq += np.square(m).sum(axis=(0, 2))
        count += mel.shape[0] * mel.shape[2]
        rows += mel.shape[0]
    if count == 0:
        return np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32), 0
    mean = total / count
    var = np.maximum(total_sq / count - np.square(mean), 0.0)
    std = np.maximum(np.sqrt(var), std_floor)
    return mean.astype(np.float32), std.astype(np.float32), rows


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based), applied per step by ``LambdaLR``.

    ``cosine``: linear warm-up from ``1/warmup_steps`` to 1 over ``warmup_steps``, then cosine decay to 0 at
    ``total_steps``. ``constant``: the same warm-up, then 1. ``onecycle``: the shape of torch's ``OneCycleLR``
    (cosine up from 1/25 over ``warmup_steps`` — 30 % of the run when 0 — then cosine down to 1/(25·10^4));
    momentum is not cycled. Steps past ``total_steps`` keep the final value (a schedule never raises).
    """
    total_steps = max(1, int(total_steps))
    step = min(max(0, int(step)), total_steps)
    if schedule == "onecycle":
        up = warmup_steps if warmup_steps > 0 else max(1, round(0.3 * total_steps))
        up = min(up, total_steps)
        start, end = 1.0 / ONECYCLE_DIV, 1.0 / (ONECYCLE_DIV * ONECYCLE_FINAL_DIV)
        if step < up:
            t = step / up
            return _cos_interp(start, 1.0, t)
        t = (step - up) / max(1, total_steps - up)
        return _cos_interp(1.0, end, t)
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    raise ConfigError(f"train.schedule: unknown schedule {schedule!r} (valid: cosine, onecycle, constant)")


def _cos_interp(start: float, end: float, t: float) -> float:
    """Cosine interpolation from ``start`` (t=0) to ``end`` (t=1)."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, t))))


def epoch_line(metrics: Mapping[str, Any], *, epochs: int) -> str:
    """One epoch's metrics as the one line the console (rank 0) and ``train.log`` show."""
    return (f"epoch {metrics['epoch']}/{epochs}: train loss {metrics['train_loss']:.4f} acc "
            f"{metrics['train_accuracy']:.3f} | valid loss {metrics['valid_loss']:.4f} acc "
            f"{metrics['valid_accuracy']:.3f} clip {metrics[SCORE]:.3f} | {metrics['samples_per_second']:.0f} samples/s")


def track_best(state: Mapping[str, Any], metrics: Mapping[str, Any], *, patience: int) -> dict[str, Any]:
    """Early-stopping bookkeeping after one epoch: the state's new ``epoch``, ``history``, ``best``, ``best_epoch``,
    ``bad_epochs`` and ``stop``.

    An epoch improves when its :data:`SCORE` (valid clip accuracy) beats the best so far strictly; a tie keeps the
    earlier epoch (fewer epochs, same score). ``stop`` is True once ``patience`` epochs in a row did not improve
    (``patience`` 0: never stop early).
    """
    epoch = int(metrics["epoch"])
    best = state.get("best")
    if best is None or metrics[SCORE] > best[SCORE]:
        best, best_epoch, bad_epochs = dict(metrics), epoch, 0
    else:
        best_epoch, bad_epochs = int(state["best_epoch"]), int(state["bad_epochs"]) + 1
    return {"epoch": epoch, "history": [*state.get("history", []), dict(metrics)], "best": best,
            "best_epoch": best_epoch, "bad_epochs": bad_epochs, "stop": bool(patience) and bad_epochs >= patience}


def _epoch_seed(seed: int, rank: int, epoch: int) -> int:
    # Distinct, reproducible streams per (seed, rank, epoch): a resumed epoch draws what it would have drawn.
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1, np.uint64)[0] >> 1)


def _resolve_use_gpu(value: str, cluster_gpus: float) -> bool:
    if value == "auto":
        return cluster_gpus > 0
    return value == "true"


# ----------------------------------------------------------------------------------------------- worker


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _write_checkpoint(directory: Path, *, model: torch.nn.Module, state: Mapping[str, Any],
                      spec: Mapping[str, Any]) -> None:
    from safetensors.torch import save_file

    weights = {k: v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    save_file(weights, str(directory / WEIGHTS))
    torch.save(dict(state), directory / STATE)
    (directory / SPEC).write_text(json.dumps(dict(spec), indent=2), encoding="utf-8")


def _read_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Weights, training state and spec of a checkpoint folder; nothing here executes stored code."""
    from safetensors.torch import load_file

    weights = load_file(str(directory / WEIGHTS))
    state = torch.load(directory / STATE, map_location="cpu", weights_only=True)
    spec = json.loads((directory / SPEC).read_text(encoding="utf-8"))
    return weights, state, spec


def _all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _broadcast_flag(flag: bool, device: torch.device) -> bool:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def train_fn_per_worker(loop_config: dict[str, Any]) -> None:
    """The Ray Train loop run by every worker (module level so Ray can pickle it by reference).

    ``loop_config`` (built by :func:`train`): ``config`` (the :class:`Config`), ``n_classes``, ``n_mels``,
    ``norm_mean``/``norm_std`` (float32 [n_mels]), ``steps_per_epoch``, ``spec`` (dict stored in checkpoints),
    ``run_dir`` (str, for the fault-injection marker) and ``progress`` (bool: rank 0 prints one line per epoch).
    """
    import ray.train
    import ray.train.torch

    from spectrotune.training.augment import mixup, soft_cross_entropy, spec_augment
    from spectrotune.models.networks import build_model, model_params

    config: Config = loop_config["config"]
    tc = config.train
    _quiet_train_worker()
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    device = ray.train.torch.get_device()
    n_classes = int(loop_config["n_classes"])
    torch.set_num_threads(max(1, int(tc.cpus_per_worker)))

    torch.manual_seed(config.seed)  # identical initial weights on every rank (DDP would broadcast them anyway)
    model = build_model(config.model.name, n_classes=n_classes, n_mels=int(loop_config["n_mels"]),
                        params=model_params(config.model.name, config.model.params()),
                        # copies: arrays from the object store are read-only, which torch warns about
                        norm_mean=np.array(loop_config["norm_mean"]), norm_std=np.array(loop_config["norm_std"]))

    state: dict[str, Any] = {"epoch": 0, "history": [], "best": None, "best_epoch": 0, "bad_epochs": 0,
                             "attempt": 0}
    checkpoint = ray.train.get_checkpoint()
    loaded_state = None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            weights, loaded_state, spec = _read_checkpoint(Path(directory))
        if spec != loop_config["spec"]:
            raise ConfigError(f"cannot resume this run with {_spec_difference(spec, loop_config['spec'])}; "
                              "use another train.run_name")
        model.load_state_dict(weights)
        state.update({k: loaded_state[k] for k in ("epoch", "history", "best", "best_epoch", "bad_epochs",
                                                   "attempt")})
    state["attempt"] = int(state["attempt"]) + 1

    model = ray.train.torch.prepare_model(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = int(loop_config["steps_per_epoch"])
    total_steps, warmup_steps = tc.epochs * steps_per_epoch, round(tc.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps=total_steps, warmup_steps=warmup_steps,
                                          schedule=tc.schedule))
    use_amp = bool(tc.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if loaded_state is not None:
        optimizer.load_state_dict(loaded_state["optimizer"])
        scheduler.load_state_dict(loaded_state["scheduler"])
        if use_amp and loaded_state.get("scaler"):
            scaler.load_state_dict(loaded_state["scaler"])

    train_shard = ray.train.get_dataset_shard("train")
    valid_shard = ray.train.get_dataset_shard("valid")
    generator = torch.Generator()  # CPU: spec_augment / mixup draw there and move masks to the batch's device
    start_epoch = int(state["epoch"]) + 1
    stopped = bool(tc.patience) and int(state["bad_epochs"]) >= tc.patience
    for epoch in range(start_epoch, tc.epochs + 1):
        if stopped:
            break
        t0 = time.perf_counter()
        epoch_seed = _epoch_seed(config.seed, rank, epoch)
        torch.manual_seed(epoch_seed)
        generator.manual_seed(epoch_seed + 1)
        model.train()
        # Accumulated on the device: converting every step would synchronise a GPU once per batch.
        loss_acc = torch.zeros((), dtype=torch.float64, device=device)
        correct_acc = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for batch in train_shard.iter_torch_batches(
            batch_size=tc.batch_size, local_shuffle_buffer_size=tc.shuffle_buffer or None,
            local_shuffle_seed=epoch_seed % (2**31) if tc.shuffle_buffer else None,
            prefetch_batches=tc.prefetch_batches, device=device,
        ):  # fmt: skip
            x, y = batch[MEL].float(), batch[LABEL].long()
            if tc.spec_augment:
                x = spec_augment(x, generator=generator, time_masks=tc.time_masks, time_width=tc.time_width,
                                 freq_masks=tc.freq_masks, freq_width=tc.freq_width)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                if tc.mixup_alpha > 0:
                    x, y_soft = mixup(x, y, alpha=tc.mixup_alpha, n_classes=n_classes, generator=generator)
                    logits = model(x)
                    loss = soft_cross_entropy(logits.float(), y_soft, label_smoothing=tc.label_smoothing)
                else:
                    logits = model(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=tc.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_acc += loss.detach().double() * y.shape[0]
            correct_acc += (logits.detach().argmax(dim=1) == y).sum()
            seen += int(y.shape[0])
        loss_sum, correct = float(loss_acc), float(correct_acc)  # waits for the device: time after this
        train_seconds = time.perf_counter() - t0
        loss_sum, correct, seen = _all_reduce_sum([loss_sum, correct, float(seen)], device)

        valid = _evaluate(_unwrap(model), valid_shard, device=device, use_amp=use_amp, batch_size=tc.batch_size,
                          prefetch_batches=tc.prefetch_batches)
        metrics = {
            "epoch": epoch,
            "train_loss": loss_sum / max(seen, 1.0),
            "train_accuracy": correct / max(seen, 1.0),
            **valid,
            "lr": float(scheduler.get_last_lr()[0]),
            "epoch_seconds": time.perf_counter() - t0,
            "train_seconds": train_seconds,
            "samples_per_second": seen / max(train_seconds, 1e-9),
            "attempt": int(state["attempt"]),
        }
        state.update(track_best(state, metrics, patience=tc.patience))
        # Ranks see the same valid split but not bit-identical weights' BN buffers; rank 0 decides for all.
        stopped = _broadcast_flag(state["stop"], device)

        name = f"checkpoint_epoch_{epoch:04d}"
        if rank == 0:
            if loop_config.get("progress", False):
                # Not print(): Ray Train patches it in workers to log *and* echo, so each line came out twice.
                sys.stdout.write(epoch_line(metrics, epochs=tc.epochs) + "\n")
                sys.stdout.flush()
            with tempfile.TemporaryDirectory() as tmp:
                _write_checkpoint(Path(tmp), model=model, spec=loop_config["spec"], state={
                    **state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict()})
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                                 checkpoint_dir_name=name)
            _maybe_inject_fault(epoch, fault_epoch=tc.fault_kill_epoch, run_dir=loop_config["run_dir"])
        else:
            ray.train.report(metrics, checkpoint=None, checkpoint_dir_name=name)


def _quiet_train_worker() -> None:
    """Ray's per-epoch chatter off in this training worker (see :mod:`spectrotune.runtime`).

    Also Ray Train's own "Reporting training result N: <every metric>" line: its logger is named after its file
    path instead of ``ray.train.*``, so ``RunConfig(logging_config=...)`` does not reach it.
    """
    import logging

    from spectrotune.runtime import quiet_worker_logs

    quiet_worker_logs()
    try:
        from ray.train.v2._internal.execution import context as train_context

        train_context.logger.setLevel(logging.WARNING)
    except (ImportError, AttributeError):  # a Ray whose internals moved: the line is noise, not an error
        pass


def _maybe_inject_fault(epoch: int, *, fault_epoch: int | None, run_dir: str) -> None:
    """Testing aid: after ``fault_epoch``'s checkpoint is registered, kill this worker process once."""
    if fault_epoch is None or epoch != fault_epoch:
        return
    marker = storage.join(run_dir, f"fault-injected-epoch-{epoch}")
    if storage.exists(marker):
        return
    import ray.train

    # report() returns once the checkpoint is uploaded, but the controller registers it asynchronously: wait
    # until it has, or the restart would resume from the epoch before.
    try:
        ray.train.get_all_reported_checkpoints(timeout_s=120)
    except Exception:  # noqa: BLE001 - best effort; the kill is what is being tested
        time.sleep(5)
    storage.write_text(marker, f"worker killed after epoch {epoch} (train.fault_kill_epoch)\n")
    print(f"fault injection: killing rank 0 after epoch {epoch}", flush=True)
    os._exit(1)


@torch.no_grad()
def _evaluate(model: torch.nn.Module, shard: Any, *, device: torch.device, use_amp: bool, batch_size: int,
              prefetch_batches: int) -> dict[str, float]:
    """Loss, segment accuracy and clip accuracy over the whole valid split (every rank sees all of it)."""
    model.eval()
    probs, labels, tracks, loss_sum = [], [], [], 0.0
    for batch in shard.iter_batches(batch_size=max(batch_size, 256), batch_format="numpy",
                                    prefetch_batches=prefetch_batches):
        x = torch.from_numpy(np.ascontiguousarray(batch[MEL], dtype=np.float32)).to(device)
        y = torch.from_numpy(batch[LABEL].astype(np.int64)).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(x).float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        probs.append(torch.softmax(logits, dim=1).cpu().numpy())
        labels.append(batch[LABEL].astype(np.int64))
        tracks.append(np.asarray(batch[TRACK_ID]).astype(str))
    if not probs:
        return {"valid_loss": float("nan"), "valid_accuracy": 0.0, SCORE: 0.0}
    p, y_all, t_all = np.concatenate(probs), np.concatenate(labels), np.concatenate(tracks)
    return {"valid_loss": loss_sum / len(y_all), "valid_accuracy": float(np.mean(p.argmax(1) == y_all)),
            SCORE: clip_accuracy(p, y_all, t_all)}


# ----------------------------------------------------------------------------------------------- driver


def _split_dir(data: Path | str, split: str) -> Path | str:
    return storage.join(shards_dir(data), f"split={split}")


@dataclass(frozen=True)
class RowSelection:
    """Which shard rows feed one side (train or valid) of a run.

    ``folders`` are split folders of the prepared dataset; ``tracks`` (``None`` = every track in them) and
    ``variants`` (empty = every variant) filter their rows. A run on the dataset's own splits reads
    ``split=train`` / ``split=valid`` unfiltered by track; a cross-validation fold reads every split folder and
    keeps the fold's tracks.
    """

    folders: tuple[Path, ...]
    tracks: tuple[str, ...] | None = None
    variants: tuple[str, ...] = ()
    name: str = "train"

    def arrow_filter(self) -> Any:
        """The pyarrow expression selecting the rows (``None`` = all rows)."""
        parts = []
        if self.tracks is not None:
            parts.append(pads.field(TRACK_ID).isin(list(self.tracks)))
        if self.variants:
            parts.append(pads.field(VARIANT).isin(list(self.variants)))
        if not parts:
            return None
        expr = parts[0]
        for part in parts[1:]:
            expr = expr & part
        return expr

    def arrow_dataset(self) -> pads.Dataset:
        datasets = [pads.dataset(str(folder), format="parquet") for folder in self.folders]
        return datasets[0] if len(datasets) == 1 else pads.dataset(datasets)

    def arrow_table(self, columns: list[str]) -> Any:
        """The selected rows' ``columns`` as one ``pyarrow.Table``, read in this process."""
        return self.arrow_dataset().to_table(columns=columns, filter=self.arrow_filter())

    def ray_dataset(self, columns: list[str]) -> Any:
        """A Ray Dataset of ``columns`` of the selected rows (filters run in Ray Data, before the selection)."""
        import ray
        from ray.data.expressions import col

        ds = ray.data.read_parquet([str(folder) for folder in self.folders])
        filters = ([(TRACK_ID, list(self.tracks))] if self.tracks is not None else []) + (
            [(VARIANT, list(self.variants))] if self.variants else [])
        if filters:
            ds = ds.select_columns(list(dict.fromkeys([*columns, *(key for key, _ in filters)])))
            for key, values in filters:
                ds = ds.filter(expr=col(key).is_in(values))
        return ds.select_columns(columns)


def _scan_rows(rows: RowSelection, *, n_mels: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Normalisation statistics and row count of the selected rows (streamed, one batch in memory)."""
    dataset = rows.arrow_dataset()

    def mels():
        for batch in dataset.to_batches(columns=[MEL], filter=rows.arrow_filter(), batch_size=256):
            if batch.num_rows:
                yield batch.column(MEL).to_numpy_ndarray()

    return norm_stats(mels(), n_mels=n_mels)


def _count_rows(rows: RowSelection) -> int:
    return int(rows.arrow_dataset().count_rows(filter=rows.arrow_filter()))


def _check_rows(data: Path | str, rows: RowSelection) -> int:
    """Row count of a selection; a missing, unreadable or empty selection is a DatasetError naming it."""
    for folder in rows.folders:
        if not any(f.endswith(".parquet") for f in storage.list_files(folder)):
            raise DatasetError(f"{data}: the {rows.name} split is empty (no shards in {folder})")
    try:
        n = _count_rows(rows)
    except (OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError) on damaged files
        raise DatasetError(f"{', '.join(map(str, rows.folders))}: cannot read the {rows.name} shards: {e}") from e
    if n == 0:
        if rows.tracks is not None:
            raise DatasetError(f"{data}: no rows for the {len(rows.tracks)} {rows.name} track(s)"
                               + (f" with variants {list(rows.variants)}" if rows.variants else ""))
        which = f" for train.variants={list(rows.variants)}" if rows.variants else ""
        raise DatasetError(f"{data}: the {rows.name} split has no rows{which}")
    return n


def _should_materialize(setting: bool | None, *, nbytes: int, object_store_bytes: float) -> bool:
    """Whether to hold the splits in the object store (``train.materialize``; ``None`` decides by size)."""
    if setting is None:
        return nbytes <= MATERIALIZE_FRACTION * object_store_bytes
    return bool(setting)


def dataset_id(manifest: Mapping[str, Any]) -> str:
    """A short fingerprint of one prepared dataset: its whole manifest (config, counts, creation time), hashed.

    Preparing again, even with the same config and source, gives a new id: the audio may have changed.
    """
    text = json.dumps(manifest, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _run_name(config: Config, data_id: str) -> str:
    """``train.run_name``, else ``train-<hash of the config and the dataset>``: rerunning the same command on the
    same prepared dataset continues the run; another config or another dataset starts a new one."""
    if config.train.run_name:
        return config.train.run_name
    return "train-" + hashlib.sha256(f"{config.hash()}:{data_id}".encode()).hexdigest()[:12]


def _model_spec(config: Config, *, labels: Sequence[str], input_shape: Sequence[int], data_id: str
                ) -> dict[str, Any]:
    from spectrotune.models.networks import model_params

    return {"model": config.model.name, "params": model_params(config.model.name, config.model.params()),
            "labels": list(labels), "input_shape": [int(s) for s in input_shape], "data": data_id}


def _valid_variants(manifest: Mapping[str, Any], train_variants: tuple[str, ...]) -> tuple[str, ...]:
    """Validation scores the clean rows, as the test report's headline does; noisy valid rows (``noise.splits``
    including valid) would mix two questions into the number that picks the best epoch. Without clean valid rows
    (``noise.keep_clean: false``) the ``train.variants`` filter applies (empty: every variant)."""
    per_genre = (manifest.get("counts", {}).get("per_split_genre_variant", {}).get("valid") or {}).values()
    present = {variant for variants in per_genre for variant in variants}
    return (CLEAN,) if CLEAN in present else train_variants


def _pick_best(result: Any) -> tuple[Any, dict[str, Any]]:
    """The retained checkpoint with the highest clip accuracy; ties go to the earliest epoch."""
    candidates = [(c, m) for c, m in (result.best_checkpoints or []) if m and SCORE in m]
    if not candidates:
        if result.checkpoint is None:
            raise SpectrotuneError("training finished without a checkpoint (no epoch was trained)")
        return result.checkpoint, dict(result.metrics or {})
    return max(candidates, key=lambda cm: (cm[1][SCORE], -int(cm[1].get("epoch", 0))))


def _audio_params(prepare_config: Mapping[str, Any]) -> dict[str, Any]:
    """The prepare config's audio section plus ``test_hop_seconds``: how predict segments new audio."""
    audio = dict(prepare_config.get("audio", {}))
    hops = audio.get("hop_seconds") or {}
    hop = hops.get("test") if isinstance(hops, Mapping) else hops
    audio["test_hop_seconds"] = float(hop) if hop is not None else float(audio.get("segment_seconds", 3.0))
    return audio


def plot_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Draw loss and accuracy per epoch (train vs valid, plus valid clip accuracy) to a PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from spectrotune.evaluation.plots import save_figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax_loss.plot(epochs, [h["valid_loss"] for h in history], marker="o", label="valid")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy (nats)", title="loss")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], marker="o", label="train (segment)")
    ax_acc.plot(epochs, [h["valid_accuracy"] for h in history], marker="o", label="valid (segment)")
    ax_acc.plot(epochs, [h[SCORE] for h in history], marker="s", label="valid (clip)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


def _check_resumable(run_dir: Path | str, spec: Mapping[str, Any], *, epochs: int,
                     log: Callable[[str], None]) -> None:
    """Refuse early (before starting workers) to resume a run made with another model or on another dataset."""
    from ray.train import Result

    if not storage.is_file(storage.join(run_dir, "checkpoint_manager_snapshot.json")):
        return
    try:
        previous = Result.from_path(str(run_dir))
    except Exception:  # noqa: BLE001 - a foreign or damaged run folder: let Ray Train report it
        return
    if previous.checkpoint is None:
        return
    with previous.checkpoint.as_directory() as directory:
        spec_path = Path(directory) / SPEC
        old = json.loads(spec_path.read_text(encoding="utf-8")) if spec_path.is_file() else None
    if old is not None and old != dict(spec):
        raise ConfigError(f"{run_dir}: cannot resume this run with {_spec_difference(old, spec)}; "
                          f"set another train.run_name or remove the run folder")
    done = int((previous.metrics or {}).get("epoch", 0))
    if done >= epochs:
        log(f"run {storage.name(run_dir)} already trained {done} epoch(s): rebuilding the bundle from its "
            "checkpoints")
    else:
        log(f"resuming run {storage.name(run_dir)} after epoch {done} (of {epochs})")


def _spec_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What differs between a run's checkpoint spec and this config's, in words (for the resume refusal)."""
    what = {"data": "another prepared dataset", "model": "another model", "params": "other model parameters",
            "labels": "other labels", "input_shape": "another input shape"}
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return "; ".join(f"{what.get(k, k)} (run: {old.get(k)!r}, now: {new.get(k)!r})" for k in keys)


def _training_error(error: Exception, *, run_dir: Path | str) -> SpectrotuneError:
    """One clear error for a failed fit: a worker's own SpectrotuneError as is, else the failure's last line."""
    failures = dict(getattr(error, "worker_failures", None) or {})
    for rank, failure in sorted(failures.items()):
        base = getattr(failure, "_base_exc", failure)  # Ray wraps worker exceptions with their traceback text
        if isinstance(base, SpectrotuneError):
            return type(base)(str(base))
        lines = [line for line in str(failure).strip().splitlines() if line.strip()]
        return SpectrotuneError(f"training run {run_dir} failed on rank {rank}: {lines[-1] if lines else base!r}")
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return SpectrotuneError(f"training run {run_dir} failed: {lines[-1] if lines else error!r}")


@dataclass(frozen=True)
class RunPlan:
    """What a training run needs that the driver computes before any worker starts (see :func:`plan_run`).

    Attributes
    ----------
    data : Path
        The prepared dataset.
    config : Config
        The run's config.
    manifest : dict
        The dataset's manifest.
    labels : tuple of str
        Genre names; ``n_classes = len(labels)`` comes from the manifest, never from the config.
    input_shape : (int, int)
        ``(n_mels, n_frames)`` of one segment.
    train_rows, valid_rows : RowSelection
        The rows trained on and validated on.
    n_train, n_valid : int
        Their row counts (segments x variants).
    norm_mean, norm_std : ndarray float32 [n_mels]
        Per-mel-bin normalisation statistics of the train rows.
    spec : dict
        Model and data shape stored in every checkpoint (a resumed run must match it).
    """

    data: Path
    config: Config
    manifest: dict[str, Any]
    labels: tuple[str, ...]
    input_shape: tuple[int, int]
    train_rows: RowSelection
    valid_rows: RowSelection
    n_train: int
    n_valid: int
    norm_mean: np.ndarray
    norm_std: np.ndarray
    spec: dict[str, Any]


def plan_run(
    data: str | Path,
    *,
    config: Config,
    tracks: Mapping[str, Sequence[str]] | None = None,
) -> RunPlan:
    """Read the manifest, check the rows a run will use and compute their normalisation statistics.

    Parameters
    ----------
    data : path
        A prepared dataset.
    config : Config
        ``train.variants`` filters the rows; ``model`` gives the checkpoint spec.
    tracks : mapping, optional
        ``{"train": track ids, "valid": track ids}`` to train and validate on those tracks, wherever the dataset
        put them (cross-validation folds). Train rows keep every variant allowed by ``train.variants``; valid
        rows are the ``clean`` variant only, like the dataset's own valid split. ``None``: the dataset's
        ``train`` and ``valid`` splits.

    Raises
    ------
    DatasetError
        Not a prepared dataset, or no rows to train or validate on.
    ConfigError
        ``train.variants`` names a variant the dataset does not have.
    """
    data = storage.norm(data)
    manifest = read_manifest(data)
    tc = config.train
    labels = tuple(manifest["labels"])
    n_mels, n_frames = (int(s) for s in manifest["mel"]["shape"])
    variants = tuple(tc.variants)
    if variants:
        known = set(manifest.get("variants", variants))
        unknown = [v for v in variants if v not in known]
        if unknown:
            raise ConfigError(f"train.variants: {unknown} not in the dataset (it has {sorted(known)})")
    if tracks is None:
        train_rows = RowSelection((_split_dir(data, "train"),), None, variants, "train")
        valid_rows = RowSelection((_split_dir(data, "valid"),), None, _valid_variants(manifest, variants), "valid")
    else:
        missing = [k for k in ("train", "valid") if k not in tracks]
        if missing:
            raise ConfigError(f"tracks: needs keys 'train' and 'valid', missing {missing}")
        overlap = sorted(set(tracks["train"]) & set(tracks["valid"]))
        if overlap:
            raise DatasetError(f"{len(overlap)} track(s) both in train and valid, e.g. {overlap[0]!r}")
        folders = tuple(storage.join(shards_dir(data), name)
                        for name in sorted({f.split("/", 1)[0] for f in storage.list_files(shards_dir(data))})
                        if name.startswith("split="))
        train_rows = RowSelection(folders, tuple(sorted(tracks["train"])), variants, "train")
        valid_rows = RowSelection(folders, tuple(sorted(tracks["valid"])), (CLEAN,), "valid")
    n_train = _check_rows(data, train_rows)
    n_valid = _check_rows(data, valid_rows)
    norm_mean, norm_std, _ = _scan_rows(train_rows, n_mels=n_mels)
    spec = _model_spec(config, labels=labels, input_shape=(n_mels, n_frames), data_id=dataset_id(manifest))
    return RunPlan(data=data, config=config, manifest=manifest, labels=labels, input_shape=(n_mels, n_frames),
                   train_rows=train_rows, valid_rows=valid_rows, n_train=n_train, n_valid=n_valid,
                   norm_mean=norm_mean, norm_std=norm_std, spec=spec)


def make_trainer(
    plan: RunPlan,
    *,
    run_name: str,
    storage_path: str,
    callbacks: Sequence[Any] = (),
    progress: bool = False,
    resources_per_worker: Mapping[str, float] | None = None,
    use_gpu: bool | None = None,
    log: Callable[[str], None] = print,
) -> Any:
    """The ``TorchTrainer`` of one run (Ray must be initialised): workers run :func:`train_fn_per_worker`.

    Parameters
    ----------
    plan : RunPlan
    run_name, storage_path : str
        Ray Train's ``RunConfig(name, storage_path)``; the same pair resumes the run. ``storage_path`` may be a
        local folder or a URI.
    callbacks : sequence
        Ray Train ``UserCallback`` objects (e.g. Tune's ``TuneReportCallback`` when the run is a trial).
    progress : bool
        One line per epoch from rank 0 (Ray Data's progress bars stay off while training, see
        :func:`_quiet_data_context`).
    resources_per_worker : mapping, optional
        Overrides ``{"CPU": train.cpus_per_worker}`` (e.g. fractional GPUs per trial in a sweep).
    use_gpu : bool, optional
        Overrides ``train.use_gpu`` (``auto``: when the cluster has GPUs).
    log : callable
    """
    import ray
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config, tc = plan.config, plan.config.train
    if use_gpu is None:
        use_gpu = _resolve_use_gpu(tc.use_gpu, float(ray.cluster_resources().get("GPU", 0)))
    n_mels, n_frames = plan.input_shape
    rows_per_worker = plan.n_train // tc.num_workers  # streaming_split(equal=True) drops the remainder
    loop_config = {
        "config": config, "n_classes": len(plan.labels), "n_mels": n_mels, "norm_mean": plan.norm_mean,
        "norm_std": plan.norm_std, "steps_per_epoch": max(1, math.ceil(rows_per_worker / tc.batch_size)),
        "spec": plan.spec, "run_dir": f"{storage_path.rstrip('/')}/{run_name}", "progress": progress,
    }
    columns = {"train": [MEL, LABEL], "valid": [MEL, LABEL, TRACK_ID]}
    rows = {"train": plan.train_rows, "valid": plan.valid_rows}
    nbytes = (plan.n_train + plan.n_valid) * n_mels * n_frames * 4
    materialize = _should_materialize(tc.materialize, nbytes=nbytes,
                                      object_store_bytes=float(ray.cluster_resources().get("object_store_memory", 0)))
    with _quiet_data_context():  # each Dataset keeps a copy of the context it was made in; workers get that copy
        if not materialize:
            datasets = {name: rows[name].ray_dataset(columns[name]) for name in rows}
        elif nbytes <= LOCAL_READ_BYTES:
            # Tiny splits (tests, the demo, cross-validation folds): read them here with pyarrow and hand Ray Data
            # one in-memory block each; a Ray Data read costs seconds of task start-up per split on a small machine.
            datasets = {name: ray.data.from_arrow(rows[name].arrow_table(columns[name])) for name in rows}
        else:
            # Small enough: read the shards once instead of once per epoch (each read is a Ray Data execution
            # with its own tasks, seconds of overhead per epoch on a small machine).
            datasets = {name: rows[name].ray_dataset(columns[name]).materialize() for name in rows}
    if materialize:
        log(f"holding {nbytes / 2**20:.0f} MiB of train/valid segments in the object store")
    return TorchTrainer(
        train_fn_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=use_gpu,
                                     resources_per_worker=dict(resources_per_worker or {"CPU": tc.cpus_per_worker})),
        run_config=RunConfig(
            name=run_name, storage_path=storage_path,
            failure_config=FailureConfig(max_failures=tc.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=tc.keep_checkpoints, checkpoint_score_attribute=SCORE,
                                               checkpoint_score_order="max"),
            callbacks=list(callbacks),
            # Ray Train's INFO lines (every report's full metrics, every checkpoint path) drown the epoch lines;
            # Ray still writes every level to its session logs (logs/train/ray-train-sys-*.log).
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train"], execution_options=_ingest_options()),
    )


@contextlib.contextmanager
def _quiet_data_context() -> Iterator[None]:
    """Ray Data without progress bars or "Execution plan" lines while the block runs (then as it was).

    Drawn by remote training workers, every epoch's bars arrive as hundreds of garbled lines; rank 0's epoch line
    says more.
    """
    import ray

    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.print_on_execution_start
    context.enable_progress_bars = context.print_on_execution_start = False
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved


def _ingest_options() -> Any:
    """Train's default ingest options with ``preserve_order``: batches no longer depend on task timing.

    Built here rather than from ``DataConfig.default_ingest_options()``, which passes the deprecated
    ``exclude_resources`` and makes Ray Data warn on every run.
    """
    from ray.data import DataContext, ExecutionOptions

    current = DataContext.get_current().execution_options
    return ExecutionOptions(resource_limits=current.resource_limits, preserve_order=True,
                            verbose_progress=current.verbose_progress)


def run_history(result: Any) -> list[dict[str, Any]]:
    """Metrics of every epoch of a finished run (from its latest checkpoint's state), in order."""
    if result.checkpoint is None:
        raise SpectrotuneError(f"training run {result.path} produced no checkpoint")
    with result.checkpoint.as_directory() as directory:
        _, latest_state, _ = _read_checkpoint(Path(directory))
    return [dict(h) for h in latest_state["history"]]


def export_run(
    plan: RunPlan,
    result: Any,
    out: str | Path,
    *,
    run_dir: Path | None = None,
    log: Callable[[str], None] = print,
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
    """
    from spectrotune.bundle import META as BUNDLE_META
    from spectrotune.models.networks import build_model, model_params

    t_start = time.perf_counter() if t_start is None else t_start
    out = storage.norm(out)
    config = plan.config
    history = run_history(result)
    best_checkpoint, best_metrics = _pick_best(result)
    with best_checkpoint.as_directory() as directory:
        weights, _, _ = _read_checkpoint(Path(directory))
    best_epoch = int(best_metrics["epoch"])
    best = next((h for h in history if int(h["epoch"]) == best_epoch), dict(best_metrics))

    name = config.model.name
    params = model_params(name, config.model.params())
    labels = list(plan.labels)
    model = build_model(name, n_classes=len(labels), n_mels=plan.input_shape[0], params=params, norm_mean=plan.norm_mean,
                        norm_std=plan.norm_std)
    model.load_state_dict(weights)
    model.eval()
    prep = plan.manifest.get("config", {})
    bundle = storage.join(out, "bundle")
    summary = (f"best epoch {best_epoch}/{len(history)}: valid clip accuracy {best[SCORE]:.3f}, segment accuracy "
               f"{best['valid_accuracy']:.3f}; bundle at {bundle} ({time.perf_counter() - t_start:.1f} s)")
    log_text = _train_log(driver_log, history, epochs=config.train.epochs, summary=summary)
    with storage.local_output(out, last=[f"bundle/{BUNDLE_META}"]) as local:
        _write_outputs(local, plan=plan, config=config, model=model, params=params, labels=labels,
                       best_epoch=best_epoch, best=best, history=history, prep=prep, log_text=log_text)
    log(summary)
    return TrainResult(bundle=bundle, run_dir=run_dir if run_dir is not None else str(result.path),
                       metrics=dict(best), history=history)


def _recording(log: Callable[[str], None], lines: list[str]) -> Callable[[str], None]:
    """``log`` that also keeps each message, timestamped, in ``lines`` (for ``train.log``)."""

    def record(message: str) -> None:
        lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}")
        log(message)

    return record


def _train_log(driver_log: Sequence[str], history: Sequence[Mapping[str, Any]], *, epochs: int,
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


def _write_outputs(out: Path, *, plan: RunPlan, config: Config, model: torch.nn.Module, params: Mapping[str, Any],
                   labels: list[str], best_epoch: int, best: Mapping[str, Any], history: list[dict[str, Any]],
                   prep: Mapping[str, Any], log_text: str) -> None:
    from spectrotune.bundle import save_bundle

    n_mels, n_frames = plan.input_shape
    name = config.model.name
    out.mkdir(parents=True, exist_ok=True)
    save_bundle(
        out / "bundle", model=model, model_name=name, model_params=params, labels=labels,
        input_shape=(n_mels, n_frames), source_kind=plan.manifest.get("source", {}).get("kind", "audio"),
        audio=_audio_params(prep), features=dict(prep.get("features", {})), norm_mean=plan.norm_mean,
        norm_std=plan.norm_std, metrics={"best_epoch": best_epoch, "best": best, "history": history},
        config=config.to_dict(), config_hash=config.hash(),
    )  # fmt: skip
    save_config(config, out)
    storage.write_text(out / "history.json", json.dumps(history, indent=2))
    storage.write_text(out / "train.log", log_text)
    plot_curves(history, out / "curves.png")


def train(
    data: str | Path,
    out: str | Path,
    *,
    config: Config,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``config.model`` on the prepared dataset ``data`` with Ray Train; write the bundle to ``out``.

    The steps are public so that a sweep trial (:mod:`spectrotune.tuning.tune`) runs exactly the same code:
    :func:`plan_run` (manifest, row checks, normalisation), :func:`make_trainer` (datasets and the
    ``TorchTrainer``), ``fit()``, :func:`export_run` (best checkpoint -> bundle).

    Parameters
    ----------
    data : path
        A prepared dataset (``spectrotune prepare`` output: manifest + ``data/split=*/`` shards).
    out : path
        Output folder (created; an existing one is reused: a rerun with the same run name continues the run).
    config : Config
        ``config.model``, ``config.train`` and ``config.seed`` are used; the rest is saved with the outputs.
    progress : bool
        One line per epoch.
    log : callable
        Receives the driver's progress messages.

    Returns
    -------
    TrainResult

    Raises
    ------
    DatasetError
        ``data`` is not a prepared dataset, or its train/valid split is empty (after the variant filter).
    ConfigError
        The run to resume was made with another model or dataset shape.
    SpectrotuneError
        Training failed (more worker failures than ``train.max_failures``, or an error in the loop).
    """
    from spectrotune.runtime import init_ray

    t_start = time.perf_counter()
    out = storage.norm(out)
    driver_log: list[str] = []
    log = _recording(log, driver_log)
    log(f"spectrotune train: data {storage.norm(data)}, out {out}, config hash {config.hash()}")
    plan = plan_run(data, config=config)
    tc = config.train
    n_mels, n_frames = plan.input_shape
    log(f"training {config.model.name} on {plan.n_train} train rows ({len(plan.labels)} genres, input "
        f"{n_mels}x{n_frames}); normalisation over the train split")

    init_ray()
    storage_root = storage.norm(tc.storage_path) if tc.storage_path else storage.join(out, "runs")
    run_name = _run_name(config, plan.spec["data"])
    run_dir = storage.join(storage_root, run_name)
    _check_resumable(run_dir, plan.spec, epochs=tc.epochs, log=log)

    storage.makedirs(out)
    storage.makedirs(storage_root)
    trainer = make_trainer(plan, run_name=run_name, storage_path=str(storage_root), progress=progress, log=log)
    try:
        result = trainer.fit()
    except Exception as e:  # TrainingFailedError: worker failures beyond max_failures, or a controller error
        raise _training_error(e, run_dir=run_dir) from e
    if result.checkpoint is None:
        raise SpectrotuneError(f"training run {run_name} produced no checkpoint")
    return export_run(plan, result, out, run_dir=run_dir, log=log, t_start=t_start, driver_log=driver_log)
