"""``spectrotune predict``: genres of new audio files (or Spotify-style images) with a trained model bundle.

Any sample rate, channel count or length is accepted: a file is decoded at the bundle's sample rate (mono),
cut into the bundle's segment length with its test hop, turned into log-mel with the bundle's own feature
parameters, and the segment probabilities are averaged per file. A file shorter than one window is zero-padded
to one window and its row says so (``padded``). A file that cannot be read gets a row with ``status="error"``
and the reason; every other file is still predicted.

Two ways to run, one result: :func:`predict_files` is the pure function that does the work for a list of files.
:func:`predict` calls it in-process for a few files, and for folders (or more than :data:`RAY_MIN_FILES`
files) runs it as Ray Data batch inference, ``from_items(paths).map_batches(Predictor, ...)``, where each actor
loads the bundle once in ``Predictor.__init__``; that is what scales to many thousands of files on a cluster.
Only paths travel, so on a cluster the bundle and the files must sit on storage every node sees. ``ray`` is
imported only inside that path.

Output rows (one per file, in the order the files were given / found)::

    path, status ("ok" | "error"), reason, padded, n_segments, top1, p1, top2, p2, ...

and with ``timeline=True`` one row per segment: ``path, segment, start_seconds, top1, p1``. ``output=FILE.csv``
or ``FILE.parquet`` writes the rows (pandas); the timeline goes next to it as ``FILE.timeline.csv|parquet``.

Example
-------
>>> result = predict("runs/demo/bundle", ["song.mp3.wav", "folder/"], top_k=3)
>>> print(format_predictions(result.rows, 3))
"""

from __future__ import annotations

import json
import math
import io
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spectrotune.audio import io as audio
from spectrotune.audio import logmel
from spectrotune import storage
from spectrotune.bundle import Bundle, load_bundle
from spectrotune.errors import ConfigError, InputError

__all__ = [
    "OUTPUT_SUFFIXES",
    "RAY_MIN_FILES",
    "PredictResult",
    "Predictor",
    "expand_paths",
    "format_predictions",
    "log_mel_params",
    "predict",
    "predict_files",
    "segment_params",
]

#: More files than this (or any folder) and :func:`predict` uses Ray Data unless told otherwise.
RAY_MIN_FILES = 64
#: Output formats :func:`predict` writes, by file suffix.
OUTPUT_SUFFIXES = (".csv", ".parquet")
# Files per Ray Data batch: large enough to amortise per-batch overhead, small enough that one slow file
# does not hold many others back and that a batch's segments fit in memory easily.
_MAX_BATCH_FILES = 32
_LOG_MEL_KEYS = ("n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db")


# --------------------------------------------------------------------------------------------------------------
# Bundle parameters


def segment_params(meta: Mapping[str, Any], *, split: str = "test") -> tuple[int, float, float]:
    """``(sample_rate Hz, segment_seconds, hop_seconds)`` of a bundle's audio parameters.

    ``meta["audio"]`` is the ``audio`` section of the training config (:class:`spectrotune.config.AudioConfig`
    as a dict, plus ``test_hop_seconds`` in bundles from ``spectrotune.training.outputs``). The hop is that of ``split`` (the
    test hop is how the model was evaluated); a missing or null hop means one window (no overlap). A flat number
    under ``hop_seconds`` is accepted too.
    """
    a = meta.get("audio") or {}
    try:
        sr = int(a.get("sample_rate", logmel.SR))
        seconds = float(a.get("segment_seconds", 3.0))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bundle audio parameters are invalid: {a!r}") from e
    hop = a.get("hop_seconds")
    if isinstance(hop, Mapping):
        hop = hop.get(split)
    if split == "test" and a.get("test_hop_seconds") is not None:  # written by spectrotune.training.outputs
        hop = a["test_hop_seconds"]
    return sr, seconds, seconds if hop is None else float(hop)


