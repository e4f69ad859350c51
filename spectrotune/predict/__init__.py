"""``spectrotune predict``: genres of new audio files (or Spotify-style images) with a trained model bundle.

Any audio format (:data:`spectrotune.audio.io.AUDIO_EXTENSIONS`), sample rate, channel count or length is
accepted: a file is decoded at the bundle's sample rate (mono), cut into the bundle's segment length with its test
hop, turned into log-mel with the bundle's own feature parameters (the bundle's
:class:`~spectrotune.bundle.InputRecipe`), and the segment probabilities are averaged per file. A file shorter
than one window fills it as the bundle's training rows did (``audio.pad``: looped, or zeros for bundles written
before that key) and its row says so (``padded``). A clip whose every window is nearly silent (below
:data:`spectrotune.audio.io.NEAR_SILENCE_DB` dBFS) gets ``status="silent"`` and no genre. A file that cannot be
read gets a row with ``status="error"`` and the reason; every other file is still predicted.

Modules, in reading order:

- :mod:`~spectrotune.predict.driver`: :func:`~spectrotune.predict.driver.predict`, the command: expands the paths,
  picks in-process or Ray Data, writes the output;
- :mod:`~spectrotune.predict.core`: the pure work, files -> rows (:func:`~spectrotune.predict.core.predict_files`),
  the :class:`~spectrotune.predict.core.Predictor` callable each Ray Data actor runs, and the terminal text;
- :mod:`~spectrotune.predict.files`: which files a list of paths and folders means, and the output tables;
- :mod:`~spectrotune.predict.batch`: the Ray Data fan-out for many files (with ``tag_batch``, the only modules
  here that import ``ray``);
- :mod:`~spectrotune.predict.tag` and :mod:`~spectrotune.predict.tag_batch`: ``spectrotune tag``, music tags with
  a pretrained musicnn model (no bundle: the weights come from the cache ``spectrotune fetch musicnn`` fills).

Output rows (one per file, in the order the files were given / found)::

    path, status ("ok" | "error" | "silent"), reason, padded, silent, n_segments, top1, p1, top2, p2, ...

and with ``timeline=True`` one row per segment: ``path, segment, start_seconds, top1, p1``. ``output=FILE.csv``
or ``FILE.parquet`` writes the rows (pandas); the timeline goes next to it as ``FILE.timeline.csv|parquet``.

Example
-------
>>> from spectrotune.predict.core import format_predictions
>>> from spectrotune.predict.driver import predict
>>> result = predict("runs/demo/bundle", ["song.mp3.wav", "folder/"], top_k=3)
>>> print(format_predictions(result.rows, 3))

The room is also that function for the Python API: ``spectrotune.predict(bundle, paths, ...)`` calls
:func:`~spectrotune.predict.driver.predict` (:func:`spectrotune.api.callable_room`); ``spectrotune.load_bundle``
gives a model that predicts one clip or array (:mod:`spectrotune.api`).
"""

from spectrotune.api import callable_room  # noqa: E402 - after the docstring; standard library only

callable_room(__name__, "spectrotune.predict.driver", "predict")
