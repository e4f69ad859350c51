"""Benchmark: training throughput through Ray Train versus a plain PyTorch loop, side by side in one run.

Both sides train the same model (same seed, AdamW, batch size, schedule and epochs, validation every epoch) on the
same prepared dataset, made here from a synthetic corpus (``generate_corpus`` + ``prepare``; reused from
``--workdir`` when it already exists). Ray Train runs :func:`spectrotune.training.driver.train` (1 worker); the plain loop
reads the train/valid shards into memory with pyarrow and loops over shuffled index batches in this process. Both
use ``--cpus`` torch threads (Ray sets a worker's threads to its CPUs).

Reported: steady-state samples/s (train passes of epochs 2..N, so start-up, first-epoch warm-up and validation are
excluded), the same for epoch 1, and end to end (epochs x train rows / wall time of the whole call, with Ray's
start-up, data loading, checkpoints and bundle writing included). With ``--gpu`` both sides run on CUDA (AMP as
configured) and the GPU utilisation is sampled every 0.2 s (``torch.cuda.utilization``, else ``nvidia-smi``)
during each side's run; the table then has a mean-utilisation column.

    python bench/train.py                         # 10 genres x 10 tracks x 30 s, 4 epochs, cnn defaults
    python bench/train.py --epochs 3 --json
    python bench/train.py --gpu --batch-size 256 --cpus 4   # on a machine with a CUDA GPU: a few minutes

``--gpu`` stops with one clear line when torch sees no CUDA device. Both sides then follow the worker's device
decisions (:mod:`spectrotune.training.accel`: AMP in ``train.amp_dtype`` with loss scaling for float16, pinned
batches copied without blocking, ``train.channels_last`` / ``train.compile`` if set with ``--set``), and the table
adds the mean GPU utilisation and where the train time went: waiting for the next batch (the plain loop: indexing
and the host-to-device copy; Ray Train: ``data_wait_seconds``, waiting on Ray Data's prefetch) versus the steps.

``--streaming`` compares two Ray Train runs of one dataset instead, each in its own child process with its own
local Ray: the splits held in the object store (``train.materialize=true``, default object store) and streamed
from Parquet every epoch (``train.materialize=false``) under an object store of ``--object-store-mb`` (default 80,
near Ray's minimum), smaller than the splits, so they cannot be held. Reported: steady samples/s of each, their
ratio (target >= 0.9) and the data-wait share.

    python bench/train.py --streaming --tracks 20 --epochs 3

``--musicnn`` compares models instead of loops, both through Ray Train on one corpus: fine-tuning the pretrained
``MSD_musicnn`` (``configs/musicnn.yaml``: its dataset of 96 x 187 musicnn patches at 16 kHz; epoch 1 trains the head
only, the later ones the whole network with the backbone at a tenth of the LR) side by side with the from-scratch
``cnn`` of the demo config on its own 128 x 130 log-mel dataset. Needs ``spectrotune fetch musicnn`` first.

    python bench/train.py --musicnn --genres 4 --tracks 4 --seconds 9 --epochs 3 --set noise.enabled=false
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from spectrotune import dataset as D
from spectrotune.config import Config, load_config
from spectrotune.evaluation.scores import clip_accuracy
from spectrotune.models.networks import build_model
from spectrotune.models.params import model_params
from spectrotune.training.accel import (
    amp_policy,
    input_options,
    make_scaler,
    speed_up_model,
)
from spectrotune.training.driver import train
from spectrotune.training.metrics import norm_stats
from spectrotune.training.schedule import lr_factor

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/'s own modules
from gpusampler import GpuSampler


def make_dataset(workdir: Path, *, genres: int, tracks: int, seconds: float, config: str = "demo",
                 overrides: tuple[str, ...] = ()) -> Path:
    """The prepared dataset for this corpus size and shipped config, made once per size under ``workdir``."""
    from spectrotune.prepare.driver import prepare
    from spectrotune.sources.synth.corpus import generate_corpus

    tag = f"g{genres}-t{tracks}-s{seconds:g}"
    data = workdir / (f"data-{tag}" if config == "demo" and not overrides else
                      f"data-{config}-{tag}-{hashlib.sha256(repr(overrides).encode()).hexdigest()[:8]}")
    if (data / D.MANIFEST).is_file():
        return data
    corpus = workdir / f"corpus-{tag}"
    t0 = time.perf_counter()
    if not corpus.is_dir():
        generate_corpus(corpus, genres=genres, tracks=tracks, seconds=seconds, seed=0)
    prepare(corpus, data, config=load_config(config, overrides=list(overrides)), overwrite=True, progress=False,
            log=lambda _: None)
    print(f"made dataset {data} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return data


def plain_loop(data: Path, *, config: Config, device: torch.device) -> dict[str, Any]:
    """Train like the Ray Train worker does, in this process on in-memory arrays; per-epoch timings."""
    t_start = time.perf_counter()
    tc = config.train
    manifest = D.read_manifest(data)
    labels = list(manifest.labels)
    train_table = D.read_split(data, "train", columns=[D.MEL, D.LABEL])
    valid_table = D.read_split(data, "valid", columns=[D.MEL, D.LABEL, D.TRACK_ID])
    # copies: arrays viewing Arrow memory are read-only, which torch.from_numpy warns about
    x_train, y_train = D.mel_array(train_table).copy(), train_table.column(D.LABEL).to_numpy().astype(np.int64)
    x_valid, y_valid = D.mel_array(valid_table).copy(), valid_table.column(D.LABEL).to_numpy().astype(np.int64)
    tracks = np.asarray(valid_table.column(D.TRACK_ID).to_pylist())
    n_mels = x_train.shape[1]
    mean, std, _ = norm_stats([x_train], n_mels=n_mels)
    torch.manual_seed(config.seed)
    model = build_model(config.model.name, n_classes=len(labels), n_mels=n_mels,
                        params=model_params(config.model.name, config.model.params()), norm_mean=mean,
                        norm_std=std).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / tc.batch_size)
    total, warmup = tc.epochs * steps_per_epoch, round(tc.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps=total, warmup_steps=warmup, schedule=tc.schedule))
    amp = amp_policy(tc, device)  # the worker's own decisions (training/accel.py)
    scaler = make_scaler(amp, device)
    model = speed_up_model(model, channels_last=tc.channels_last, compile=tc.compile)
    pin = input_options(device)["pin_memory"]
    rng = np.random.default_rng(config.seed)
    history = []
    for epoch in range(1, tc.epochs + 1):
        t0 = time.perf_counter()
        data_wait = 0.0
        model.train()
        order = rng.permutation(len(x_train))  # a full shuffle per epoch
        for start in range(0, len(x_train), tc.batch_size):
            t_wait = time.perf_counter()
            idx = np.sort(order[start : start + tc.batch_size])
            x, y = torch.from_numpy(x_train[idx]), torch.from_numpy(y_train[idx])
            if pin:
                x, y = x.pin_memory(), y.pin_memory()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            data_wait += time.perf_counter() - t_wait
            with amp.autocast(device):
                loss = F.cross_entropy(model(x).float(), y, label_smoothing=tc.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds = time.perf_counter() - t0
        model.eval()
        probs = []
        with torch.no_grad():
            for start in range(0, len(x_valid), 256):
                x = torch.from_numpy(x_valid[start : start + 256]).to(device)
                with amp.autocast(device):
                    probs.append(torch.softmax(model(x).float(), -1).cpu().numpy())
        p = np.concatenate(probs)
        history.append({"epoch": epoch, "train_seconds": train_seconds, "samples": len(x_train),
                        "data_wait_seconds": data_wait, "valid_clip_accuracy": clip_accuracy(p, y_valid, tracks)})
    return {"history": history, "wall_seconds": time.perf_counter() - t_start, "rows": len(x_train)}


def ray_train(data: Path, out: Path, *, config: Config) -> dict[str, Any]:
    """Run :func:`spectrotune.training.driver.train` (fresh run folder) and return the same per-epoch timings."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = train(data, out, config=config, progress=False, log=lambda _: None)
    wall = time.perf_counter() - t0
    history = [{"epoch": h["epoch"], "train_seconds": h["train_seconds"],
                "samples": h["samples_per_second"] * h["train_seconds"],
                "data_wait_seconds": h.get("data_wait_seconds", float("nan")),
                "epoch_seconds": h["epoch_seconds"], "valid_clip_accuracy": h["valid_clip_accuracy"]}
               for h in result.history]
    return {"history": history, "wall_seconds": wall, "rows": round(history[0]["samples"])}


