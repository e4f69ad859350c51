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
    python bench/prepare.py --scale 1,10        # (a) on 1x and 10x GTZAN's size: memory and throughput ratios

``--scale S1,S2,...`` runs only (a), once per corpus of ``S x 1000`` clips, and reports peak memory and throughput
of each against the first. The clips come from one cache (``WORK/synth-cache``, written once by ``--gen-workers``
processes, byte-identical to :func:`~spectrotune.sources.synth.corpus.generate_corpus`'s files); each scale's corpus
is a folder of hard links to the first ``S x 100`` tracks of every genre. Each ``spectrotune prepare`` runs with a
private ``RAY_TMPDIR`` in its own session; its memory is the sum over the union of its process tree, its process
group and every process whose environment names that ``RAY_TMPDIR`` (Ray processes that are not descendants):
RSS every 50 ms, PSS (shared pages split between their users: the object store counted once) every 0.5 s.
Throughput is reported end to end (clips / wall s, Ray start-up included), in steady state (clips finished
between the first and the last task, from the shards' modification times) and per CPU second (user + system time
of the same processes, read with the PSS samples): on a machine that other jobs share, the wall-clock rates follow
their load, the CPU time per clip much less.

(a), (b) and (c) run ``--repeats`` times, interleaved; the tables show each one's median run and list every run's
wall time. Linux only (reads /proc). Prints a Markdown table; BENCHMARKS.md records the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/'s own modules
from procmem import run_measured  # noqa: E402

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


def _write_tracks(cache: str, jobs: list[tuple[int, int]], seconds: float) -> int:
    """Write tracks ``(genre index, track)`` of the 10-genre synthetic corpus exactly as ``generate_corpus`` does."""
    import io

    import soundfile as sf

    from spectrotune import storage
    from spectrotune.sources.synth.render import synthesize_track
    from spectrotune.sources.synth.styles import BORROW_PROBABILITY, genre_names

    names = genre_names(10)
    for g, t in jobs:
        rng = np.random.default_rng([0, g, t])
        audio = synthesize_track(g, n_genres=10, seconds=seconds, sr=SR, rng=rng, borrow=BORROW_PROBABILITY)
        wav = io.BytesIO()
        sf.write(wav, audio, SR, subtype="PCM_16", format="WAV")
        storage.write_bytes(Path(cache) / "genres_original" / names[g] / f"{names[g]}.{t:05d}.wav", wav.getvalue())
    return len(jobs)


def cached_corpus(work: Path, clips: int, seconds: float, *, workers: int) -> tuple[Path, float]:
    """A corpus of ``clips`` clips (10 genres): hard links into ``work/synth-cache``, whose missing tracks are written
    first by ``workers`` processes. Returns the corpus folder and the seconds spent writing new tracks."""
    from concurrent.futures import ProcessPoolExecutor

    from spectrotune.sources.synth.styles import genre_names

    if clips % 10:
        raise SystemExit(f"--scale: {clips} clips is not a multiple of 10 genres")
    cache = work / f"synth-cache-{seconds:g}s"
    names = genre_names(10)
    missing = [(g, t) for t in range(clips // 10) for g in range(10)
               if not (cache / "genres_original" / names[g] / f"{names[g]}.{t:05d}.wav").is_file()]
    t0 = time.perf_counter()
    if missing:
        for name in names:
            (cache / "genres_original" / name).mkdir(parents=True, exist_ok=True)
        print(f"writing {len(missing)} synthetic clips into {cache} ({workers} processes) ...", flush=True)
        chunks = [missing[i::workers * 8] for i in range(workers * 8)]
        with ProcessPoolExecutor(workers) as pool:
            sum(pool.map(_write_tracks, [str(cache)] * len(chunks), chunks, [seconds] * len(chunks)))
    written = time.perf_counter() - t0
    view = work / f"scale-{clips}"
    shutil.rmtree(view, ignore_errors=True)
    for name in names:
        (view / "genres_original" / name).mkdir(parents=True)
        for t in range(clips // 10):
            file = f"genres_original/{name}/{name}.{t:05d}.wav"
            os.link(cache / file, view / file)
    return view, written


def audio_files(corpus: Path) -> list[Path]:
    return sorted((corpus / "genres_original").rglob("*.wav"))


def ray_prepare(corpus: Path, out: Path, *, minimal: bool, private_ray: bool = False) -> dict:
    """One ``spectrotune prepare`` child process; wall time, peak memory, rows and (``private_ray``: own RAY_TMPDIR,
    memory also summed over the processes that name it) steady-state clips/s from the shards' times."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "spectrotune.cli", "prepare", "--source", str(corpus), "--out", str(out),
           "--no-progress", "--set", "split.kind=stratified"]
    if minimal:
        cmd += ["--set", "noise.enabled=false", "--set", "features.handcrafted=false"]
    env = ray_tmp = None
    if private_ray:
        # short: Ray's socket paths under it must stay below the 107-byte AF_UNIX limit
        ray_tmp = tempfile.mkdtemp(prefix="stb-ray-", dir="/tmp")
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": ray_tmp}
    try:
        wall, peak, _, extra = run_measured(cmd, env=env, ray_tmpdir=ray_tmp)
    finally:
        if ray_tmp:
            shutil.rmtree(ray_tmp, ignore_errors=True)
    manifest = json.loads((out / "manifest.json").read_text())
    rows = sum(manifest["counts"]["rows_per_split"].values())
    result = {"wall_s": wall, "peak_rss_mb": peak / 2**20, "rows": rows,
              "ray_process_s": manifest["timings"]["process_seconds"],
              "task_seconds": manifest["timings"]["task_seconds"]}
    if private_ray:
        result |= {"peak_pss_mb": extra["peak_pss"] / 2**20, "max_processes": extra["max_processes"],
                   "cpu_seconds": extra["cpu_seconds"],
                   **steady_rate(out, segments_per_clip=rows / max(1, manifest["counts"]["tracks"]))}
    return result


def steady_rate(dataset: Path, *, segments_per_clip: float) -> dict:
    """Clips/s between the first and the last task's end: each task writes its ``part-NNNNN`` shards last thing,
    so the newest shard modification time of a part is when that task finished; rows come from the footers."""
    import pyarrow.parquet as pq

    done: dict[str, list[float]] = {}
    for shard in dataset.rglob("*-part-*.parquet"):  # <split>-part-NNNNN.parquet (dataset.shard_file)
        entry = done.setdefault(shard.stem.split("-", 1)[1], [0.0, 0.0])
        entry[0] = max(entry[0], shard.stat().st_mtime)
        entry[1] += pq.ParquetFile(shard).metadata.num_rows
    ends = sorted(done.values())
    if len(ends) < 3:
        return {"steady_clips_per_s": float("nan"), "tasks": len(ends)}
    span = ends[-1][0] - ends[0][0]
    rows_after_first = sum(r for _, r in ends[1:])
    return {"steady_clips_per_s": rows_after_first / segments_per_clip / max(span, 1e-9), "tasks": len(ends)}


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


def run_scale(args: argparse.Namespace) -> None:
    """``--scale``: (a) once per corpus size, each against the first: peak memory and throughput ratios."""
    scales = [float(x) for x in args.scale.split(",")]
    sizes = [round(1000 * x) for x in scales]
    results = []
    for scale, clips in zip(scales, sizes):
        corpus, written = cached_corpus(args.work, clips, args.seconds, workers=args.gen_workers)
        if written:
            print(f"  wrote the missing clips in {written:.1f} s", flush=True)
        load = os.getloadavg()[0]
        print(f"(a) at {scale:g}x: {clips} clips (load average {load:.2f}) ...", flush=True)
        r = ray_prepare(corpus, args.work / f"out-scale-{clips}", minimal=True, private_ray=True)
        results.append({"scale": scale, "clips": clips, "load_before": load, "load_after": os.getloadavg()[0],
                        **r, "clips_per_s": clips / r["wall_s"]})
        if not args.keep:
            shutil.rmtree(args.work / f"out-scale-{clips}", ignore_errors=True)
    base = results[0]
    lines = [f"{os.cpu_count()} CPUs; (a) settings (decode + segment + log-mel); one run per size", "",
             ("| scale | clips | wall s | clips/s end to end | clips/s steady | CPU s | clips per CPU s | tasks "
              "| peak RSS MB | peak PSS MB | processes | load avg before/after |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r['scale']:g}x | {r['clips']} | {r['wall_s']:.1f} | {r['clips_per_s']:.1f} | "
                     f"{r['steady_clips_per_s']:.1f} | {r['cpu_seconds']:.0f} | {r['clips'] / r['cpu_seconds']:.2f} | "
                     f"{r['tasks']} | {r['peak_rss_mb']:.0f} | "
                     f"{r['peak_pss_mb']:.0f} | {r['max_processes']} | {r['load_before']:.2f}/{r['load_after']:.2f} |")
    ratios = {}
    for r in results[1:]:
        key = f"{r['scale']:g}x/{base['scale']:g}x"
        ratios[key] = {"peak_rss": r["peak_rss_mb"] / base["peak_rss_mb"],
                       "peak_pss": r["peak_pss_mb"] / base["peak_pss_mb"],
                       "steady_throughput": r["steady_clips_per_s"] / base["steady_clips_per_s"],
                       "clips_per_cpu_second": (r["clips"] / r["cpu_seconds"]) / (base["clips"] / base["cpu_seconds"]),
                       "end_to_end_throughput": r["clips_per_s"] / base["clips_per_s"]}
        lines += ["", f"| ratio {key} | value | target |", "|---|---:|---:|",
                  f"| peak RSS | {ratios[key]['peak_rss']:.2f} | <= 1.2 |",
                  f"| peak PSS | {ratios[key]['peak_pss']:.2f} | <= 1.2 |",
                  f"| steady clips/s | {ratios[key]['steady_throughput']:.2f} | 0.9 - 1.1 |",
                  f"| clips per CPU second (start-up CPU included) | {ratios[key]['clips_per_cpu_second']:.2f} | 0.9 - 1.1 |",
                  f"| end-to-end clips/s (start-up amortised) | {ratios[key]['end_to_end_throughput']:.2f} | - |"]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))


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
    parser.add_argument("--scale", default=None, metavar="S1,S2,...",
                        help="only (a), at S x 1000 clips each (e.g. 1,10): memory and throughput against the first")
    parser.add_argument("--gen-workers", type=int, default=2, help="processes writing missing synthetic clips")
    parser.add_argument("--keep", action="store_true", help="--scale: keep the prepared datasets")
    args = parser.parse_args()
    if args.scale:
        run_scale(args)
        return

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
