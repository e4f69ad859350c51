"""``spectrotune tag``: music tags of audio files with a pretrained musicnn / vgg model, like musicnn's own tagger.

Each file is decoded to 16 kHz mono (:func:`spectrotune.audio.io.decode`, soxr resampling; see
:mod:`spectrotune.audio.musicnn_frontend` for why), cut into 3-s windows (187-frame log-mel patches, not
overlapping, trailing frames dropped, a clip under 3 s loop-padded to one window and flagged ``padded``), and the
network's sigmoid outputs give one row of tag probabilities per window (the *taggram*). A file's tags are the mean
over its windows, ranked, as ``musicnn.tagger.top_tags`` does. Models: :data:`spectrotune.models.pretrained.MODELS`,
read from the cache that ``spectrotune fetch musicnn`` fills (an empty cache is an error saying so).

Two ways to run, one result (the same split as ``spectrotune predict``): a few files are tagged in this process
(:func:`tag_files`); for folders or more than :data:`~spectrotune.predict.driver.RAY_MIN_FILES` files the same
:class:`Tagger` runs as Ray Data actors (:func:`spectrotune.predict.tag_batch.tag_with_ray`). The actors receive
the weights from this process, so on a cluster only the audio files must be on storage every node sees.

Rows (one per file, in order): ``path, status ("ok" | "error"), reason, padded, n_windows, top1, p1, ...``; the
taggram rows (one per window): ``path, window, start_seconds`` and one column per tag. ``output=FILE.csv`` or
``.parquet`` writes the file rows, and the taggram beside it as ``FILE.taggram.csv|parquet``. No ``ray``.

Example
-------
>>> result = tag(["song.wav"], model="MSD_musicnn", top_k=5)     # doctest: +SKIP
>>> print(format_tags(result.rows, 5))                            # doctest: +SKIP
song.wav  rock 14.3%  electronic 14.2%  indie 14.0%  chillout 11.9%  female vocalists 10.0%  (3 windows)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spectrotune import storage
from spectrotune.audio.io import decode
from spectrotune.audio.musicnn_frontend import musicnn_input, patch_start_seconds
from spectrotune.errors import InputError
from spectrotune.predict.core import check_top_k
from spectrotune.predict.files import check_output, expand_paths

__all__ = ["DEFAULT_MODEL", "MIN_SECONDS", "TagResult", "Tagger", "format_tags", "tag", "tag_files", "taggram_path"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "MSD_musicnn"
MIN_SECONDS = 1.0  #: shorter files are error rows (a 3-s window of one looped second is already a stretch)
PATCHES_PER_BATCH = 32  # patches per forward pass: bounds memory for long files


class Tagger:
    """A pretrained tagger: loads the network once, then tags waveforms or files. Also the Ray Data callable.

    Parameters
    ----------
    model : str
        One of :data:`spectrotune.models.pretrained.MODELS`.
    cache : path, optional
        The musicnn cache folder (default ``$SPECTROTUNE_CACHE/musicnn`` or ``~/.cache/spectrotune/musicnn``).
    top_k : int
        Tags per file row.
    weights, meta : optional
        The model's TF-named weights and its metadata as a dict (what :func:`~spectrotune.models.pretrained.
        read_pretrained` returns, ``meta.to_dict()``), instead of reading the cache: how Ray actors get them.
    num_threads : int or None
        torch intra-op threads (Ray actors use 1, one per reserved CPU); None leaves torch's setting.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, cache: str | os.PathLike[str] | None = None, top_k: int = 5,
                 weights: Mapping[str, np.ndarray] | None = None, meta: Mapping[str, Any] | None = None,
                 num_threads: int | None = None) -> None:
        import torch

        from spectrotune.models import pretrained
        from spectrotune.models.musicnn import build_network, load_pretrained, load_tf_weights

        if num_threads is not None:
            torch.set_num_threads(max(1, int(num_threads)))
        self.num_threads = num_threads
        if weights is not None and meta is not None:
            self.meta = pretrained.PretrainedMeta.from_dict(dict(meta), origin=f"{model} metadata")
            self.net = build_network(model, n_classes=self.meta.n_classes)
            load_tf_weights(self.net, weights, source=f"{model} weights")
            self.net.eval()
        else:
            self.net, self.meta = load_pretrained(model, cache=cache)
        self.model = model
        self.tags = list(self.meta.tags)
        self.top_k = check_top_k(top_k, len(self.tags))

    def taggram(self, y: np.ndarray) -> tuple[np.ndarray, bool]:
        """(taggram [n_windows, n_tags] float32 probabilities, padded) of a mono 16-kHz waveform [n_samples]."""
        import torch

        patches, padded = musicnn_input(y, params=self.meta.frontend)
        out = []
        with torch.inference_mode():
            for s in range(0, len(patches), PATCHES_PER_BATCH):
                logits = self.net(torch.from_numpy(patches[s: s + PATCHES_PER_BATCH]))
                out.append(torch.sigmoid(logits).numpy())
        return np.concatenate(out), padded

    def tag_file(self, path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(file row, taggram rows) of one file; an unreadable file gives an error row and no taggram rows."""
        name = os.fspath(path)
        row: dict[str, Any] = {"path": name, "status": "ok", "reason": "", "padded": False, "n_windows": 0}
        row |= {key: None for i in range(1, self.top_k + 1) for key in (f"top{i}", f"p{i}")}
        try:
            y = decode(name, sr=self.meta.frontend.sr, min_seconds=MIN_SECONDS)
            taggram, padded = self.taggram(y)
        except InputError as e:
            return row | {"status": "error", "reason": getattr(e, "reason", None) or str(e)}, []
        except Exception as e:  # noqa: BLE001 - one bad file must never cost the others; the reason is kept
            return row | {"status": "error", "reason": f"{type(e).__name__}: {e}"}, []
        mean = taggram.astype(np.float64).mean(axis=0)
        row.update(padded=bool(padded), n_windows=len(taggram))
        for i, c in enumerate(np.argsort(-mean, kind="stable")[: self.top_k], start=1):
            row[f"top{i}"], row[f"p{i}"] = self.tags[c], float(mean[c])
        starts = patch_start_seconds(len(taggram), params=self.meta.frontend)
        windows = [{"path": name, "window": w, "start_seconds": round(float(starts[w]), 6),
                    **{t: float(p) for t, p in zip(self.tags, taggram[w])}} for w in range(len(taggram))]
        return row, windows

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data batch (columns ``index``, ``path``) -> ``index``, ``row`` and ``windows`` (JSON strings)."""
        from threadpoolctl import threadpool_limits

        rows, windows = [], []
        with threadpool_limits(self.num_threads or 1):
            for path in batch["path"]:
                row, taggram = self.tag_file(str(path))
                rows.append(json.dumps(row))
                windows.append(json.dumps(taggram))
        return {"index": np.asarray(batch["index"], dtype=np.int64), "row": np.array(rows, dtype=object),
                "windows": np.array(windows, dtype=object)}


def tag_files(tagger: Tagger, paths: Sequence[str | os.PathLike[str]]
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Tag each file in this process: (file rows in input order, taggram rows of the good files)."""
    rows, windows = [], []
    for path in paths:
        row, taggram = tagger.tag_file(path)
        rows.append(row)
        windows += taggram
    return rows, windows


@dataclass
class TagResult:
    """What :func:`tag` found: one row per file, the taggram rows, the model's tags, where the output went."""

    rows: list[dict[str, Any]]
    windows: list[dict[str, Any]] = field(default_factory=list)
    model: str = DEFAULT_MODEL
    tags: list[str] = field(default_factory=list)
    top_k: int = 5
    output: Path | str | None = None
    taggram_output: Path | str | None = None
    used_ray: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        bad = sum(r["status"] != "ok" for r in self.rows)
        line = (f"tagged {len(self.rows) - bad} file(s) with {self.model}" + (f", {bad} failed" if bad else "")
                + f" in {self.seconds:.1f} s" + (" (Ray Data)" if self.used_ray else ""))
        return line + (f"; wrote {self.output} and {self.taggram_output}" if self.output is not None else "")


def taggram_path(output: str | Path) -> Path | str:
    """Where the taggram of ``output`` goes: ``tags.csv`` -> ``tags.taggram.csv`` (a URI stays a string)."""
    root, suffix = os.path.splitext(os.fspath(output))
    return f"{root}.taggram{suffix}" if storage.is_uri(output) else Path(f"{root}.taggram{suffix}")


def tag(
    paths: Sequence[str | os.PathLike[str]],
    *,
    model: str = DEFAULT_MODEL,
    top_k: int = 5,
    cache: str | os.PathLike[str] | None = None,
    output: str | Path | None = None,
    use_ray: bool | None = None,
    log: Callable[[str], object] = logger.info,
) -> TagResult:
    """Tag audio files and folders (searched recursively) with a cached pretrained model.

    ``use_ray``: Ray Data (True), in-process (False), or decide (None: Ray when a folder was given or there are
    more than :data:`~spectrotune.predict.driver.RAY_MIN_FILES` files). Raises InputError when the model is not
    cached (run ``spectrotune fetch musicnn``) or there are no audio files, ConfigError for a bad ``top_k`` or
    output suffix.
    """
    from spectrotune.predict.driver import RAY_MIN_FILES

    t0 = time.perf_counter()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out_path = check_output(output)
    tagger = Tagger(model, cache=cache, top_k=top_k)  # loads (and checks) the model before any file is read
    files, had_folder = expand_paths(paths, kind="audio")
    if not files:
        raise InputError(f"no audio files to tag in {', '.join(map(str, paths)) or 'the given paths'}")
    if use_ray is None:
        use_ray = had_folder or len(files) > RAY_MIN_FILES
    log(f"tagging {len(files)} file(s) with {model} ({len(tagger.tags)} tags)" + (" on Ray Data" if use_ray else ""))
    if use_ray:
        from spectrotune.predict.tag_batch import tag_with_ray

        rows, windows = tag_with_ray(model, files, top_k=tagger.top_k, cache=cache)
    else:
        rows, windows = tag_files(tagger, files)
    result = TagResult(rows=rows, windows=windows, model=model, tags=tagger.tags, top_k=tagger.top_k,
                       used_ray=bool(use_ray))
    if out_path is not None:
        top = [c for i in range(1, tagger.top_k + 1) for c in (f"top{i}", f"p{i}")]
        result.output = _write(rows, out_path, ["path", "status", "reason", "padded", "n_windows", *top])
        result.taggram_output = _write(windows, taggram_path(out_path), ["path", "window", "start_seconds",
                                                                         *tagger.tags])
    result.seconds = time.perf_counter() - t0
    log(result.summary())
    return result


def _write(rows: list[dict[str, Any]], path: Path | str, columns: list[str]) -> Path | str:
    import pandas as pd

    from spectrotune.predict.files import write_frame

    return write_frame(pd.DataFrame(rows, columns=columns), path)


def format_tags(rows: Sequence[Mapping[str, Any]], top_k: int = 5, *,
                windows: Sequence[Mapping[str, Any]] | None = None, tags: Sequence[str] = ()) -> str:
    """File rows as terminal text (one line per file, failures after); with ``windows`` and ``tags``, each
    window's top tags under its file."""
    width = min(60, max((len(str(r["path"])) for r in rows), default=4))
    by_file: dict[str, list[Mapping[str, Any]]] = {}
    for w in windows or ():
        by_file.setdefault(str(w["path"]), []).append(w)
    lines = []
    for r in (r for r in rows if r["status"] == "ok"):
        picks = [f"{r[f'top{i}']} {100 * r[f'p{i}']:.1f}%" for i in range(1, top_k + 1) if r.get(f"top{i}")]
        note = f"  ({r['n_windows']} window{'s' if r['n_windows'] != 1 else ''}" + (", padded)" if r["padded"] else ")")
        path = str(r["path"])
        shown = path if len(path) <= width else "…" + path[-(width - 1):]
        lines.append(f"{shown:<{width}}  " + "  ".join(picks) + note)
        for w in by_file.pop(path, []) if tags else []:
            best = sorted(tags, key=lambda t: -w[t])[:top_k]
            lines.append(f"    {w['start_seconds']:7.2f} s  " + "  ".join(f"{t} {100 * w[t]:.1f}%" for t in best))
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        lines.append(f"{len(bad)} file(s) could not be tagged:")
        lines += [f"  {r['path']}: {r['reason'] or 'unknown error'}" for r in bad]
    return "\n".join(lines)
