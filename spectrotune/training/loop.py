"""The Ray Train worker loop: :func:`train_fn_per_worker` and the named steps it calls once per epoch.

Every worker builds the model from ``seed`` (identical initial weights on every rank), resumes from
``ray.train.get_checkpoint()`` when Ray Train hands it one (a resumed run or a restarted worker: one path for
both), then per epoch :func:`train_one_epoch` on its share of the train split, :func:`validate` on the *whole*
valid split (every rank computes the same clip accuracy, so early stopping needs no extra coordination) and
:func:`report_epoch` (rank 0: the epoch line and the checkpoint; other ranks report metrics only).

Streaming: the next epoch's train read starts once this epoch's has ended (its last rows wait in the shuffle
buffer), so its buffer fills while this epoch's drains and the next train pass does not start by waiting for it
(:mod:`spectrotune.training.batches`).

Randomness: the dropout RNG, the augmentation generator and the local shuffle of the train rows are reseeded every
epoch from ``(seed, rank, epoch)`` (:func:`~spectrotune.training.schedule.epoch_seed`), so a resumed run draws the
same augmentation as an uninterrupted one would have.

Transfer (:mod:`spectrotune.training.transfer`): a fresh run whose loop config carries ``pretrained`` (the driver's
copy of the checkpoint) loads it into the backbone before training; the optimiser gets the head and backbone
groups, and the backbone's batch norms stay in eval mode during the ``train.freeze_epochs`` head-only epochs.

What a killed worker loses: at most the epoch in progress. :func:`report_epoch` returns, and rank 0 prints the
epoch line, only once Ray Train's controller has registered the epoch's checkpoint (see there for the window this
closes). The fault tests SIGKILL a worker process or a node from outside when an epoch line appears
(``tests/training/test_driver.py``, ``tests/test_multinode.py``); there is no fault hook in this loop.

``ray`` is imported inside the functions (importing this module does not load Ray).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from spectrotune.config import Config, TrainConfig
from spectrotune.errors import ConfigError
from spectrotune.schema import LABEL, MEL, METRIC_KEYS, TRACK_ID
from spectrotune.training.accel import AmpPolicy, amp_policy, make_scaler, speed_up_model, to_device
from spectrotune.training.batches import EpochBatches
from spectrotune.training.checkpoint import (RESUMED_KEYS, checkpoint_dir_name, read_checkpoint, spec_difference,
                                             unwrap_model, write_checkpoint)
from spectrotune.training.metrics import epoch_line, valid_metrics
from spectrotune.training.schedule import epoch_seed, initial_state, lr_factor, stopped_early, track_best

__all__ = ["WorkerRun", "report_epoch", "restore_state", "start_worker_run", "train_fn_per_worker", "train_one_epoch",
           "validate"]


@dataclass
class WorkerRun:
    """What one worker trains with: the (DDP-wrapped, maybe compiled) model, its optimiser, LR scheduler, AMP scaler
    and device.

    ``amp`` is the worker's mixed-precision policy (:func:`~spectrotune.training.accel.amp_policy`: autocast and loss
    scaling on CUDA only); ``generator`` is the CPU generator SpecAugment and mixup draw from (reseeded every
    epoch); ``n_classes`` is the number of genres (width of the logits ``[batch, n_classes]``).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    amp: AmpPolicy
    generator: torch.Generator
    n_classes: int
    frozen: bool = False  #: this epoch trains the head only (``train.freeze_epochs``): backbone batch norms in eval


