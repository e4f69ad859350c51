"""Benchmark of ``spectrotune prepare`` against a plain librosa loop and the prototype's PNG rendering.

Measured side by side in one run, on a synthetic corpus of 30-s clips (GTZAN-sized):

(a) the Ray Data pipeline doing decode + segment + log-mel only (``--set noise.enabled=false
    --set features.handcrafted=false``), as a separate ``spectrotune prepare`` process, so its wall time includes
    Ray start-up; peak memory = the largest sum of RSS over that process and all its descendants (Ray's GCS,
    raylet, workers), sampled every 50 ms from /proc. Run at two corpus sizes 10x apart.
(b) a single-process loop doing exactly that work with plain librosa, one 3-s segment at a time
    (``librosa.load`` + ``melspectrogram`` + ``power_to_db``), results kept in memory.
(c) the prototype's way: librosa STFT -> ``specshow`` -> PNG per clip (on a subset; it is slow).
(d) the Ray pipeline with its default settings (noise variants on train, handcrafted features), full corpus.

Usage::

    python bench/prepare.py                     # 1000 clips, GTZAN's size (and 100 for the memory ratio)
    python bench/prepare.py --clips 100 --repeats 1 --json out.json

(a), (b) and (c) run ``--repeats`` times, interleaved; the tables show each one's median run and list every run's
wall time. Linux only (reads /proc). Prints a Markdown table; BENCHMARKS.md records the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SR = 22050
SEGMENT = 3.0


def make_corpus(out: Path, clips: int, seconds: float) -> Path:
    """10 genres x clips/10 tracks; reused when already generated with the same size."""
    from spectrotune.sources.synth.corpus import generate_corpus

    marker = out / "corpus.json"
    spec = {"clips": clips, "seconds": seconds}
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return out
    shutil.rmtree(out, ignore_errors=True)
    generate_corpus(out, genres=10, tracks=clips // 10, seconds=seconds, seed=0)
    marker.write_text(json.dumps(spec))
    return out


def audio_files(corpus: Path) -> list[Path]:
    return sorted((corpus / "genres_original").rglob("*.wav"))


# ------------------------------------------------------------------------------------------- process-tree memory


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Sum of RSS of ``pid`` and all its descendants, in bytes."""
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_bytes(p)
        stack += _children(p)
    return total