def summarise(run: dict[str, Any], *, epochs: int) -> dict[str, float]:
    """Samples/s of the first epoch, of epochs 2..N (steady state: train passes only, and ``steady_epoch``: whole
    epochs with validation and checkpoint, where the history has ``epoch_seconds``) and end to end."""
    h = run["history"]
    steady = h[1:] or h
    whole = sum(e.get("epoch_seconds", float("nan")) for e in steady)
    return {
        "steady_epoch": sum(e["samples"] for e in steady) / whole,
        "first_epoch": h[0]["samples"] / h[0]["train_seconds"],
        "steady": sum(e["samples"] for e in steady) / sum(e["train_seconds"] for e in steady),
        "data_wait_share": sum(e["data_wait_seconds"] for e in steady) / sum(e["train_seconds"] for e in steady),
        "end_to_end": epochs * run["rows"] / run["wall_seconds"],
        "wall_seconds": run["wall_seconds"],
        "final_clip_accuracy": h[-1]["valid_clip_accuracy"],
        "rows": run["rows"],
    }


def compare_musicnn(args: argparse.Namespace) -> None:
    """``--musicnn``: fine-tuning samples/s of MSD_musicnn and of the from-scratch cnn, both through Ray Train."""
    common = _common_overrides(args)
    prep = tuple(o for o in args.set if o.split("=")[0].split(".")[0] in ("noise", "audio", "features", "split"))
    cases = {"from-scratch cnn (demo config)": "demo", "MSD_musicnn fine-tune (configs/musicnn.yaml)": "musicnn"}
    rows = {}
    for name, shipped in cases.items():
        data = make_dataset(args.workdir, genres=args.genres, tracks=args.tracks, seconds=args.seconds, config=shipped,
                            overrides=prep)
        config = load_config(shipped, overrides=common)
        run = ray_train(data, args.workdir / f"ray-out-{shipped}", config=config)
        h = run["history"]
        later = h[1:] or h
        rows[name] = {"input": "x".join(map(str, D.read_manifest(data).input_shape)), "rows": run["rows"],
                      "epoch_1": h[0]["samples"] / h[0]["train_seconds"],
                      "later": sum(e["samples"] for e in later) / sum(e["train_seconds"] for e in later),
                      "wall_seconds": run["wall_seconds"], "clip_accuracy": h[-1]["valid_clip_accuracy"]}
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.epochs} epochs, batch {args.batch_size}, {args.cpus:g} CPU thread(s), "
          f"{'cuda' if args.gpu else 'cpu'}, torch {torch.__version__}")
    print("| model | input | train rows | epoch 1 samples/s | epochs 2..N samples/s | wall s | valid clip acc |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['input']} | {r['rows']} | {r['epoch_1']:.1f} | {r['later']:.1f} | "
              f"{r['wall_seconds']:.1f} | {r['clip_accuracy']:.3f} |")


