"""Embeddings per second of the pretrained musicnn and vgg ports on CPU, and of their numpy front end.

One "embedding" is one 3-s patch (96 x 187 log-mel frames) through the network, giving musicnn's ``max_pool`` /
``mean_pool`` / ``penultimate`` vectors or vgg's pools (the same work as its taggram). Cases, side by side in one
run on the same patches: the front end (waveform -> patches), then each network in eval mode under
``torch.inference_mode`` with 1 and 2 torch threads, in batches of ``--batch`` patches, and for scale the
project's from-scratch default ``cnn`` on its own 128 x 130 input. Weights do not change the
speed, so the networks are built randomly initialised (no cache needed); the front end runs on a synthetic
30-s clip. Each case repeats ``--repeats`` times; the table shows the median and the best run.

    PYTHONPATH=. python bench/musicnn.py --patches 64 --batch 16 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from spectrotune.audio.musicnn_frontend import musicnn_input
from spectrotune.models.musicnn import build_network
from spectrotune.models.networks import build_model


def _timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up (allocations, oneDNN kernel choice)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=64, help="patches per network case")
    parser.add_argument("--batch", type=int, default=16, help="patches per forward pass")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    t = np.arange(30 * 16000) / 16000
    clip = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    patches = np.stack([musicnn_input(clip)[0]] * (args.patches // 10 + 1))[: args.patches // 10 + 1]
    patches = torch.from_numpy(np.concatenate(list(patches))[: args.patches].copy())
    rows = []
    with threadpool_limits(1):
        times = _timed(lambda: musicnn_input(clip), args.repeats)
    n = len(musicnn_input(clip)[0])
    rows.append(("front end (numpy, 1 thread), 30-s clip", n, times))
    # The from-scratch default `cnn` on its own input (3-s segments at 22.05 kHz: 128 mels x 130 frames), for scale.
    cnn_input = torch.randn(len(patches), 128, 130)
    cases = [(m, build_network(m).eval(), patches, "features") for m in ("MSD_musicnn", "MSD_vgg")]
    cases.append(("scratch_cnn", build_model("cnn", n_classes=10, n_mels=128).eval(), cnn_input, "forward"))
    for model, net, inputs, method in cases:
        call = getattr(net, method)
        for threads in (1, 2):
            torch.set_num_threads(threads)

            def run(call=call, inputs=inputs) -> None:
                with torch.inference_mode():
                    for s in range(0, len(inputs), args.batch):
                        call(inputs[s: s + args.batch])

            rows.append((f"{model.split('_')[1]} ({threads} thread{'s' if threads > 1 else ''}, batch {args.batch})",
                         len(inputs), _timed(run, args.repeats)))
    print("| case | patches | median s | best s | patches/s (median) | patches/s (best) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, count, times in rows:
        med, best = statistics.median(times), min(times)
        print(f"| {name} | {count} | {med:.3f} | {best:.3f} | {count / med:.0f} | {count / best:.0f} |")
    print(f"\ntorch {torch.__version__}, numpy {np.__version__}, {args.repeats} repeats")


if __name__ == "__main__":
    main()
