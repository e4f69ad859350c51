"""The files of ``spectrotune predict``: which inputs a list of paths and folders means, and the output tables.

Folders are searched recursively (sorted, hidden names skipped) for the files the bundle's source kind reads
(:meth:`spectrotune.sources.kinds.SourceKind.is_input_file`). The rows go to ``.csv`` or ``.parquet`` by suffix,
a local file (written aside, then renamed) or a URI, with the timeline beside them as ``<stem>.timeline.<suffix>``.
Pure Python and pandas; no ``ray``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spectrotune import storage
from spectrotune.errors import ConfigError
from spectrotune.sources.kinds import SourceKind, source_kind

__all__ = ["OUTPUT_SUFFIXES", "ROW_COLUMNS", "TIMELINE_COLUMNS", "check_output", "expand_paths", "rows_frame",
           "timeline_path", "write_table"]

#: Output formats :func:`spectrotune.predict.driver.predict` writes, by file suffix.
OUTPUT_SUFFIXES = (".csv", ".parquet")
#: Columns of a file's row before its ``top{i}, p{i}`` pairs.
ROW_COLUMNS = ("path", "status", "reason", "padded", "n_segments")
#: Columns of a timeline row (one per segment).
TIMELINE_COLUMNS = ("path", "segment", "start_seconds", "top1", "p1")


def expand_paths(paths: Sequence[str | os.PathLike[str]], *, kind: SourceKind | str = "audio"
                 ) -> tuple[list[str], bool]:
    """Files to predict: files as given, folders searched recursively (sorted) for audio or image files.

    Parameters
    ----------
    paths : sequence of path
        Files and/or folders. A path that does not exist is kept as a file (its row will say why it failed).
    kind : SourceKind or {"audio", "spotify"}
        Which files a folder search picks: audio files, or images.

    Returns
    -------
    files : list of str
    had_folder : bool
        True when at least one path was a folder.
    """
    wanted = (source_kind(kind) if isinstance(kind, str) else kind).is_input_file
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
    frame = rows_frame(rows, top_k=top_k, timeline=timeline)
    buffer = io.BytesIO()
    if os.fspath(path).lower().endswith(".csv"):
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    storage.write_bytes(path, buffer.getvalue())
    return path
