"""Load test of ``spectrotune serve``: p50/p95 latency, requests/s and errors on loopback, per server batch size.

For each ``--batch-sizes`` value it starts one real ``spectrotune serve BUNDLE --max-batch-size B`` (its own process
group and RAY_TMPDIR, ended afterwards; :func:`spectrotune.serving.client.serve_process`), warms it up with a few
requests, then sends ``--requests`` uploads of ``--seconds``-s WAV clips from ``--concurrency`` threads (each waits
for its reply before sending the next) and prints one Markdown table row per server; ``--json`` prints the numbers.

    python bench/serve.py --requests 200 --concurrency 8 --batch-sizes 1,8
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from spectrotune.serving.client import load_test, post_audio, serve_process

REPO = Path(__file__).resolve().parents[1]


def clips(n: int, seconds: float, sr: int = 22050) -> list[tuple[str, bytes]]:
    """``n`` WAV clips (16-bit, ``sr`` Hz) of tones and noise, as ``(name, bytes)``."""
    out = []
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        y = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) + 0.05 * rng.standard_normal(len(t))
        buf = io.BytesIO()
        sf.write(buf, y.astype(np.float32), sr, format="WAV", subtype="PCM_16")
        out.append((f"clip{i}.wav", buf.getvalue()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default=str(REPO / "tests" / "data" / "main-325b798" / "bundle"))
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5.0, help="length of each uploaded clip")
    p.add_argument("--batch-sizes", default="1,8", help="server --max-batch-size values, one server each")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    payloads = clips(4, args.seconds)
    rows = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        t0 = time.perf_counter()
        server_args = ["--max-batch-size", str(batch), "--replicas", str(args.replicas),
                       "--max-concurrent-uploads", str(max(8, args.concurrency))]
        with serve_process(args.bundle, args=server_args) as server:
            startup = time.perf_counter() - t0
            for name, data in payloads:  # warm-up: first decode, lazy imports, the first forward pass
                status, reply = post_audio(server.url, data, filename=name)
                assert status == 200, reply
            result = load_test(server.url, payloads, requests=args.requests, concurrency=args.concurrency)
        rows.append({"max_batch_size": batch, "replicas": args.replicas, "clip_seconds": args.seconds,
                     "startup_s": round(startup, 1), **result.summary()})
    if args.json:
        print(json.dumps(rows, indent=2))
    print("| server `--max-batch-size` | requests | concurrency | errors | p50 ms | p95 ms | requests/s | start-up s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['max_batch_size']} | {r['requests']} | {r['concurrency']} | {r['errors']} | {r['p50_ms']} | "
              f"{r['p95_ms']} | {r['requests_per_s']} | {r['startup_s']} |")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