def side_settings(side: str, *, object_store_mb: int) -> tuple[int | None, str]:
    """``--side``'s object store (bytes; ``None``: Ray's default) and ``train.materialize`` override: ``memory``
    holds the splits in the default store, ``streaming`` reads them from Parquet every epoch under a smaller one."""
    if side == "memory":
        return None, "train.materialize=true"
    return object_store_mb * 2**20, "train.materialize=false"


def streaming_side(args: argparse.Namespace) -> None:
    """``--side``: one Ray Train run in this (child) process on a local Ray of its own; prints one JSON line."""
    import ray

    from spectrotune.runtime import LOOPBACK

    store_bytes, materialize = side_settings(args.side, object_store_mb=args.object_store_mb)
    ray.init(address="local", num_cpus=max(2, int(args.cpus) + 1), include_dashboard=False,
             _node_ip_address=LOOPBACK, logging_level="warning", object_store_memory=store_bytes)
    data = make_dataset(args.workdir, genres=args.genres, tracks=args.tracks, seconds=args.seconds)
    config = load_config("demo", overrides=[*_common_overrides(args), materialize])
    manifest = D.read_manifest(data)
    n_mels, n_frames = manifest.input_shape
    train_valid = manifest.counts.rows_per_split["train"] + manifest.counts.rows_per_split["valid"]
    store = float(ray.cluster_resources().get("object_store_memory", 0))
    run = ray_train(data, args.workdir / f"ray-out-{args.side}", config=config)
    print(json.dumps({"side": args.side, **summarise(run, epochs=args.epochs), "object_store_mb": store / 2**20,
                      "splits_mb": train_valid * n_mels * n_frames * 4 / 2**20}))