def train_fn_per_worker(loop_config: dict[str, Any]) -> None:
    """The Ray Train loop run by every worker (module level so Ray can pickle it by reference).

    ``loop_config`` (built by :func:`~spectrotune.training.trainer.make_trainer`): ``config`` (the :class:`Config`),
    ``n_classes``, ``n_mels``, ``norm_mean``/``norm_std`` (float32 [n_mels]), ``steps_per_epoch``, ``spec`` (dict
    stored in checkpoints), ``progress`` (bool: rank 0 prints one line per epoch) and
    ``pretrained`` (the backbone's checkpoint,
    :meth:`~spectrotune.training.transfer.PretrainedBackbone.to_loop`, or None).
    """
    import ray.train

    config: Config = loop_config["config"]
    tc = config.train
    _quiet_train_worker()
    rank = ray.train.get_context().get_world_rank()
    run, state = start_worker_run(loop_config)
    train_shard = ray.train.get_dataset_shard("train")
    valid_shard = ray.train.get_dataset_shard("valid")
    stopped = stopped_early(state, patience=tc.patience)
    upcoming: EpochBatches | None = None  # the next epoch's batches, reading once this epoch's read has ended
    for epoch in range(int(state["epoch"]) + 1, tc.epochs + 1):
        if stopped:
            break
        t0 = time.perf_counter()
        run.frozen = epoch <= tc.freeze_epochs
        seed = epoch_seed(config.seed, rank, epoch)
        batches = upcoming or EpochBatches(train_shard, tc=tc, seed=seed, device=run.device)
        upcoming = None if epoch == tc.epochs else EpochBatches(
            train_shard, tc=tc, seed=epoch_seed(config.seed, rank, epoch + 1), device=run.device,
            after=batches.read_done)
        trained = train_one_epoch(run, train_shard, tc=tc, seed=seed, batches=batches)
        metrics = {
            "epoch": epoch,
            **trained,
            **validate(run, valid_shard, tc=tc),
            "lr": float(run.scheduler.get_last_lr()[0]),
            "epoch_seconds": time.perf_counter() - t0,
            "attempt": int(state["attempt"]),
        }
        metrics = {key: metrics[key] for key in METRIC_KEYS}  # history.json lists them in this order
        state.update(track_best(state, metrics, patience=tc.patience))
        # Ranks see the same valid split but not bit-identical weights' BN buffers; rank 0 decides for all.
        stopped = _broadcast_flag(state["stop"], run.device)
        if stopped and upcoming is not None:
            upcoming.close()
        report_epoch(run, state, metrics, rank=rank, loop_config=loop_config)


