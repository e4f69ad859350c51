"""What one replica of ``spectrotune serve`` does with an upload: decode it, run the model on many at once, reply.

:class:`ModelService` loads a bundle once and splits a request into the three steps the deployment interleaves:

1. :meth:`~ModelService.decode`: the upload's bytes -> model input windows, through the bundle's own
   :class:`~spectrotune.bundle.InputRecipe` (the same decode, windows and log-mel as ``spectrotune predict``). The
   bytes go to a private temporary file (a folder only this process can open, a random name, deleted as soon as the
   windows are made); nothing a request sends names a server-side path.
2. :meth:`~ModelService.forward`: the windows of several requests stacked into one forward pass (what
   ``@serve.batch`` collects), split back per request. One request alone makes exactly ``spectrotune predict``'s
   call (:meth:`~spectrotune.bundle.Bundle.predict_proba` on the file's windows), so its probabilities are
   identical; stacked with others they can differ in the last bits, as any change of batch size may.
3. :meth:`~ModelService.reply`: the JSON of :mod:`spectrotune.serving.replies`.

``POST /v1/embed`` needs a model with an ``embed(x) -> [n, d]`` method (:func:`embedder`); CNN bundles have none and
get a 404 :class:`~spectrotune.serving.http.HttpError` saying so. No ``ray``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from spectrotune import storage
from spectrotune.bundle import Bundle, load_bundle
from spectrotune.errors import InputError
from spectrotune.schema import BUNDLE_WEIGHTS
from spectrotune.serving import replies
from spectrotune.serving.http import HttpError, Upload, safe_suffix
from spectrotune.serving.options import ServeOptions

__all__ = ["Clip", "ModelService", "embedder", "weights_version"]


@dataclass(frozen=True)
class Clip:
    """One decoded upload: ``mel`` float32 [n_windows, n_mels, n_frames], where its windows start (``hop_seconds``)
    and how long each is, the file's length in s (``None`` for images), and its ``padded`` / ``silent`` flags."""

    name: str
    size: int
    mel: np.ndarray = field(repr=False)
    hop_seconds: float
    window_seconds: float
    duration_seconds: float | None
    padded: bool
    silent: bool


def embedder(bundle: Bundle) -> Callable | None:
    """The bundle model's ``embed`` method (``x`` float32 tensor [n, n_mels, n_frames] -> [n, d]), or ``None``."""
    embed = getattr(bundle.model, "embed", None)
    return embed if callable(embed) else None


def weights_version(bundle_dir: str | os.PathLike[str]) -> str:
    """``sha256:<first 12 hex digits>`` of the bundle's weights file (a folder or a URI): the same weights, the
    same version."""
    return f"sha256:{hashlib.sha256(storage.read_bytes(storage.join(bundle_dir, BUNDLE_WEIGHTS))).hexdigest()[:12]}"


