"""The pure part of ``spectrotune predict``: files -> rows, in this process.

:func:`predict_files` turns each file into model input with the bundle's :class:`~spectrotune.bundle.InputRecipe`,
averages the segment probabilities and ranks the genres (a clip whose every window is below
:data:`spectrotune.audio.io.NEAR_SILENCE_DB` dBFS gets ``status="silent"`` and no genre instead); :class:`Predictor` is the same work as a Ray Data
callable class (it loads the bundle once per actor; :mod:`spectrotune.predict.batch` runs it), and
:func:`format_predictions` writes the rows as terminal text. No ``ray``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spectrotune.audio.io import NEAR_SILENCE_DB
from spectrotune.bundle import Bundle, load_bundle
from spectrotune.errors import ConfigError, InputError

if TYPE_CHECKING:
    from spectrotune.sources.kinds import ModelInput

__all__ = ["Predictor", "check_top_k", "format_predictions", "predict_files", "score_input"]


def _empty_row(path: str, top_k: int) -> dict[str, Any]:
    row: dict[str, Any] = {"path": path, "status": "ok", "reason": "", "padded": False, "silent": False,
                           "n_segments": 0}
    for i in range(1, top_k + 1):
        row[f"top{i}"] = None
        row[f"p{i}"] = None
    return row


def check_top_k(top_k: int, n_labels: int) -> int:
    """``top_k`` checked (an integer >= 1, else :class:`~spectrotune.errors.ConfigError`) and cut to ``n_labels``."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ConfigError(f"top_k must be an integer >= 1, got {top_k!r}")
    return int(min(top_k, n_labels))


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
        One per file, in input order: ``path, status, reason, padded, silent, n_segments, top1, p1, ...,
        top{k}, p{k}``; ``p*`` are probabilities (float, mean over the file's segments, descending). ``status``
        is ``ok``, ``error`` (unreadable: ``reason`` says why) or ``silent`` (every window's RMS below
        :data:`~spectrotune.audio.io.NEAR_SILENCE_DB` dBFS: nothing to classify, ``silent`` is True); the
        ``top*``/``p*`` of error and silent rows are ``None``.
    timeline : list of dict
        ``path, segment, start_seconds, top1, p1`` per segment of each file with a genre (empty unless
        ``timeline``).
    """
    k = check_top_k(top_k, len(bundle.labels))
    labels = bundle.labels
    rows: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    for path in paths:
        name = os.fspath(path)
        try:
            x = bundle.recipe.model_windows(name)
            row, proba = score_input(bundle, name, x, top_k=k)
        except InputError as e:
            rows.append({**_empty_row(name, k), "status": "error", "reason": getattr(e, "reason", None) or str(e)})
            continue
        except Exception as e:  # noqa: BLE001 - one bad file must never cost the others; the reason is kept
            rows.append({**_empty_row(name, k), "status": "error", "reason": f"{type(e).__name__}: {e}"})
            continue
        rows.append(row)
        if timeline and proba is not None:
            best = proba.argmax(axis=1)
            for s, c in enumerate(best):
                segments.append({"path": name, "segment": s, "start_seconds": round(s * x.hop_seconds, 6),
                                 "top1": labels[int(c)], "p1": float(proba[s, c])})
    return rows, segments


def score_input(bundle: Bundle, name: str, x: ModelInput, *, top_k: int) -> tuple[dict[str, Any], np.ndarray | None]:
    """One clip's row (as :func:`predict_files` gives it) from its model input, and its windows' probabilities.

    ``x`` is :meth:`spectrotune.bundle.InputRecipe.model_windows` of a file (or
    :func:`spectrotune.sources.kinds.signal_windows` of samples: :mod:`spectrotune.api`). Returns the row
    (``status`` ``ok`` or ``silent``) and float32 [n_segments, n_classes] (``None`` for a silent clip, which gets no
    genre: a confident genre for silence would be noise from the network, not an answer).
    """
    k = check_top_k(top_k, len(bundle.labels))
    row = _empty_row(name, k)
    row.update(padded=bool(x.padded), n_segments=len(x.mel))
    if x.silent:
        row.update(status="silent", silent=True,
                   reason=f"silent: every window is below {NEAR_SILENCE_DB:g} dBFS RMS; no genre given")
        return row, None
    proba = bundle.predict_proba(x.mel)  # float32 [n_seg, n_classes]
    # Mean in float64, so a file's probabilities sum to 1 to double precision whatever its length.
    mean = proba.astype(np.float64).mean(axis=0)
    for i, c in enumerate(np.argsort(-mean, kind="stable")[:k], start=1):
        row[f"top{i}"] = bundle.labels[c]
        row[f"p{i}"] = float(mean[c])
    return row, proba


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


def format_predictions(rows: Sequence[Mapping[str, Any]], top_k: int = 3) -> str:
    """Rows of :func:`predict_files` as terminal text: one line per file (silent ones say so instead of a genre),
    failures listed after the others."""
    good = [r for r in rows if r.get("status") in ("ok", "silent")]
    bad = [r for r in rows if r.get("status") not in ("ok", "silent")]
    width = min(60, max((len(str(r["path"])) for r in rows), default=4))
    lines = []
    for r in good:
        picks = [f"silent: no genre (every window below {NEAR_SILENCE_DB:g} dBFS)"] if r.get("silent") else []
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
