"""The Python API for notebooks and scripts: a loaded bundle that predicts arrays and files, as typed results.

``import spectrotune as st`` gives, loaded on first use (importing the package loads neither torch nor Ray):

- ``st.load_bundle(path)`` -> :class:`Model`: :meth:`Model.predict` (samples in memory) and
  :meth:`Model.predict_file` return a :class:`Prediction`: the top genre, the probability of every genre, and
  the per-window timeline (:class:`Window`), with the padded and silent flags;
- ``st.prepare``, ``st.train``, ``st.evaluate``, ``st.predict``, ``st.tune``: the package functions the commands
  call, with the same arguments (``st.load_config`` builds their ``config``).

A file's :class:`Prediction` holds the numbers ``spectrotune predict`` prints for it: both run the same code
(:func:`spectrotune.predict.core.score_input`). Messages go to the ``spectrotune`` logger (see
:mod:`spectrotune.console`). No ``ray``.

Example
-------
>>> import spectrotune as st
>>> m = st.load_bundle("spectrotune-demo/run/bundle")
>>> p = m.predict_file("song.wav")                # or m.predict(y, sr) for samples float [n] or [n, channels]
>>> p.genre, round(p.probabilities[p.genre], 3)   # ('blues', 0.91)
>>> [(w.start, w.end, w.genre) for w in p.windows]
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing the API stays cheap until a bundle is loaded
    import numpy as np

    from spectrotune.bundle import Bundle

__all__ = ["Model", "Prediction", "Window", "callable_room", "load_bundle"]


@dataclass(frozen=True)
class Window:
    """One window of a clip: ``start`` and ``end`` in seconds from the clip's start (``end - start`` is the bundle's
    window length; the one window of a padded clip is longer than the clip), and the probability of each genre
    (the bundle's label order; empty for a silent clip)."""

    start: float
    end: float
    probabilities: Mapping[str, float]

    @property
    def genre(self) -> str | None:
        """The most probable genre of this window (``None`` for a silent clip)."""
        return max(self.probabilities, key=self.probabilities.__getitem__) if self.probabilities else None


@dataclass(frozen=True)
class Prediction:
    """The genres of one clip.

    ``genre``: the most probable genre (``None`` when ``silent``); ``probabilities``: every genre's probability, the
    mean over the windows, highest first (empty when ``silent``); ``windows``: the timeline, one :class:`Window` per
    window in time order; ``padded``: the clip was shorter than one window and was padded as the bundle's training
    rows were; ``silent``: every window is nearly silent, so no genre is given (``reason`` says so); ``source``: the
    file, or ``"<array>"``.
    """

    genre: str | None
    probabilities: Mapping[str, float]
    windows: tuple[Window, ...]
    padded: bool
    silent: bool
    source: str
    reason: str = ""

    @property
    def genres(self) -> list[str]:
        """The genres, most probable first."""
        return list(self.probabilities)

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable ``(genre, probability)`` pairs."""
        return list(self.probabilities.items())[:k]

    def timeline(self) -> Any:
        """The windows as a pandas DataFrame: ``start``, ``end``, ``genre`` and one column per genre."""
        import pandas as pd

        return pd.DataFrame([{"start": w.start, "end": w.end, "genre": w.genre, **w.probabilities}
                             for w in self.windows])


class Model:
    """A loaded model bundle (:func:`load_bundle`) that predicts clips: ``bundle`` is the
    :class:`spectrotune.bundle.Bundle` (the torch model in eval mode and its metadata)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    def __repr__(self) -> str:
        return f"<spectrotune Model {self.bundle.path}: {len(self.labels)} genres, {self.sample_rate} Hz>"

    @property
    def labels(self) -> list[str]:
        """The genres, in the model's output order."""
        return self.bundle.labels

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) audio is resampled to before it is windowed."""
        return self.bundle.recipe.windowing.sample_rate

    def predict(self, y: np.ndarray, sr: int) -> Prediction:
        """The genres of samples ``y`` at ``sr`` Hz: float [n] (mono), or [n, channels] / [channels, n] (the
        shorter axis is taken as the channels, averaged to mono). Resampled to :attr:`sample_rate` and windowed as
        :meth:`predict_file` does with a file's samples; raises :class:`~spectrotune.errors.InputError` for an
        empty signal, NaN/inf samples, a dtype other than float or int16, or a rate that is not a positive integer."""
        from spectrotune.sources.kinds import signal_windows

        return self._prediction("<array>", lambda: signal_windows(y, sr, self.bundle.recipe))

    def predict_file(self, path: str | os.PathLike[str]) -> Prediction:
        """The genres of an audio file (or an image, for a Spotify bundle), exactly as ``spectrotune predict`` gives
        them. Raises :class:`~spectrotune.errors.InputError` (the reason on ``.reason``) if it cannot be read."""
        name = os.fspath(path)
        return self._prediction(name, lambda: self.bundle.recipe.model_windows(name))

    def _prediction(self, source: str, model_input) -> Prediction:  # noqa: ANN001 - () -> ModelInput
        from spectrotune.predict.core import score_input

        x = model_input()
        row, proba = score_input(self.bundle, source, x, top_k=len(self.labels))
        labels = self.labels
        ranked = {row[f"top{i}"]: row[f"p{i}"] for i in range(1, len(labels) + 1) if row.get(f"top{i}") is not None}
        length = self.bundle.recipe.windowing.segment_seconds
        windows = tuple(
            Window(start=round(s * x.hop_seconds, 6), end=round(s * x.hop_seconds + length, 6),
                   probabilities={} if proba is None else dict(zip(labels, map(float, proba[s]), strict=True)))
            for s in range(len(x.mel)))
        return Prediction(genre=row.get("top1"), probabilities=ranked, windows=windows, padded=bool(row["padded"]),
                          silent=bool(row.get("silent", False)), source=source, reason=row.get("reason", ""))


def load_bundle(path: str | os.PathLike[str], *, device: str = "cpu") -> Model:
    """Load a model bundle (a folder written by ``spectrotune train``, or a URI) as a :class:`Model`."""
    from spectrotune.bundle import load_bundle as load

    return Model(load(path, device=device))


class _Room(types.ModuleType):
    """A room (subpackage) that is also its stage's function: ``spectrotune.prepare(...)`` calls
    :func:`spectrotune.prepare.driver.prepare`, whether or not the room was imported before."""

    _stage: tuple[str, str]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function()(*args, **kwargs)

    def _function(self) -> Any:
        import importlib

        module, name = self._stage
        return getattr(importlib.import_module(module), name)

    @property
    def __signature__(self) -> Any:  # what inspect.signature / a notebook's help shows for the call
        import inspect

        return inspect.signature(self._function())


def callable_room(room: str, module: str, function: str) -> None:
    """Make the imported package ``room`` callable as ``module.function`` (a room's ``__init__`` calls this)."""
    package = sys.modules[room]
    package.__class__ = _Room
    package._stage = (module, function)  # type: ignore[attr-defined]
