"""Ray Data batch inference for ``spectrotune predict``: many files, many actors, the in-process results.

``from_items(paths).map_batches(Predictor, ...)``: each actor loads the bundle once
(:class:`spectrotune.predict.core.Predictor`) and predicts batches of file paths; the rows come back in the order
the files were given, equal to :func:`spectrotune.predict.core.predict_files` on the same files. Only paths travel,
so on a cluster the bundle and the files must sit on storage every node sees. The only module of
:mod:`spectrotune.predict` that imports ``ray`` (inside the function).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spectrotune import console
from spectrotune.predict.core import Predictor

__all__ = ["MAX_BATCH_FILES", "predict_with_ray"]

# Files per Ray Data batch: large enough to amortise per-batch overhead, small enough that one slow file
# does not hold many others back and that a batch's segments fit in memory easily.
MAX_BATCH_FILES = 32


def predict_with_ray(
    bundle_dir: Path | str, paths: Sequence[str], *, top_k: int, timeline: bool, batch_files: int | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`~spectrotune.predict.core.predict_files` of ``paths`` as Ray Data batch inference.

    ``top_k`` must already be checked; ``batch_files`` (default: enough batches to keep every CPU busy, at most
    :data:`MAX_BATCH_FILES`) sets the files per batch. Starts or joins Ray (:func:`spectrotune.runtime.init_ray`).
    """
    import ray

    from spectrotune.runtime import init_ray

    init_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.verbose_stats_logs = False
    ctx.enable_progress_bars = False  # Ray Data's own bars drew nothing on a terminal; the files-done bar below does
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Enough batches to keep every actor busy, never more files per batch than MAX_BATCH_FILES.
    size = batch_files or max(1, min(MAX_BATCH_FILES, math.ceil(len(paths) / cpus)))
    n_batches = math.ceil(len(paths) / size)
    actors = max(1, min(cpus, n_batches))
    ds = ray.data.from_items([{"index": i, "path": p} for i, p in enumerate(paths)],
                             override_num_blocks=n_batches)
    ds = ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"bundle_dir": str(bundle_dir), "top_k": top_k, "timeline": timeline,
                               "num_threads": 1},
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
        batch_size=size,
        num_cpus=1,
        zero_copy_batch=True,
    )
    results = []
    with console.Progress("predict", len(paths)) as bar:  # drawn on a terminal only
        for r in ds.iter_rows():  # one row per file, as each batch finishes
            results.append((int(r["index"]), r["row"], r["timeline"]))
            bar.advance()
    results.sort(key=lambda x: x[0])
    if len(results) != len(paths):  # pragma: no cover - Ray Data guarantees one output row per input row
        raise RuntimeError(f"Ray Data returned {len(results)} rows for {len(paths)} files")
    rows = [json.loads(r) for _, r, _ in results]
    segments = [seg for _, _, t in results for seg in json.loads(t)]
    return rows, segments
