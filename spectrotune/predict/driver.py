"""``spectrotune predict`` as one call: :func:`predict` expands the paths, predicts, writes the output.

Two ways to run, one result: for a few files :func:`spectrotune.predict.core.predict_files` runs in this process;
for folders (or more than :data:`RAY_MIN_FILES` files) the same work runs as Ray Data batch inference
(:func:`spectrotune.predict.batch.predict_with_ray`, imported only then), which scales to many thousands of files
on a cluster. See :mod:`spectrotune.predict` for the rows and the output files. No ``ray`` here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spectrotune import storage
from spectrotune.bundle import load_bundle
from spectrotune.errors import InputError
from spectrotune.predict.core import check_top_k, predict_files
from spectrotune.predict.files import check_output, expand_inputs, timeline_path, write_table
from spectrotune.sources.kinds import source_kind

logger = logging.getLogger(__name__)

__all__ = ["RAY_MIN_FILES", "PredictResult", "predict"]

#: More files than this (or any folder) and :func:`predict` uses Ray Data unless told otherwise.
RAY_MIN_FILES = 64


@dataclass
class PredictResult:
    """What :func:`predict` found: one row per file, the optional per-segment timeline, and where they went."""

    rows: list[dict[str, Any]]
    timeline: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    top_k: int = 3
    output: Path | None = None
    timeline_output: Path | None = None
    used_ray: bool = False
    seconds: float = 0.0
    #: Files the folder search found that are not inputs of the bundle's kind (``notes.txt``); named, not read.
    left_out: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The rows of files that could not be predicted (``status="error"``; silent clips are not errors)."""
        return [r for r in self.rows if r["status"] == "error"]

    @property
    def silent(self) -> list[dict[str, Any]]:
        """The rows of clips flagged silent (no genre given)."""
        return [r for r in self.rows if r["status"] == "silent"]

    def summary(self) -> str:
        n_bad, n_silent = len(self.errors), len(self.silent)
        line = (f"predicted {len(self.rows) - n_bad - n_silent} file(s)" + (f", {n_bad} failed" if n_bad else "")
                + (f", {n_silent} silent (no genre)" if n_silent else "")
                + f" in {self.seconds:.1f} s" + (" (Ray Data)" if self.used_ray else ""))
        if self.output is not None:
            line += f"; wrote {self.output}" + (f" and {self.timeline_output}" if self.timeline_output else "")
        return line


def predict(
    bundle_dir: str | Path,
    paths: Sequence[str | os.PathLike[str]],
    *,
    top_k: int = 3,
    timeline: bool = False,
    output: str | Path | None = None,
    use_ray: bool | None = None,
    log: Callable[[str], None] = logger.info,
) -> PredictResult:
    """Predict the genres of audio files (or images, for a Spotify bundle) with a model bundle.

    Parameters
    ----------
    bundle_dir : path
        A bundle written by ``spectrotune train``.
    paths : sequence of path
        Files and folders (folders are searched recursively; see
        :func:`spectrotune.predict.files.expand_inputs`).
    top_k : int >= 1
        Genres per file (cut to the number of labels).
    timeline : bool
        Also produce one row per segment (which genre, when).
    output : path, optional
        ``.csv`` or ``.parquet`` file for the rows; the timeline goes to ``<stem>.timeline.<suffix>`` beside it.
    use_ray : bool or None
        Ray Data batch inference (True), in-process (False), or decide (None: Ray when a folder was given or
        there are more than :data:`RAY_MIN_FILES` files).
    log : callable
        Receives progress lines.

    Returns
    -------
    PredictResult

    Raises
    ------
    BundleError
        The bundle cannot be loaded.
    ConfigError
        Bad ``top_k`` or an output suffix other than ``.csv`` / ``.parquet``.
    InputError
        No files to predict (e.g. only empty folders).
    """
    t0 = time.perf_counter()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out_path = check_output(output)
    bundle = load_bundle(bundle_dir)
    k = check_top_k(top_k, len(bundle.labels))
    kind = source_kind(bundle.source_kind)
    found = expand_inputs(paths, kind=kind)
    files, had_folder = found.files, found.had_folder
    if found.left_out:
        shown = ", ".join(found.left_out[:5]) + (f" and {len(found.left_out) - 5} more" if len(found.left_out) > 5
                                                 else "")
        logging.getLogger(__name__).warning(f"left out {len(found.left_out)} file(s) that are not {kind.noun} files "
                                            f"spectrotune reads: {shown}")
    if not files:
        raise InputError(f"no {kind.noun} files to predict in {', '.join(map(str, paths)) or 'the given paths'}")
    if use_ray is None:
        use_ray = had_folder or len(files) > RAY_MIN_FILES
    log(f"predicting {len(files)} file(s) with {bundle.path} ({len(bundle.labels)} genres)"
        + (" on Ray Data" if use_ray else ""))
    if use_ray:
        from spectrotune.predict.batch import predict_with_ray

        rows, segments = predict_with_ray(storage.norm(bundle_dir), files, top_k=k, timeline=timeline)
    else:
        rows, segments = predict_files(bundle, files, top_k=k, timeline=timeline)
    result = PredictResult(rows=rows, timeline=segments, labels=bundle.labels, top_k=k, used_ray=bool(use_ray),
                           left_out=found.left_out)
    if out_path is not None:
        result.output = write_table(rows, out_path, top_k=k)
        if timeline:
            result.timeline_output = write_table(segments, timeline_path(out_path), top_k=1, timeline=True)
    result.seconds = time.perf_counter() - t0
    log(result.summary())
    return result
