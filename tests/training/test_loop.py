"""Tests of spectrotune.training.loop's steps without Ray: one epoch of training and a validation pass over fake
shards (the two methods of a Ray Data ``DataIterator`` the loop uses)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from spectrotune.config import load_config
from spectrotune.schema import BUNDLE_WEIGHTS, LABEL, MEL, METRIC_KEYS, SCORE, TRACK_ID
from spectrotune.training.accel import AmpPolicy, make_scaler
from spectrotune.training.checkpoint import SPEC, STATE, read_checkpoint, write_checkpoint
from spectrotune.training.loop import WorkerRun, report_epoch, restore_state, train_one_epoch, validate

N_MELS, N_FRAMES, N_CLASSES = 16, 20, 3


class FakeShard:
    """Rows ``mel`` float32 [n, N_MELS, N_FRAMES], ``label`` int64 [n], ``track_id`` str [n], in batches."""

    def __init__(self, n: int = 24) -> None:
        rng = np.random.default_rng(0)
        self.rows = {MEL: rng.normal(size=(n, N_MELS, N_FRAMES)).astype(np.float32),
                     LABEL: rng.integers(0, N_CLASSES, n).astype(np.int64),
                     TRACK_ID: np.array([f"t{i // 4}" for i in range(n)])}

    def iter_batches(self, *, batch_size, batch_format, prefetch_batches):
        n = len(self.rows[LABEL])
        for i in range(0, n, batch_size):
            yield {k: v[i:i + batch_size] for k, v in self.rows.items()}

    def iter_torch_batches(self, *, batch_size, prefetch_batches):
        for batch in self.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=0):
            yield {MEL: torch.from_numpy(batch[MEL]), LABEL: torch.from_numpy(batch[LABEL])}


def _run(*overrides: str, amp: AmpPolicy = AmpPolicy()) -> tuple[WorkerRun, object]:
    """A worker run on CPU; ``amp`` stands in for what :func:`amp_policy` decides on a CUDA worker."""
    config = load_config("demo", overrides=["train.batch_size=8", *overrides])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(N_MELS * N_FRAMES, N_CLASSES))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    device = torch.device("cpu")
    run = WorkerRun(model=model, optimizer=optimizer, scheduler=scheduler, scaler=make_scaler(amp, device),
                    device=device, amp=amp, generator=torch.Generator(), n_classes=N_CLASSES)
    return run, config.train


@pytest.mark.parametrize("augment", [(), ("train.spec_augment=true", "train.time_width=4", "train.freq_width=4",
                                          "train.mixup_alpha=0.2", "train.label_smoothing=0.1")])
def test_one_epoch_trains_every_row_and_repeats_from_its_seed(augment):
    shard = FakeShard()
    results, weights = [], []
    for _ in range(2):
        run, tc = _run(*augment)
        results.append(train_one_epoch(run, shard, tc=tc, seed=123))
        weights.append(run.model[1].weight.detach().clone())
    trained = results[0]
    assert set(trained) == {"train_loss", "train_accuracy", "train_seconds", "samples_per_second",
                            "data_wait_seconds"} < set(METRIC_KEYS)
    assert 0.0 <= trained["data_wait_seconds"] <= trained["train_seconds"]
    assert np.isfinite(trained["train_loss"]) and 0.0 <= trained["train_accuracy"] <= 1.0
    assert trained["samples_per_second"] == pytest.approx(24 / trained["train_seconds"])
    assert results[1]["train_loss"] == trained["train_loss"] and torch.equal(weights[0], weights[1])
    assert run.scheduler.last_epoch == 3  # one LR step per batch: 24 rows / 8


def test_validation_scores_every_valid_row_per_segment_and_per_track():
    run, tc = _run()
    shard = FakeShard(n=10)
    valid = validate(run, shard, tc=tc)
    with torch.no_grad():
        probs = torch.softmax(run.model(torch.from_numpy(shard.rows[MEL])), dim=1).numpy()
    assert valid["valid_accuracy"] == pytest.approx(np.mean(probs.argmax(1) == shard.rows[LABEL]))
    assert 0.0 <= valid[SCORE] <= 1.0 and np.isfinite(valid["valid_loss"])
    assert not run.model.training  # validation leaves the model in eval mode


# The CUDA-only branches, on CPU: the policies amp_policy picks on a CUDA worker (float16 with loss scaling, or
# bfloat16 without), with autocast and an enabled GradScaler on the CPU device.
CUDA_LIKE = [AmpPolicy(enabled=True, dtype=torch.float16, scaler=True),
             AmpPolicy(enabled=True, dtype=torch.bfloat16, scaler=False)]


@pytest.mark.parametrize("amp", CUDA_LIKE, ids=["float16+scaler", "bfloat16"])
def test_amp_step_runs_the_forward_in_the_policy_dtype_and_scales_the_loss(amp):
    run, tc = _run(amp=amp)
    seen = []
    run.model[1].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    plain, _ = _run()
    before = run.model[1].weight.detach().clone()
    trained = train_one_epoch(run, FakeShard(), tc=tc, seed=1)
    assert seen == [amp.dtype] * 3  # every step's forward ran under autocast
    assert np.isfinite(trained["train_loss"]) and not torch.equal(run.model[1].weight, before)
    assert run.model[1].weight.dtype == torch.float32  # autocast leaves the master weights in float32
    assert run.scaler.is_enabled() is amp.scaler
    if amp.scaler:  # three unscaled, finite steps: the scaler counted them towards its next growth
        assert run.scaler.state_dict()["_growth_tracker"] == 3
    assert abs(trained["train_loss"] - train_one_epoch(plain, FakeShard(), tc=tc, seed=1)["train_loss"]) < 0.05
    seen.clear()
    valid = validate(run, FakeShard(n=10), tc=tc)
    assert seen == [amp.dtype] and np.isfinite(valid["valid_loss"])


def _save_and_read(run: WorkerRun, directory) -> dict:
    write_checkpoint(directory, model=run.model, spec={"model": "test"}, state={
        "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict()})
    return read_checkpoint(directory)[1]


def test_scaler_state_is_saved_in_the_checkpoint_and_restored(tmp_path):
    run, tc = _run(amp=CUDA_LIKE[0])
    train_one_epoch(run, FakeShard(), tc=tc, seed=1)
    run.scaler.update(new_scale=1024.0)  # a scale a fresh scaler would not have (it starts at 65536)
    loaded = _save_and_read(run, tmp_path)
    assert loaded["scaler"] == run.scaler.state_dict() and loaded["scaler"]["scale"] == 1024.0

    resumed, _ = _run(amp=CUDA_LIKE[0])
    restore_state(resumed, loaded)
    assert resumed.scaler.state_dict() == run.scaler.state_dict()
    assert resumed.scheduler.last_epoch == run.scheduler.last_epoch == 3
    assert resumed.optimizer.state_dict()["state"][0]["step"] == 3

    on_cpu, _ = _run()  # the same checkpoint resumed without loss scaling: the scaler stays off
    restore_state(on_cpu, loaded)
    assert not on_cpu.scaler.is_enabled() and on_cpu.scaler.state_dict() == {}


def test_a_checkpoint_without_scaler_state_leaves_a_fresh_scale(tmp_path):
    plain, tc = _run()
    train_one_epoch(plain, FakeShard(), tc=tc, seed=1)
    loaded = _save_and_read(plain, tmp_path)
    assert loaded["scaler"] == {}  # what a disabled scaler saves
    resumed, _ = _run(amp=CUDA_LIKE[0])
    restore_state(resumed, loaded)
    assert resumed.scaler.is_enabled() and resumed.scaler.get_scale() == 65536.0


class FakeTrain(types.ModuleType):
    """``ray.train`` as :func:`report_epoch` uses it; ``calls`` records each call with what stdout held by then."""

    class CheckpointConsistencyMode:
        COMMITTED = "committed"

    class Checkpoint:
        @staticmethod
        def from_directory(path):
            return sorted(p.name for p in Path(path).iterdir())  # the files rank 0 attached

    def __init__(self, capsys) -> None:
        super().__init__("ray.train")
        self.capsys, self.calls = capsys, []

    def report(self, metrics, *, checkpoint, checkpoint_dir_name):
        self.calls.append(("report", checkpoint, checkpoint_dir_name, self.capsys.readouterr().out))

    def get_all_reported_checkpoints(self, *, consistency_mode):
        self.calls.append(("wait", consistency_mode, None, self.capsys.readouterr().out))


@pytest.mark.parametrize("rank", [0, 1])
def test_an_epoch_line_is_printed_only_once_its_report_is_registered(rank, capsys, monkeypatch):
    """The epoch line means "a kill from now on loses at most the next epoch": report_epoch waits for Ray Train's
    controller to register the report (``get_all_reported_checkpoints``, COMMITTED) before it prints or returns."""
    fake = FakeTrain(capsys)
    ray = types.ModuleType("ray")
    ray.train = fake
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setitem(sys.modules, "ray.train", fake)
    run, _ = _run()
    config = load_config("demo", overrides=["train.epochs=3"])
    metrics = {"epoch": 2, "train_loss": 1.0, "train_accuracy": 0.5, "valid_loss": 1.1, "valid_accuracy": 0.4,
               SCORE: 0.3, "samples_per_second": 10.0}
    report_epoch(run, {"epoch": 1, "history": []}, metrics, rank=rank,
                 loop_config={"config": config, "spec": {"model": "x"}, "progress": True})
    attached = sorted([BUNDLE_WEIGHTS, SPEC, STATE]) if rank == 0 else None  # only rank 0 attaches the checkpoint
    assert fake.calls == [("report", attached, "checkpoint_epoch_0002", ""), ("wait", "committed", None, "")]
    out = capsys.readouterr().out
    assert out.startswith("epoch 2/3: train loss 1.0000 ") if rank == 0 else out == ""


class _Checkpoint:
    """What ``ray.train.get_checkpoint()`` hands a restarted worker: a folder, through ``as_directory()``."""

    def __init__(self, directory) -> None:
        self.directory = directory

    def as_directory(self):
        import contextlib

        return contextlib.nullcontext(str(self.directory))


def test_worker_start_takes_the_cuda_choices_and_resumes_the_scaler(tmp_path, monkeypatch):
    """start_worker_run on CPU with Ray Train's three calls stubbed and the CUDA-like AMP decision: channels_last
    and torch.compile wrap the model, the scaler scales, and a restarted worker takes the checkpoint's scale."""
    import ray.train
    import ray.train.torch

    from spectrotune.training import loop
    from spectrotune.training.checkpoint import unwrap_model
    from spectrotune.training.schedule import initial_state

    config = load_config("demo", overrides=["train.channels_last=true", "train.compile=true"])
    spec = {"model": "cnn", "data": "test"}
    loop_config = {"config": config, "n_classes": N_CLASSES, "n_mels": N_MELS,
                   "norm_mean": np.zeros(N_MELS, np.float32), "norm_std": np.ones(N_MELS, np.float32),
                   "steps_per_epoch": 3, "spec": spec, "progress": False, "pretrained": None}
    checkpoint = {"value": None}
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: checkpoint["value"])
    monkeypatch.setattr(ray.train.torch, "get_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(ray.train.torch, "prepare_model", lambda model: model)  # one worker: no DDP wrapper
    monkeypatch.setattr(loop, "amp_policy", lambda tc, device: CUDA_LIKE[0])

    run, state = loop.start_worker_run(loop_config)
    net = unwrap_model(run.model)
    assert run.model is not net and type(run.model).__name__ == "OptimizedModule"  # torch.compile (lazy: no build)
    convs = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert run.amp == CUDA_LIKE[0] and run.scaler.is_enabled() and state["attempt"] == 1

    run.scaler.scale(torch.ones(()))  # the scale is made on first use
    run.scaler.update(new_scale=512.0)
    write_checkpoint(tmp_path, model=run.model, spec=spec, state={
        **initial_state(), "epoch": 2, "attempt": 1, "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict()})
    checkpoint["value"] = _Checkpoint(tmp_path)
    resumed, resumed_state = loop.start_worker_run(loop_config)
    assert resumed.scaler.get_scale() == 512.0 and resumed_state["epoch"] == 2 and resumed_state["attempt"] == 2
    assert all(torch.equal(a, b) for a, b in zip(unwrap_model(resumed.model).state_dict().values(),
                                                  net.state_dict().values()))
