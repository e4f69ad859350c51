"""Micro-benchmark of spectrotune.audio.logmel and .handcrafted: milliseconds per 3-s segment, one BLAS thread.

Compares librosa's log-mel (one segment at a time, the reference) with the fast ``log_mel`` one at a time and
batched, and ``handcrafted_features`` with its librosa reference (on the first ``--librosa-features``
segments: it takes ~0.2 s each); both references are in ``tests/librosa_reference.py``. Every case runs on the
same synthetic segments (tones, clicks, noise); the table shows the median and the minimum over repeats (the
minimum is the least disturbed by other load) and the speed-up of the median over the matching librosa reference.

    PYTHONPATH=. python bench/features.py --segments 200 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from spectrotune.audio.handcrafted import handcrafted_features
from spectrotune.audio.logmel import SR, log_mel

# The librosa references live with the tests (they are not part of the package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from librosa_reference import handcrafted_features_librosa, log_mel_librosa  # noqa: E402


def make_segments(n_segments: int, *, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Synthetic music-like segments [n_segments, seconds * SR] float32: two tones, gated, with clicks and noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = np.empty((n_segments, n), dtype=np.float32)
    for i in range(n_segments):
        f0 = rng.uniform(80.0, 800.0)
        tones = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 3.01 * f0 * t)
        gate = np.sin(2 * np.pi * rng.uniform(0.5, 4.0) * t) > 0
        clicks = np.zeros(n)
        clicks[:: int(SR * rng.uniform(0.3, 0.8))] = 1.0
        drums = np.convolve(clicks, rng.standard_normal(256) * 0.2, mode="same")
        out[i] = tones * gate + drums + 0.02 * rng.standard_normal(n)
    return out


def one_at_a_time(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], None]:
    """Run ``fn`` on each segment separately."""

    def run(segments: np.ndarray) -> None:
        for seg in segments:
            fn(seg)

    return run


def batched(fn: Callable[[np.ndarray], np.ndarray], size: int) -> Callable[[np.ndarray], None]:
    """Run ``fn`` on batches of ``size`` segments."""

    def run(segments: np.ndarray) -> None:
        for i in range(0, len(segments), size):
            fn(segments[i : i + size])

    return run


def time_per_segment(run: Callable[[np.ndarray], None], segments: np.ndarray, *, repeats: int) -> tuple[float, float]:
    """Median and minimum wall-clock milliseconds per segment over ``repeats`` runs, after a short warm-up."""
    run(segments[:4])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(segments)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3 / len(segments), min(times) * 1e3 / len(segments)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=200, help="number of 3-s segments (default 200)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (default 5)")
    parser.add_argument(
        "--librosa-features", type=int, default=10, help="segments for the slow librosa feature reference (0: skip)"
    )
    args = parser.parse_args(argv)
    segments = make_segments(args.segments)
    # (name, run, segments, repeats, reference case for the speed-up)
    cases = [
        ("log_mel_librosa, one at a time", one_at_a_time(log_mel_librosa), segments, args.repeats, None),
        ("log_mel, one at a time", one_at_a_time(log_mel), segments, args.repeats, "log_mel_librosa"),
        ("log_mel, batches of 10", batched(log_mel, 10), segments, args.repeats, "log_mel_librosa"),
        ("log_mel, batches of 64", batched(log_mel, 64), segments, args.repeats, "log_mel_librosa"),
        ("handcrafted_features, one at a time", one_at_a_time(handcrafted_features), segments, args.repeats, None),
        ("handcrafted_features, batches of 10", batched(handcrafted_features, 10), segments, args.repeats, None),
    ]
    if args.librosa_features > 0:
        reference = ("handcrafted_features_librosa, one at a time", one_at_a_time(handcrafted_features_librosa))
        cases.append((*reference, segments[: args.librosa_features], 1, None))
    print(f"{args.segments} segments of 3 s at {SR} Hz, 1 BLAS thread, {args.repeats} runs per case")
    print(f"{'case':46s} {'median ms':>10s} {'min ms':>8s} {'speed-up':>9s}")
    medians: dict[str, float] = {}
    with threadpool_limits(limits=1):
        for name, run, data, repeats, reference_name in cases:
            median, minimum = time_per_segment(run, data, repeats=repeats)
            medians[name.split(",")[0]] = median
            speedup = f"{medians[reference_name] / median:8.1f}x" if reference_name else ""
            print(f"{name:46s} {median:10.3f} {minimum:8.3f} {speedup:>9s}")
    if "handcrafted_features_librosa" in medians:
        ratio = medians["handcrafted_features_librosa"] / medians["handcrafted_features"]
        print(f"handcrafted_features vs its librosa reference: {ratio:.1f}x")


if __name__ == "__main__":
    main()
