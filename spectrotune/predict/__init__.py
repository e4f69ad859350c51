"""``spectrotune predict``: genres of new audio files (or Spotify-style images) with a trained model bundle.

Any sample rate, channel count or length is accepted: a file is decoded at the bundle's sample rate (mono), cut
into the bundle's segment length with its test hop, turned into log-mel with the bundle's own feature parameters
(the bundle's :class:`~spectrotune.bundle.InputRecipe`), and the segment probabilities are averaged per file. A
file shorter than one window is zero-padded to one window and its row says so (``padded``). A file that cannot be
read gets a row with ``status="error"`` and the reason; every other file is still predicted.

Modules, in reading order:

- :mod:`~spectrotune.predict.driver`: :func:`~spectrotune.predict.driver.predict`, the command: expands the paths,
  picks in-process or Ray Data, writes the output;
- :mod:`~spectrotune.predict.core`: the pure work, files -> rows (:func:`~spectrotune.predict.core.predict_files`),
  the :class:`~spectrotune.predict.core.Predictor` callable each Ray Data actor runs, and the terminal text;
- :mod:`~spectrotune.predict.files`: which files a list of paths and folders means, and the output tables;
- :mod:`~spectrotune.predict.batch`: the Ray Data fan-out for many files (the only module here that imports
  ``ray``).

Output rows (one per file, in the order the files were given / found)::

    path, status ("ok" | "error"), reason, padded, n_segments, top1, p1, top2, p2, ...

and with ``timeline=True`` one row per segment: ``path, segment, start_seconds, top1, p1``. ``output=FILE.csv``
or ``FILE.parquet`` writes the rows (pandas); the timeline goes next to it as ``FILE.timeline.csv|parquet``.

Example
-------
>>> from spectrotune.predict.core import format_predictions
>>> from spectrotune.predict.driver import predict
>>> result = predict("runs/demo/bundle", ["song.mp3.wav", "folder/"], top_k=3)
>>> print(format_predictions(result.rows, 3))
"""