class ModelService:
    """A loaded bundle plus the limits of ``options``; one per replica (or per process, in tests).

    ``device``: where the model runs (``None``: CUDA when available, else CPU).
    """

    def __init__(self, bundle_dir: str | os.PathLike[str], options: ServeOptions, *, device: str | None = None
                 ) -> None:
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.options = options
        self.bundle = load_bundle(bundle_dir, device=device)
        self.recipe = self.bundle.recipe
        self.version = weights_version(self.bundle.path)
        self._embed = embedder(self.bundle)
        self.model_info = replies.model_info(self.bundle.meta, version=self.version, recipe=self.recipe,
                                             can_embed=self._embed is not None)
        # Uploads are decoded from files in this folder: created 0700 by mkdtemp, removed by close().
        self._tmp = tempfile.mkdtemp(prefix="spectrotune-serve-")

    @property
    def labels(self) -> list[str]:
        return self.bundle.labels

    def close(self) -> None:
        """Remove the private upload folder."""
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- 1. decode ----------------------------------------------------------------------------------------------

    def decode(self, upload: Upload) -> Clip:
        """The model input of ``upload`` (raises :class:`HttpError` 413 / 415 / 422 for audio the server refuses)."""
        name = upload.filename or "upload"
        fd, path = tempfile.mkstemp(dir=self._tmp, suffix=safe_suffix(upload.filename))
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(upload.data)
            duration = self._duration(path) if self.recipe.kind.has_audio else None
            if duration is not None and duration > self.options.max_seconds:
                raise HttpError(413, "too_long", f"{name}: {duration:.1f} s of audio is over the limit of "
                                f"{self.options.max_seconds:g} s (spectrotune serve --max-seconds)")
            try:
                x = self.recipe.model_windows(path)
            except InputError as e:
                reason = getattr(e, "reason", None) or str(e).replace(path, name)
                if self.recipe.kind.has_audio and reason.startswith(("not a readable", "empty", "no audio")):
                    raise HttpError(415, "not_audio", f"{name} is not audio the server can decode: {reason}") from None
                raise HttpError(422, "unusable_input", f"{name}: {reason}") from None
        finally:
            os.unlink(path)
        window = self.recipe.windowing.segment_seconds
        return Clip(name=name, size=len(upload.data), mel=x.mel, hop_seconds=float(x.hop_seconds),
                    window_seconds=float(window), duration_seconds=duration, padded=bool(x.padded),
                    silent=bool(x.silent))

    @staticmethod
    def _duration(path: str) -> float | None:
        """Seconds of audio from the file's header (``None`` when the header cannot say: the decoder will)."""
        import soundfile as sf

        try:
            info = sf.info(path)
        except Exception:  # noqa: BLE001 - not audio, or a header soundfile cannot read: decode() names the reason
            return None
        return float(info.frames) / info.samplerate if info.samplerate > 0 and info.frames >= 0 else None

    # -- 2. forward ---------------------------------------------------------------------------------------------

    def forward(self, clips: Sequence[Clip]) -> list[np.ndarray]:
        """Class probabilities float32 [n_windows, n_classes] per clip, from one stacked forward pass."""
        mels = [c.mel for c in clips]
        if not mels:
            return []
        stacked = mels[0] if len(mels) == 1 else np.concatenate(mels, axis=0)
        proba = self.bundle.predict_proba(stacked)
        return np.split(proba, np.cumsum([len(m) for m in mels])[:-1])

    def embed(self, clips: Sequence[Clip]) -> list[np.ndarray]:
        """Embeddings float32 [n_windows, d] per clip (404 :class:`HttpError` for a model without ``embed``)."""
        if self._embed is None:
            raise self.no_embedding()
        import torch

        mels = [c.mel for c in clips]
        device = next(self.bundle.model.parameters()).device
        with torch.no_grad():
            out = self._embed(torch.from_numpy(np.concatenate(mels, axis=0)).to(device)).float().cpu().numpy()
        return np.split(out, np.cumsum([len(m) for m in mels])[:-1])

    def no_embedding(self) -> HttpError:
        """The reply of ``POST /v1/embed`` for a bundle whose model has no embedding."""
        return HttpError(404, "no_embedding", f"this bundle's model ({self.bundle.meta.model.name}) has no embedding "
                         "to return; /v1/embed answers for bundles whose model provides one (musicnn-based); "
                         "use /v1/predict for genres")

    @property
    def can_embed(self) -> bool:
        return self._embed is not None

    # -- 3. reply -----------------------------------------------------------------------------------------------

    def reply(self, clip: Clip, proba: np.ndarray | None, *, top_k: int, seconds: float | None = None) -> dict:
        """The JSON of ``POST /v1/predict`` (:func:`spectrotune.serving.replies.prediction`)."""
        return replies.prediction(clip, proba, labels=self.labels, top_k=top_k, model=self.model_info,
                                  seconds=seconds)

    def embed_reply(self, clip: Clip, vectors: np.ndarray, *, seconds: float | None = None) -> dict:
        """The JSON of ``POST /v1/embed`` (:func:`spectrotune.serving.replies.embedding`)."""
        return replies.embedding(clip, vectors, model=self.model_info, seconds=seconds)
