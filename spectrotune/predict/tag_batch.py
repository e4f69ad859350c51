"""Ray Data batch inference for ``spectrotune tag``: many files, one pretrained tagger per actor.

``from_items(paths).map_batches(Tagger, ...)``: this process reads the model from the cache once and hands its
weights (about 3 MB) and metadata to every actor, so the nodes of a cluster need no cache of their own; each actor
builds the network once and tags batches of file paths. Rows come back in the order the files were given, equal to
:func:`spectrotune.predict.tag.tag_files` on the same files. The files themselves must be on storage every node
sees. Imports ``ray`` (inside the function); the pure work is :class:`spectrotune.predict.tag.Tagger`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

from spectrotune.predict.tag import Tagger

__all__ = ["MAX_BATCH_FILES", "tag_with_ray"]

MAX_BATCH_FILES = 16  # files per batch: a 30-s file is 10 windows; one slow file holds few others back


def tag_with_ray(model: str, paths: Sequence[str], *, top_k: int, cache: str | os.PathLike[str] | None = None,
                 batch_files: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`~spectrotune.predict.tag.tag_files` of ``paths`` as Ray Data batch inference (starts or joins Ray).

    ``batch_files`` (default: enough batches to keep every CPU busy, at most :data:`MAX_BATCH_FILES`) sets the
    files per batch. Raises InputError when the model is not in the cache.
    """
    import ray

    from spectrotune.models.pretrained import read_pretrained
    from spectrotune.runtime import init_ray

    meta, weights = read_pretrained(model, cache)
    init_ray()
    ray.data.DataContext.get_current().verbose_stats_logs = False
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = batch_files or max(1, min(MAX_BATCH_FILES, math.ceil(len(paths) / cpus)))
    n_batches = math.ceil(len(paths) / size)
    ds = ray.data.from_items([{"index": i, "path": p} for i, p in enumerate(paths)], override_num_blocks=n_batches)
    ds = ds.map_batches(
        Tagger,
        fn_constructor_kwargs={"model": model, "top_k": top_k, "weights": weights, "meta": meta.to_dict(),
                               "num_threads": 1},
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, min(cpus, n_batches))),
        batch_size=size,
        num_cpus=1,
        zero_copy_batch=True,
    )
    results = sorted(((int(r["index"]), r["row"], r["windows"]) for r in ds.iter_rows()), key=lambda x: x[0])
    if len(results) != len(paths):  # pragma: no cover - Ray Data guarantees one output row per input row
        raise RuntimeError(f"Ray Data returned {len(results)} rows for {len(paths)} files")
    return [json.loads(r) for _, r, _ in results], [w for _, _, ws in results for w in json.loads(ws)]
