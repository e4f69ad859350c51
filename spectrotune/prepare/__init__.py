"""prepare room: a corpus folder (audio files or Spotify images) -> the Parquet dataset (:mod:`spectrotune.dataset`).

Start at :mod:`~spectrotune.prepare.driver` (``prepare``: list, split by track, fan batches out on Ray Data, write
the manifest, publish atomically). Pure (no ``ray``): ``task`` (one batch of files -> one shard per split, the work
each Ray task does; what a file becomes is its :class:`~spectrotune.sources.kinds.SourceKind`'s), ``inspect``
(summary, example spectrograms, noisy WAVs rebuilt from the seeds). Importing a pure module loads no Ray.

The room is also its stage's function for the Python API: ``spectrotune.prepare(source, out, config=...)`` calls
:func:`~spectrotune.prepare.driver.prepare` (:func:`spectrotune.api.callable_room`).
"""

from spectrotune.api import callable_room  # noqa: E402 - after the docstring; standard library only

callable_room(__name__, "spectrotune.prepare.driver", "prepare")