def compare_streaming(args: argparse.Namespace) -> None:
    """``--streaming``: the in-memory and the streaming run, one after the other, each in a child process."""
    import os

    from spectrotune.runtime import shutdown_ray

    make_dataset(args.workdir, genres=args.genres, tracks=args.tracks, seconds=args.seconds)  # once, outside
    shutdown_ray()  # the Ray that prepare may have started here: each side starts its own
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    results = {}
    for side in ("memory", "streaming"):
        cmd = [sys.executable, __file__, "--side", side, *sys.argv[1:]]
        cmd.remove("--streaming")
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=3600)
        if out.returncode != 0:
            raise SystemExit(f"bench/train.py --side {side} failed ({out.returncode}):\n{out.stderr[-3000:]}")
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = results["streaming"]["steady"] / results["memory"]["steady"]
    epoch_ratio = results["streaming"]["steady_epoch"] / results["memory"]["steady_epoch"]
    if args.json:
        print(json.dumps({"results": results, "steady_ratio": ratio, "steady_epoch_ratio": epoch_ratio}, indent=2))
        return
    print(f"{results['memory']['rows']} train segments, {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.cpus:g} CPU thread(s); train+valid splits {results['memory']['splits_mb']:.0f} MiB")
    print("| side | object store MiB | steady samples/s (epochs 2..N) | whole epochs 2..N samples/s | "
          "epoch 1 samples/s | data wait % | end to end samples/s | wall s | clip acc |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    names = {"memory": "held in the object store (`train.materialize=true`)",
             "streaming": "streamed from Parquet (`train.materialize=false`)"}
    for side, r in results.items():
        print(f"| {names[side]} | {r['object_store_mb']:.0f} | {r['steady']:.1f} | {r['steady_epoch']:.1f} | "
              f"{r['first_epoch']:.1f} | "
              f"{100 * r['data_wait_share']:.1f} | {r['end_to_end']:.1f} | {r['wall_seconds']:.1f} | "
              f"{r['final_clip_accuracy']:.3f} |")
    print(f"\nstreaming / in memory, steady state: {ratio:.3f} (target >= 0.9); whole epochs: {epoch_ratio:.3f}")