def log_mel_params(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`spectrotune.audio.logmel.log_mel` from a bundle's ``meta["features"]``."""
    f = meta.get("features") or {}
    params = {k: f[k] for k in _LOG_MEL_KEYS if k in f}
    params["sr"] = segment_params(meta)[0]
    return params


# --------------------------------------------------------------------------------------------------------------
# The pure part: files -> rows


def _empty_row(path: str, top_k: int) -> dict[str, Any]:
    row: dict[str, Any] = {"path": path, "status": "ok", "reason": "", "padded": False, "n_segments": 0}
    for i in range(1, top_k + 1):
        row[f"top{i}"] = None
        row[f"p{i}"] = None
    return row


def _segments_of(bundle: Bundle, path: str) -> tuple[np.ndarray, bool, float]:
    """Model input of one file: (log-mel float32 [n_seg, n_mels, n_frames], padded, hop seconds)."""
    if bundle.source_kind == "spotify":
        from spectrotune.sources import spotify as images  # Pillow path, only for image bundles

        n_mels, n_frames = bundle.input_shape
        arr = images.image_to_array(path, n_mels=n_mels, n_frames=n_frames)
        seconds = float((bundle.meta.get("audio") or {}).get("segment_seconds", 3.0))
        return arr[None].astype(np.float32, copy=False), False, seconds
    sr, seconds, hop = segment_params(bundle.meta)
    # min_seconds=0: anything with at least one sample is predicted (short clips are padded and flagged).
    y = audio.decode(path, sr=sr, min_seconds=0.0)
    segs, padded = audio.segment(y, sr=sr, seconds=seconds, hop_seconds=hop)
    return logmel.log_mel(segs, **log_mel_params(bundle.meta)), padded, hop


def predict_files(
    bundle: Bundle,
    paths: Sequence[str | os.PathLike[str]],
    *,
    top_k: int = 3,
    timeline: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predict each file in ``paths`` with ``bundle`` (in this process; no Ray).

    Parameters
    ----------
    bundle : Bundle
        A loaded model bundle (:func:`spectrotune.bundle.load_bundle`).
    paths : sequence of path
        Files (audio, or images for a ``spotify`` bundle). Unreadable ones become error rows.
    top_k : int >= 1
        Genres per row; more than the bundle has labels is cut to the number of labels.
    timeline : bool
        Also return one row per segment.

    Returns
    -------
    rows : list of dict
        One per file, in input order: ``path, status, reason, padded, n_segments, top1, p1, ..., top{k}, p{k}``;
        ``p*`` are probabilities (float, mean over the file's segments, descending); ``None`` in error rows.
    timeline : list of dict
        ``path, segment, start_seconds, top1, p1`` per segment of each good file (empty unless ``timeline``).
    """
    k = _check_top_k(top_k, len(bundle.labels))
    labels = bundle.labels
    rows: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    for path in paths:
        name = os.fspath(path)
        row = _empty_row(name, k)
        try:
            mel, padded, hop = _segments_of(bundle, name)
            proba = bundle.predict_proba(mel)  # float32 [n_seg, n_classes]
        except InputError as e:
            row.update(status="error", reason=getattr(e, "reason", None) or str(e))
            rows.append(row)
            continue
        except Exception as e:  # noqa: BLE001 - one bad file must never cost the others; the reason is kept
            row.update(status="error", reason=f"{type(e).__name__}: {e}")
            rows.append(row)
            continue
        # Mean in float64, so a file's probabilities sum to 1 to double precision whatever its length.
        mean = proba.astype(np.float64).mean(axis=0)
        order = np.argsort(-mean, kind="stable")[:k]
        row.update(padded=bool(padded), n_segments=len(proba))
        for i, c in enumerate(order, start=1):
            row[f"top{i}"] = labels[c]
            row[f"p{i}"] = float(mean[c])
        rows.append(row)
        if timeline:
            best = proba.argmax(axis=1)
            for s, c in enumerate(best):
                segments.append({"path": name, "segment": s, "start_seconds": round(s * hop, 6),
                                 "top1": labels[int(c)], "p1": float(proba[s, c])})
    return rows, segments


def _check_top_k(top_k: int, n_labels: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ConfigError(f"top_k must be an integer >= 1, got {top_k!r}")
    return int(min(top_k, n_labels))


# --------------------------------------------------------------------------------------------------------------
# Ray Data batch inference


class Predictor:
    """Ray Data callable class: loads the bundle once per actor, then predicts batches of file paths.

    Used as ``ds.map_batches(Predictor, fn_constructor_kwargs={...}, compute=ActorPoolStrategy(...))`` on a
    dataset with columns ``index`` (int) and ``path`` (str). Each output row carries the file's result row and
    its timeline rows as JSON strings (free-form dicts with nulls would otherwise need an Arrow schema).
    """

    def __init__(self, bundle_dir: str, *, top_k: int, timeline: bool, num_threads: int = 1) -> None:
        import torch

        # One actor per CPU it reserved: more torch threads would only fight the neighbouring actors.
        torch.set_num_threads(max(1, int(num_threads)))
        self.bundle = load_bundle(bundle_dir)
        self.top_k = top_k
        self.timeline = timeline
        self.num_threads = max(1, int(num_threads))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from threadpoolctl import threadpool_limits

        rows, timelines = [], []
        with threadpool_limits(self.num_threads):
            for path in batch["path"]:
                # One file per call keeps each file's timeline with its own row (a path may be listed twice).
                (row,), segments = predict_files(self.bundle, [str(path)], top_k=self.top_k, timeline=self.timeline)
                rows.append(json.dumps(row))
                timelines.append(json.dumps(segments))
        return {
            "index": np.asarray(batch["index"], dtype=np.int64),
            "row": np.array(rows, dtype=object),
            "timeline": np.array(timelines, dtype=object),
        }


def _predict_with_ray(
    bundle_dir: Path | str, paths: Sequence[str], *, top_k: int, timeline: bool, batch_files: int | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import ray

    from spectrotune.runtime import init_ray

    init_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.verbose_stats_logs = False
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Enough batches to keep every actor busy, never more files per batch than _MAX_BATCH_FILES.
    size = batch_files or max(1, min(_MAX_BATCH_FILES, math.ceil(len(paths) / cpus)))
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
    results = sorted(((int(r["index"]), r["row"], r["timeline"]) for r in ds.iter_rows()), key=lambda x: x[0])
    if len(results) != len(paths):  # pragma: no cover - Ray Data guarantees one output row per input row
        raise RuntimeError(f"Ray Data returned {len(results)} rows for {len(paths)} files")
    rows = [json.loads(r) for _, r, _ in results]
    segments = [seg for _, _, t in results for seg in json.loads(t)]
    return rows, segments


# --------------------------------------------------------------------------------------------------------------
# Driver


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

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The rows of files that could not be predicted."""
        return [r for r in self.rows if r["status"] != "ok"]

    def summary(self) -> str:
        n_bad = len(self.errors)
        line = (f"predicted {len(self.rows) - n_bad} file(s)" + (f", {n_bad} failed" if n_bad else "")
                + f" in {self.seconds:.1f} s" + (" (Ray Data)" if self.used_ray else ""))
        if self.output is not None:
            line += f"; wrote {self.output}" + (f" and {self.timeline_output}" if self.timeline_output else "")
        return line


def expand_paths(paths: Sequence[str | os.PathLike[str]], *, kind: str = "audio") -> tuple[list[str], bool]:
    """Files to predict: files as given, folders searched recursively (sorted) for audio or image files.

    Parameters
    ----------
    paths : sequence of path
        Files and/or folders. A path that does not exist is kept as a file (its row will say why it failed).
    kind : {"audio", "spotify"}
        Which files a folder search picks: audio (:func:`spectrotune.audio.io.is_audio_file`) or images.

    Returns
    -------
    files : list of str
    had_folder : bool
        True when at least one path was a folder.
    """
    from spectrotune.sources.spotify import is_image_file

    wanted = is_image_file if kind == "spotify" else audio.is_audio_file
    files: list[str] = []
    had_folder = False
    for path in paths:
        p = Path(path)
        if p.is_dir():
            had_folder = True
            found = []
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [os.path.join(dirpath, n) for n in sorted(filenames) if not n.startswith(".") and wanted(n)]
            files += found
        else:
            files.append(os.fspath(path))
    return files, had_folder


def predict(
    bundle_dir: str | Path,
    paths: Sequence[str | os.PathLike[str]],
    *,
    top_k: int = 3,
    timeline: bool = False,
    output: str | Path | None = None,
    use_ray: bool | None = None,
    log: Callable[[str], None] = print,
) -> PredictResult:
    """Predict the genres of audio files (or images, for a Spotify bundle) with a model bundle.

    Parameters
    ----------
    bundle_dir : path
        A bundle written by ``spectrotune train``.
    paths : sequence of path
        Files and folders (folders are searched recursively; see :func:`expand_paths`).
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
    out_path = _check_output(output)
    bundle = load_bundle(bundle_dir)
    k = _check_top_k(top_k, len(bundle.labels))
    files, had_folder = expand_paths(paths, kind=bundle.source_kind)
    if not files:
        what = "image" if bundle.source_kind == "spotify" else "audio"
        raise InputError(f"no {what} files to predict in {', '.join(map(str, paths)) or 'the given paths'}")
    if use_ray is None:
        use_ray = had_folder or len(files) > RAY_MIN_FILES
    log(f"predicting {len(files)} file(s) with {bundle.path} ({len(bundle.labels)} genres)"
        + (" on Ray Data" if use_ray else ""))
    if use_ray:
        rows, segments = _predict_with_ray(storage.norm(bundle_dir), files, top_k=k, timeline=timeline)
    else:
        rows, segments = predict_files(bundle, files, top_k=k, timeline=timeline)
    result = PredictResult(rows=rows, timeline=segments, labels=bundle.labels, top_k=k, used_ray=bool(use_ray))
    if out_path is not None:
        result.output = _write_table(rows, out_path, top_k=k)
        if timeline:
            result.timeline_output = _write_table(segments, timeline_path(out_path), top_k=1, timeline=True)
    result.seconds = time.perf_counter() - t0
    log(result.summary())
    return result


def timeline_path(output: str | Path) -> Path | str:
    """Where the timeline of ``output`` goes: ``preds.csv`` -> ``preds.timeline.csv`` (a URI stays a string)."""
    root, suffix = os.path.splitext(os.fspath(output))
    return f"{root}.timeline{suffix}" if storage.is_uri(output) else Path(f"{root}.timeline{suffix}")


def _check_output(output: str | Path | None) -> Path | str | None:
    if output is None:
        return None
    path = storage.norm(output)
    suffix = os.path.splitext(os.fspath(path))[1]
    if suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"output {path}: unknown format {suffix!r} (use {' or '.join(OUTPUT_SUFFIXES)})")
    return path


def _write_table(rows: list[dict[str, Any]], path: Path | str, *, top_k: int,
                 timeline: bool = False) -> Path | str:
    """Write rows with pandas (CSV or Parquet by suffix) to a local file (aside, then renamed) or a URI."""
    import pandas as pd

    if timeline:
        columns = ["path", "segment", "start_seconds", "top1", "p1"]
    else:
        columns = ["path", "status", "reason", "padded", "n_segments"]
        columns += [c for i in range(1, top_k + 1) for c in (f"top{i}", f"p{i}")]
    frame = pd.DataFrame(rows, columns=columns)
    if not timeline:
        # Error rows hold None: keep the dtypes a reader expects (float probabilities, str genres).
        for i in range(1, top_k + 1):
            frame[f"p{i}"] = frame[f"p{i}"].astype("float64")
            frame[f"top{i}"] = frame[f"top{i}"].astype("string")
    buffer = io.BytesIO()
    if os.fspath(path).lower().endswith(".csv"):
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    storage.write_bytes(path, buffer.getvalue())
    return path


# --------------------------------------------------------------------------------------------------------------
# Terminal


def format_predictions(rows: Sequence[Mapping[str, Any]], top_k: int = 3) -> str:
    """Rows of :func:`predict_files` as terminal text: one line per file, failures listed after the others."""
    good = [r for r in rows if r.get("status") == "ok"]
    bad = [r for r in rows if r.get("status") != "ok"]
    width = min(60, max((len(str(r["path"])) for r in rows), default=4))
    lines = []
    for r in good:
        picks = []
        for i in range(1, top_k + 1):
            if r.get(f"top{i}") is not None:
                picks.append(f"{r[f'top{i}']} {100 * float(r[f'p{i}']):5.1f}%")
        note = f"  ({r['n_segments']} seg" + (", padded" if r.get("padded") else "") + ")"
        lines.append(f"{_shorten(str(r['path']), width):<{width}}  " + "  ".join(picks) + note)
    if bad:
        lines.append(f"{len(bad)} file(s) could not be predicted:")
        lines += [f"  {r['path']}: {r.get('reason') or 'unknown error'}" for r in bad]
    return "\n".join(lines)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]
