"""prepare room: a corpus folder (audio files or Spotify images) -> the Parquet dataset (:mod:`spectrotune.dataset`).

Start at :mod:`~spectrotune.prepare.driver` (``prepare``: list, split by track, fan batches out on Ray Data, write
the manifest, publish atomically). Pure (no ``ray``): ``task`` (one batch of files -> one shard per split, the work
each Ray task does; what a file becomes is its :class:`~spectrotune.sources.kinds.SourceKind`'s), ``inspect``
(summary, example spectrograms, noisy WAVs rebuilt from the seeds). No imports here: importing a pure module loads
no Ray.
"""