def _common_overrides(args: argparse.Namespace) -> list[str]:
    return [f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}", "train.patience=0",
            f"train.cpus_per_worker={args.cpus}", f"train.use_gpu='{'true' if args.gpu else 'false'}'",
            "train.num_workers=1", *args.set]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genres", type=int, default=10)
    parser.add_argument("--tracks", type=int, default=10, help="tracks per genre")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per track")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cpus", type=float, default=1.0, help="CPUs (torch threads) for each side (default 1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config overrides for both sides (e.g. model.width=16)")
    parser.add_argument("--gpu", action="store_true", help="train on CUDA and sample GPU utilisation")
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/train"))
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--musicnn", action="store_true",
                        help="compare fine-tuning MSD_musicnn with the from-scratch cnn (see the docstring)")
    parser.add_argument("--streaming", action="store_true",
                        help="compare Ray Train with the splits held in memory and streamed (see the docstring)")
    parser.add_argument("--object-store-mb", type=int, default=80, help="--streaming: the streaming run's store")
    parser.add_argument("--side", choices=("memory", "streaming"), help=argparse.SUPPRESS)  # --streaming's child
    args = parser.parse_args(argv)
    if args.gpu and not torch.cuda.is_available():
        parser.exit(2, f"bench/train.py: --gpu: no CUDA device visible to torch {torch.__version__} (CUDA build: "
                       f"{torch.version.cuda or 'none'}); run it on a machine with an NVIDIA GPU, or drop --gpu\n")

    from spectrotune.runtime import init_ray

    args.workdir = args.workdir.absolute()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.side:
        streaming_side(args)
        return
    if args.streaming:
        compare_streaming(args)
        return
    init_ray()
    if args.musicnn:
        compare_musicnn(args)
        return
    data = make_dataset(args.workdir, genres=args.genres, tracks=args.tracks, seconds=args.seconds)
    config = load_config("demo", overrides=_common_overrides(args))
    device = torch.device("cuda" if args.gpu else "cpu")
    torch.set_num_threads(max(1, int(args.cpus)))

    results: dict[str, dict[str, Any]] = {}
    for name, run in (("plain PyTorch loop", lambda: plain_loop(data, config=config, device=device)),
                      ("Ray Train (1 worker)", lambda: ray_train(data, args.workdir / "ray-out", config=config))):
        gpu = GpuSampler()
        gpu.start()
        try:
            measured = run()
        finally:
            gpu.stop()
        results[name] = {**summarise(measured, epochs=args.epochs), "gpu_util": gpu.mean,
                         "gpu_samples": len(gpu.samples)}
    ratio = results["Ray Train (1 worker)"]["steady"] / results["plain PyTorch loop"]["steady"]
    amp = amp_policy(config.train, device)
    meta = {"rows": results["plain PyTorch loop"]["rows"], "epochs": args.epochs, "batch_size": args.batch_size,
            "cpus": args.cpus, "device": str(device), "gpu_name": torch.cuda.get_device_name(0) if args.gpu else None,
            "amp": {"enabled": amp.enabled, "dtype": str(amp.dtype), "scaler": amp.scaler},
            "channels_last": config.train.channels_last, "compile": config.train.compile,
            "model": config.model.name, "model_params": model_params(config.model.name, config.model.params()),
            "steady_ratio": ratio, "torch": torch.__version__}

    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(f"{meta['rows']} train segments, {args.epochs} epochs, batch {args.batch_size}, {config.model.name} "
          f"{meta['model_params']}, {args.cpus:g} CPU thread(s), device {device}"
          + (f" ({meta['gpu_name']}, AMP {meta['amp']})" if args.gpu else ""))
    gpu_col = args.gpu
    head = ("| side | steady samples/s (epochs 2..N) | epoch 1 samples/s | end to end samples/s | wall s | clip acc "
            "| data wait % (epochs 2..N) |")
    print(head + (" GPU util % |" if gpu_col else ""))
    print("|" + "---|" * (7 + gpu_col))
    for name, r in results.items():
        row = (f"| {name} | {r['steady']:.1f} | {r['first_epoch']:.1f} | {r['end_to_end']:.1f} | "
               f"{r['wall_seconds']:.1f} | {r['final_clip_accuracy']:.3f} | {100 * r['data_wait_share']:.1f} |")
        if gpu_col:
            row += f" {r['gpu_util']:.0f} |" if r["gpu_util"] is not None else " n/a |"
        print(row)
    print(f"\nRay Train / plain loop, steady state: {ratio:.3f}")


if __name__ == "__main__":
    main()
