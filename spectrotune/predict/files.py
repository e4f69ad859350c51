"""The files of ``spectrotune predict``: which inputs a list of paths and folders means, and the output tables.

Folders are searched recursively (sorted, hidden names skipped) for the files the bundle's source kind reads
(:meth:`spectrotune.sources.kinds.SourceKind.is_input_file`: for audio every format of
:data:`spectrotune.audio.io.AUDIO_EXTENSIONS`, m4a & co. included, which fail with the fix when ffmpeg is missing);
any other file found is named in :attr:`Inputs.left_out`, never dropped silently. The rows go to ``.csv`` or ``.parquet`` by suffix,
a local file (written aside, then renamed) or a URI, with the timeline beside them as ``<stem>.timeline.<suffix>``.
Pure Python and pandas; no ``ray``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectrotune import storage
from spectrotune.errors import ConfigError
from spectrotune.sources.kinds import SourceKind, source_kind

__all__ = ["OUTPUT_SUFFIXES", "ROW_COLUMNS", "STDOUT_FORMATS", "TIMELINE_COLUMNS", "Inputs", "check_output",
           "expand_inputs", "expand_paths", "render", "rows_frame", "timeline_path", "write_table"]

#: Output formats :func:`spectrotune.predict.driver.predict` writes, by file suffix.
OUTPUT_SUFFIXES = (".csv", ".parquet")
#: How ``spectrotune predict --format`` prints the rows on stdout (:func:`render`).
STDOUT_FORMATS = ("table", "csv", "json")
#: Columns of a file's row before its ``top{i}, p{i}`` pairs.
ROW_COLUMNS = ("path", "status", "reason", "padded", "silent", "n_segments")
#: Columns of a timeline row (one per segment).
TIMELINE_COLUMNS = ("path", "segment", "start_seconds", "top1", "p1")


@dataclass(frozen=True)
class Inputs:
    """What a list of paths means: the ``files`` to predict, whether any path was a folder (``had_folder``), and
    ``left_out``: files a folder search found that the kind does not read (``notes.txt``, ``cover.jpg``)."""

    files: list[str]
    had_folder: bool
    left_out: list[str]


def expand_paths(paths: Sequence[str | os.PathLike[str]], *, kind: SourceKind | str = "audio"
                 ) -> tuple[list[str], bool]:
    """``(files, had_folder)`` of :func:`expand_inputs`."""
    found = expand_inputs(paths, kind=kind)
    return found.files, found.had_folder


def expand_inputs(paths: Sequence[str | os.PathLike[str]], *, kind: SourceKind | str = "audio") -> Inputs:
    """Files to predict: files as given, folders searched recursively (sorted) for audio or image files.

    Parameters
    ----------
    paths : sequence of path
        Files and/or folders. A path that does not exist is kept as a file (its row will say why it failed).
    kind : SourceKind or {"audio", "spotify"}
        Which files a folder search picks: audio files, or images.

    Returns
    -------
    Inputs
        The files, whether a folder was given, and the non-hidden files of the folders that were left out.
    """
    wanted = (source_kind(kind) if isinstance(kind, str) else kind).is_input_file
    files: list[str] = []
    left_out: list[str] = []
    had_folder = False
    for path in paths:
        p = Path(path)
        if p.is_dir():
            had_folder = True
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(n for n in filenames if not n.startswith(".")):
                    (files if wanted(name) else left_out).append(os.path.join(dirpath, name))
        else:
            files.append(os.fspath(path))
    return Inputs(files, had_folder, left_out)


def check_output(output: str | Path | None) -> Path | str | None:
    """``output`` normalised (a ``Path``, or a string for a URI), refused unless it ends in :data:`OUTPUT_SUFFIXES`."""
    if output is None:
        return None
    path = storage.norm(output)
    suffix = os.path.splitext(os.fspath(path))[1]
    if suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"output {path}: unknown format {suffix!r} (use {' or '.join(OUTPUT_SUFFIXES)})")
    return path


def timeline_path(output: str | Path) -> Path | str:
    """Where the timeline of ``output`` goes: ``preds.csv`` -> ``preds.timeline.csv`` (a URI stays a string)."""
    root, suffix = os.path.splitext(os.fspath(output))
    return f"{root}.timeline{suffix}" if storage.is_uri(output) else Path(f"{root}.timeline{suffix}")


def rows_frame(rows: list[dict[str, Any]], *, top_k: int, timeline: bool = False) -> Any:
    """The rows as a pandas DataFrame with the output columns in order (what :func:`write_table` writes, and
    ``spectrotune predict --format csv`` prints)."""
    import pandas as pd

    if timeline:
        columns = list(TIMELINE_COLUMNS)
    else:
        columns = list(ROW_COLUMNS) + [c for i in range(1, top_k + 1) for c in (f"top{i}", f"p{i}")]
    frame = pd.DataFrame(rows, columns=columns)
    if not timeline:
        # Error rows hold None: keep the dtypes a reader expects (float probabilities, str genres).
        for i in range(1, top_k + 1):
            frame[f"p{i}"] = frame[f"p{i}"].astype("float64")
            frame[f"top{i}"] = frame[f"top{i}"].astype("string")
    return frame


def write_table(rows: list[dict[str, Any]], path: Path | str, *, top_k: int,
                timeline: bool = False) -> Path | str:
    """Write rows with pandas (CSV or Parquet by suffix) to a local file (aside, then renamed) or a URI."""
    return write_frame(rows_frame(rows, top_k=top_k, timeline=timeline), path)


def write_frame(frame: Any, path: Path | str) -> Path | str:
    """A pandas DataFrame as CSV or Parquet by ``path``'s suffix, to a local file (aside, then renamed) or a URI;
    the one table writer of predict and tag."""
    buffer = io.BytesIO()
    if os.fspath(path).lower().endswith(".csv"):
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    storage.write_bytes(path, buffer.getvalue())
    return path


def render(rows: list[dict[str, Any]], timeline: list[dict[str, Any]] | None = None, *, top_k: int,
           fmt: str = "table") -> str:
    """The rows as text for stdout, in ``fmt`` (one of :data:`STDOUT_FORMATS`).

    ``table``: one aligned line per file, the failures listed after the others with their reasons
    (:func:`spectrotune.predict.core.format_predictions`). ``csv``: the columns :func:`write_table` writes, one
    line per file (the timeline, a second table, is not printed: write it with ``output``). ``json``: an array of
    the rows as objects (``null`` where a file has no genre); with ``timeline``, each file's object holds its
    segments' rows as ``"timeline"`` (an empty list for a file without a genre).
    """
    if fmt == "table":
        from spectrotune.predict.core import format_predictions

        return format_predictions(rows, top_k) + "\n"
    if fmt == "csv":
        return rows_frame(rows, top_k=top_k).to_csv(index=False)
    if fmt == "json":
        objects = [dict(row) for row in rows]
        if timeline is not None:
            by_path: dict[str, list[dict[str, Any]]] = {}
            for segment in timeline:  # in file order; a file listed twice has its segments twice, one after the other
                by_path.setdefault(segment["path"], []).append({k: v for k, v in segment.items() if k != "path"})
            for obj in objects:
                segments = by_path.get(obj["path"], [])
                n = int(obj.get("n_segments") or 0) if obj.get("top1") is not None else 0
                obj["timeline"], by_path[obj["path"]] = segments[:n], segments[n:]
        return json.dumps(objects, indent=2) + "\n"
    raise ConfigError(f"unknown output format {fmt!r} (use {', '.join(STDOUT_FORMATS)})")