def start_worker_run(loop_config: dict[str, Any]) -> tuple[WorkerRun, dict[str, Any]]:
    """Build the model, resume it from Ray Train's checkpoint if there is one, and wrap it for DDP.

    Returns the :class:`WorkerRun` and the early-stopping state (see
    :func:`~spectrotune.training.schedule.initial_state`) with ``attempt`` already counting this session.
    Raises :class:`ConfigError` when the checkpoint's spec is not this run's (another model or dataset).
    """
    import ray.train
    import ray.train.torch

    from spectrotune.models.networks import build_model
    from spectrotune.models.params import model_params
    from spectrotune.training.transfer import apply_backbone, lr_lambdas, param_groups

    config: Config = loop_config["config"]
    tc = config.train
    device = ray.train.torch.get_device()
    n_classes = int(loop_config["n_classes"])
    torch.set_num_threads(max(1, int(tc.cpus_per_worker)))
    torch.manual_seed(config.seed)  # identical initial weights on every rank (DDP would broadcast them anyway)
    model = build_model(config.model.name, n_classes=n_classes, n_mels=int(loop_config["n_mels"]),
                        params=model_params(config.model.name, config.model.params()),
                        # copies: arrays from the object store are read-only, which torch warns about
                        norm_mean=np.array(loop_config["norm_mean"]), norm_std=np.array(loop_config["norm_std"]))

    state = initial_state()
    checkpoint = ray.train.get_checkpoint()
    loaded = None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            weights, loaded, spec = read_checkpoint(Path(directory))
        if spec != loop_config["spec"]:
            raise ConfigError(f"cannot resume this run with {spec_difference(spec, loop_config['spec'])}; "
                              "use another train.run_name")
        model.load_state_dict(weights)
        state.update({k: loaded[k] for k in RESUMED_KEYS})
        if loaded.get("pretrained"):
            state["pretrained"] = loaded["pretrained"]
    elif loop_config.get("pretrained"):  # before DDP: every rank loads the same weights (and checks them)
        state["pretrained"] = apply_backbone(model, loop_config["pretrained"])
    state["attempt"] = int(state["attempt"]) + 1

    model = speed_up_model(model, channels_last=tc.channels_last)  # before DDP, which keeps the weights' layout
    model = ray.train.torch.prepare_model(model)
    groups = param_groups(model, tc)
    optimizer = torch.optim.AdamW(groups, lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = int(loop_config["steps_per_epoch"])
    total_steps, warmup_steps = tc.epochs * steps_per_epoch, round(tc.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambdas(
        len(groups), lambda step: lr_factor(step, total_steps=total_steps, warmup_steps=warmup_steps,
                                            schedule=tc.schedule), freeze_steps=tc.freeze_epochs * steps_per_epoch))
    amp = amp_policy(tc, device)
    # The generator is CPU: spec_augment / mixup draw there and move masks to the batch's device.
    run = WorkerRun(model=speed_up_model(model, compile=tc.compile), optimizer=optimizer, scheduler=scheduler,
                    scaler=make_scaler(amp, device), device=device, amp=amp, generator=torch.Generator(),
                    n_classes=n_classes)
    if loaded is not None:
        restore_state(run, loaded)
    return run, state


def restore_state(run: WorkerRun, loaded: dict[str, Any]) -> None:
    """Optimiser, LR scheduler and AMP scaler state of a checkpoint's ``state.pt`` into ``run``.

    The scaler's state (its scale and growth tracker) is taken when this run scales its loss and the checkpoint's
    did too (a disabled scaler saves ``{}``): a run resumed on another kind of device starts a fresh scale.
    """
    run.optimizer.load_state_dict(loaded["optimizer"])
    run.scheduler.load_state_dict(loaded["scheduler"])
    if run.scaler.is_enabled() and loaded.get("scaler"):
        run.scaler.load_state_dict(loaded["scaler"])


def train_one_epoch(run: WorkerRun, shard: Any, *, tc: TrainConfig, seed: int,
                    batches: EpochBatches | None = None) -> dict[str, float]:
    """One pass over this worker's share of the train split (a Ray Data ``DataIterator``), reseeded from ``seed``.

    ``batches``: this epoch's :class:`~spectrotune.training.batches.EpochBatches` of ``shard`` when the loop started
    them ahead (with the same ``seed``); else they are started here.

    Returns ``train_loss`` (mean cross-entropy in nats per sample), ``train_accuracy`` (of the hard labels, per
    segment), ``train_seconds`` and ``samples_per_second``, summed over all workers (DDP all-reduce), and
    ``data_wait_seconds``: how long this worker waited for its next batch (the producer thread of
    :class:`~spectrotune.training.batches.EpochBatches` draws it from the shuffle buffer and, on CUDA, pins it and
    copies it to the device; the rest of ``train_seconds`` is the steps).
    """
    from spectrotune.training.augment import mixup, soft_cross_entropy, spec_augment
    from spectrotune.training.transfer import freeze_batch_norm

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    run.generator.manual_seed(seed + 1)
    run.model.train()
    if run.frozen:
        freeze_batch_norm(unwrap_model(run.model))
    # Accumulated on the device: converting every step would synchronise a GPU once per batch.
    loss_acc = torch.zeros((), dtype=torch.float64, device=run.device)
    correct_acc = torch.zeros((), dtype=torch.int64, device=run.device)
    seen, data_wait = 0, 0.0
    epoch_batches = iter(batches if batches is not None else EpochBatches(shard, tc=tc, seed=seed, device=run.device))
    while True:
        t_wait = time.perf_counter()
        batch = next(epoch_batches, None)
        data_wait += time.perf_counter() - t_wait
        if batch is None:
            break
        x, y = batch[MEL].float(), batch[LABEL].long()
        if tc.spec_augment:
            x = spec_augment(x, generator=run.generator, time_masks=tc.time_masks, time_width=tc.time_width,
                             freq_masks=tc.freq_masks, freq_width=tc.freq_width)
        with run.amp.autocast(run.device):
            if tc.mixup_alpha > 0:
                x, y_soft = mixup(x, y, alpha=tc.mixup_alpha, n_classes=run.n_classes, generator=run.generator)
                logits = run.model(x)
                loss = soft_cross_entropy(logits.float(), y_soft, label_smoothing=tc.label_smoothing)
            else:
                logits = run.model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=tc.label_smoothing)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        loss_acc += loss.detach().double() * y.shape[0]
        correct_acc += (logits.detach().argmax(dim=1) == y).sum()
        seen += int(y.shape[0])
    loss_sum, correct = float(loss_acc), float(correct_acc)  # waits for the device: time after this
    train_seconds = time.perf_counter() - t0
    loss_sum, correct, total = _all_reduce_sum([loss_sum, correct, float(seen)], run.device)
    return {"train_loss": loss_sum / max(total, 1.0), "train_accuracy": correct / max(total, 1.0),
            "train_seconds": train_seconds, "samples_per_second": total / max(train_seconds, 1e-9),
            "data_wait_seconds": data_wait}


