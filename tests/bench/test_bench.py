"""Tests of the benchmark scripts' own machinery (no benchmark is run): the scale mode's corpus cache, memory and
CPU sampling (bench/procmem.py) and steady-state rate (bench/prepare.py), bench/train.py --gpu on a machine without
CUDA, and which side of bench/train.py --streaming holds its splits."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its pool workers unpickle functions by module name
    spec.loader.exec_module(module)
    return module


def test_scale_corpus_is_generate_corpus_s_files_linked_from_one_cache(tmp_path):
    from spectrotune.sources.synth.corpus import generate_corpus

    bench = _bench("prepare")
    view, _ = bench.cached_corpus(tmp_path / "work", 20, 0.5, workers=1)
    reference = generate_corpus(tmp_path / "ref", genres=10, tracks=2, seconds=0.5, seed=0)
    ours = sorted(view.rglob("*.wav"))
    assert [p.relative_to(view) for p in ours] == [p.relative_to(tmp_path / "ref") for p in reference]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(ours, reference))
    bigger, written = bench.cached_corpus(tmp_path / "work", 30, 0.5, workers=1)  # only the new tracks are written
    cache = next((tmp_path / "work").glob("synth-cache-*"))
    assert len(list(bigger.rglob("*.wav"))) == 30 and len(list(cache.rglob("*.wav"))) == 30
    assert os.stat(next(bigger.rglob("*.00000.wav"))).st_nlink >= 2  # links, not copies


def test_steady_rate_counts_the_clips_finished_after_the_first_task(tmp_path):
    bench = _bench("prepare")
    now = time.time()
    for k, (rows, end) in enumerate([(10, now), (20, now + 2), (30, now + 4)]):
        for split, share in (("train", rows - 10), ("valid", 10)):
            path = tmp_path / "data" / f"split={split}" / f"{split}-part-{k:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"x": list(range(share))}), path)
            os.utime(path, (end - 1 if split == "valid" else end, end - 1 if split == "valid" else end))
    rate = bench.steady_rate(tmp_path, segments_per_clip=10)
    assert rate["tasks"] == 3
    assert rate["steady_clips_per_s"] == pytest.approx((20 + 30) / 10 / 4)  # 5 clips in the 4 s after task 0


def test_memory_sampler_counts_a_process_outside_the_tree_by_its_ray_tmpdir(tmp_path):
    bench = _bench("procmem")
    marker = str(tmp_path / "ray")
    hog = ("import time; b = bytearray(80 * 2**20); [b.__setitem__(i, 1) for i in range(0, len(b), 4096)]; "
           "print('ready', flush=True); time.sleep(30)")
    outsider = subprocess.Popen([sys.executable, "-c", hog], env={**os.environ, "RAY_TMPDIR": marker},
                                start_new_session=True, stdout=subprocess.PIPE, text=True)
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        assert outsider.stdout.readline().strip() == "ready"  # it has touched its 80 MB
        with bench.MemorySampler(target.pid, ray_tmpdir=marker) as with_marker:
            time.sleep(0.6)
        with bench.MemorySampler(target.pid) as without:
            time.sleep(0.6)
    finally:
        for proc in (outsider, target):
            proc.kill()
            proc.wait()
    assert with_marker.peak_rss - without.peak_rss > 70 * 2**20
    assert with_marker.max_processes == 2 and without.max_processes == 1
    assert with_marker.cpu_seconds > without.cpu_seconds >= 0.0  # the outsider spent CPU touching its pages


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: --gpu would run the benchmark")
def test_train_bench_gpu_without_cuda_stops_with_one_clear_line():
    out = subprocess.run([sys.executable, "bench/train.py", "--gpu"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench/train.py: --gpu: no CUDA device visible")


def test_train_bench_streaming_sides_hold_and_stream_as_named():
    # The two sides were once swapped (the "held" side streamed from Parquet): the table's labels depend on this.
    bench = _bench("train")
    assert bench.side_settings("memory", object_store_mb=80) == (None, "train.materialize=true")
    assert bench.side_settings("streaming", object_store_mb=80) == (80 * 2**20, "train.materialize=false")