def run_measured(cmd: list[str]) -> tuple[float, int, str]:
    """Run ``cmd``; return (wall seconds, peak process-tree RSS bytes, output)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-3000:]}")
    return wall, peak, output


def ray_prepare(corpus: Path, out: Path, *, minimal: bool) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "spectrotune.cli", "prepare", "--source", str(corpus), "--out", str(out),
           "--no-progress", "--set", "split.kind=stratified"]
    if minimal:
        cmd += ["--set", "noise.enabled=false", "--set", "features.handcrafted=false"]
    wall, peak, _ = run_measured(cmd)
    manifest = json.loads((out / "manifest.json").read_text())
    rows = sum(manifest["counts"]["rows_per_split"].values())
    return {"wall_s": wall, "peak_rss_mb": peak / 2**20, "rows": rows,
            "ray_process_s": manifest["timings"]["process_seconds"], "task_seconds": manifest["timings"]["task_seconds"]}


# ----------------------------------------------------------------------------------------------- plain loops


def plain_librosa(files: list[Path]) -> dict:
    import librosa

    start = time.perf_counter()
    n_seg = 0
    mels = []
    win = int(SEGMENT * SR)
    for path in files:
        y, _ = librosa.load(path, sr=SR, mono=True)
        for s in range(0, len(y) - win + 1, win):
            m = librosa.feature.melspectrogram(y=y[s : s + win], sr=SR, n_fft=2048, hop_length=512, n_mels=128)
            mels.append(librosa.power_to_db(m, ref=1.0, amin=1e-10, top_db=80.0))
            n_seg += 1
    return {"wall_s": time.perf_counter() - start, "rows": n_seg}


def prototype_png(files: list[Path], out: Path) -> dict:
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path in files:
        y, sr = librosa.load(path, sr=SR)
        db = librosa.amplitude_to_db(np.abs(librosa.stft(y)), ref=np.max)
        fig = plt.figure(figsize=(10, 4))
        librosa.display.specshow(db, sr=sr, x_axis="time", y_axis="hz")
        plt.colorbar(format="%+2.0f dB")
        fig.savefig(out / f"{path.stem}.png")
        plt.close(fig)
    return {"wall_s": time.perf_counter() - start, "clips": len(files)}


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time (the upper one of an even count), plus every run's wall time."""
    ranked = sorted(runs, key=lambda r: r["wall_s"])
    return {**ranked[len(ranked) // 2], "all_wall_s": [round(r["wall_s"], 2) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000,
                        help="clips in the main corpus (multiple of 10; 1000 = GTZAN's size)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--prototype-clips", type=int, default=20, help="clips for (c), which is slow")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-default", action="store_true", help="skip (d)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of (a), (b) and (c), interleaved; the tables show each one's median run")
    args = parser.parse_args()

    small_n = max(10, args.clips // 10)
    big = make_corpus(args.work / f"corpus-{args.clips}", args.clips, args.seconds)
    small = make_corpus(args.work / f"corpus-{small_n}", small_n, args.seconds)
    big_files = audio_files(big)
    audio_s = len(big_files) * args.seconds

    runs: dict[str, list[dict]] = {"a_small": [], "a": [], "b": [], "c": []}
    for k in range(args.repeats):  # interleaved, so a slow spell of the machine hits every method alike
        print(f"round {k + 1}/{args.repeats}: (a) {small_n} clips, (a) {args.clips} clips, (b), (c) ...", flush=True)
        runs["a_small"].append(ray_prepare(small, args.work / "out-a-small", minimal=True))
        runs["a"].append(ray_prepare(big, args.work / "out-a", minimal=True))
        runs["b"].append(plain_librosa(big_files))
        runs["c"].append(prototype_png(big_files[: args.prototype_clips], args.work / "png"))
    results: dict[str, dict] = {key: median_run(r) for key, r in runs.items()}
    if not args.skip_default:
        print(f"(d) Ray pipeline, default settings, {args.clips} clips ...", flush=True)
        results["d"] = ray_prepare(big, args.work / "out-d", minimal=False)

    def rate(r: dict, clips: int) -> tuple[float, float]:
        return clips / r["wall_s"], clips * args.seconds / r["wall_s"]

    rows = [
        ("(a) Ray Data, decode+segment+log-mel", results["a"], len(big_files)),
        ("(b) plain librosa loop, one process", results["b"], len(big_files)),
        ("(c) prototype STFT->specshow->PNG", results["c"], results["c"]["clips"]),
    ]
    if "d" in results:
        rows.append(("(d) Ray Data, default settings", results["d"], len(big_files)))
    lines = [f"Corpus: {len(big_files)} synthetic clips x {args.seconds:g} s ({audio_s / 3600:.2f} h of audio), "
             f"{os.cpu_count()} CPUs, wall times include Ray start-up.", "",
             "| run | clips | wall s | clips/s | audio-s/s | peak RSS MB |", "|---|---:|---:|---:|---:|---:|"]
    for name, r, clips in rows:
        cps, aps = rate(r, clips)
        mem = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-"
        lines.append(f"| {name} | {clips} | {r['wall_s']:.1f} | {cps:.2f} | {aps:.0f} | {mem} |")
    a_cps = rate(results["a"], len(big_files))[0]
    ratios = {
        "a_over_b": a_cps / rate(results["b"], len(big_files))[0],
        "a_over_c": a_cps / rate(results["c"], results["c"]["clips"])[0],
        "peak_mem_10x_over_1x": results["a"]["peak_rss_mb"] / results["a_small"]["peak_rss_mb"],
    }
    lines += ["", "Wall times of every run (s): " + "; ".join(
        f"{key} {results[key]['all_wall_s']}" for key in ("a", "a_small", "b", "c"))]
    lines += ["", f"(a) at {small_n} clips: {results['a_small']['wall_s']:.1f} s, peak RSS "
              f"{results['a_small']['peak_rss_mb']:.0f} MB",
              "", "| ratio | value | target |", "|---|---:|---:|",
              f"| (a) / (b) clips/s | {ratios['a_over_b']:.2f} | >= 1.6 |",
              f"| (a) / (c) clips/s | {ratios['a_over_c']:.1f} | >= 30 |",
              f"| peak memory of (a), {args.clips} vs {small_n} clips | {ratios['peak_mem_10x_over_1x']:.2f} | <= 1.3 |",
              "", "Time inside the Ray tasks of (a), summed over tasks (s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in results["a"]["task_seconds"].items())]
    if "d" in results:
        lines.append("Time inside the Ray tasks of (d), summed over tasks (s): "
                     + ", ".join(f"{k} {v:.1f}" for k, v in results["d"]["task_seconds"].items()))
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