@torch.no_grad()
def validate(run: WorkerRun, shard: Any, *, tc: TrainConfig) -> dict[str, float]:
    """Loss, segment accuracy and clip accuracy over the whole valid split (every rank sees all of it).

    ``shard`` is a Ray Data ``DataIterator`` over rows with ``mel`` (float [n_mels, n_frames]), ``label`` and
    ``track_id``; see :func:`~spectrotune.training.metrics.valid_metrics` for the returned keys.
    """
    model = unwrap_model(run.model)
    model.eval()
    probs, labels, tracks, loss_sum = [], [], [], 0.0
    for batch in shard.iter_batches(batch_size=max(tc.batch_size, 256), batch_format="numpy",
                                    prefetch_batches=tc.prefetch_batches):
        x = to_device(batch[MEL], run.device)
        y = to_device(batch[LABEL], run.device, dtype=np.int64)
        with run.amp.autocast(run.device):
            logits = model(x).float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        probs.append(torch.softmax(logits, dim=1).cpu().numpy())
        labels.append(batch[LABEL].astype(np.int64))
        tracks.append(np.asarray(batch[TRACK_ID]).astype(str))
    return valid_metrics(probs, labels, tracks, loss_sum=loss_sum)


def report_epoch(run: WorkerRun, state: dict[str, Any], metrics: dict[str, Any], *, rank: int,
                 loop_config: dict[str, Any]) -> None:
    """Report one epoch to Ray Train (rank 0 attaches the checkpoint) and return once the controller registered it;
    then rank 0 prints the epoch line.

    ``ray.train.report`` returns as soon as the checkpoint is uploaded and the report sits in this worker's result
    queue (``Queue(maxsize=1)``); the controller takes it from there only at its next poll of the workers (every
    ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``, 2 s by default) and registers it then, writing the run's
    ``checkpoint_manager_snapshot.json``. A worker killed in between took the report with it: with ~1-s epochs
    the run restarted two epochs back. Waiting for the registration (``get_all_reported_checkpoints`` in
    ``COMMITTED`` mode) before the next epoch starts bounds what a kill can lose to the epoch in progress, and the
    epoch line means "this epoch is safe". The cost: up to one poll interval per epoch.
    """
    import ray.train

    epoch = int(metrics["epoch"])
    name = checkpoint_dir_name(epoch)
    if rank != 0:
        ray.train.report(metrics, checkpoint=None, checkpoint_dir_name=name)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            write_checkpoint(Path(tmp), model=run.model, spec=loop_config["spec"], state={
                **state, "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
                "scaler": run.scaler.state_dict()})
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp), checkpoint_dir_name=name)
    ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)
    if rank == 0 and loop_config.get("progress", False):
        # Not print(): Ray Train patches it in workers to log *and* echo, so each line came out twice.
        sys.stdout.write(epoch_line(metrics, epochs=loop_config["config"].train.epochs) + "\n")
        sys.stdout.flush()


def _all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all workers (the values themselves when there is one worker)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every worker."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


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
