"""How robust a model bundle is to noise: clip accuracy on the test tracks with each noise kind at each SNR.

Test rows of a variant such as ``white@10dB`` that prepare already wrote (``noise.splits`` including ``test``) are
scored as they are. Any other variant is rebuilt from the source audio the manifest points to: decoded and cut with
the bundle's :class:`~spectrotune.bundle.InputRecipe` at the dataset's test hop, noised with the dataset's seed and
turned into log-mel (:mod:`spectrotune.sources.kinds`, the chain prepare itself runs), so the rebuilt rows are
bit-identical to those prepare would have written. The source may be a folder or an object-store URI (``s3://``,
``gs://``): it is listed as prepare lists it and each file read through
:func:`~spectrotune.sources.listing.local_copy`, as prepare's tasks read it. If the source is gone, the result says
so instead of failing (a track that cannot be read or decoded is named with its reason);
image (Spotify) sources have no audio to add noise to, so robustness does not apply to them.

:func:`check_compatible` guards every evaluation: a bundle must speak its dataset's labels and input shape.
Pure numpy/torch; no ``ray``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.audio import noise
from spectrotune.bundle import LOG_MEL_KEYS, Bundle
from spectrotune.config import EvaluateConfig
from spectrotune.dataset import DatasetManifest
from spectrotune.errors import DatasetError, InputError, SpectrotuneError, StorageError
from spectrotune.evaluation.scores import accuracies
from spectrotune.sources.kinds import cut_windows, noisy_copies, source_kind

__all__ = ["REBUILD_CHUNK", "SourceUnavailable", "check_compatible", "measure_robustness"]

#: Segments per model call when rebuilding noisy test audio: bounds memory on long clips.
REBUILD_CHUNK = 256


class SourceUnavailable(SpectrotuneError):
    """The test audio cannot be reached (source folder gone, or none of the test tracks decode)."""


def check_compatible(bundle: Bundle, manifest: DatasetManifest, *, bundle_dir: Path | str, data_dir: Path | str,
                     log: Callable[[str], None]) -> None:
    """The bundle must speak the dataset's labels, input shape and front end (else
    :class:`~spectrotune.errors.DatasetError`); differing log-mel settings only warn through ``log``."""
    data_labels = list(manifest.labels)
    if bundle.labels != data_labels:
        raise DatasetError(f"bundle {bundle_dir} has labels {bundle.labels} but dataset {data_dir} has labels "
                           f"{data_labels}; evaluate a bundle on the dataset (or one with the same genres) it was "
                           "trained on")
    shape = list(manifest.mel.shape)
    if shape and shape != list(bundle.input_shape):
        raise DatasetError(f"bundle {bundle_dir} expects input {list(bundle.input_shape)} (n_mels, n_frames) but "
                           f"dataset {data_dir} holds {shape}")
    data, ours = manifest.feature_config, bundle.recipe.log_mel
    if data.frontend != ours.frontend:
        raise DatasetError(f"bundle {bundle_dir} reads the {ours.frontend} front end but dataset {data_dir} holds "
                           f"{data.frontend} (features.frontend); evaluate it on a dataset prepared like its own")
    differ = [k for k in LOG_MEL_KEYS if k in bundle.meta.features and getattr(data, k) != getattr(ours, k)]
    if differ:
        log(f"warning: the bundle's log-mel parameters differ from the dataset's in {differ}")


def measure_robustness(bundle: Bundle, manifest: DatasetManifest, *, data_dir: Path | str, config: EvaluateConfig,
                       clean: Mapping[str, Any], test_tracks: Mapping[str, int],
                       log: Callable[[str], None]) -> dict[str, Any]:
    """The report's ``robustness`` section.

    Parameters
    ----------
    clean : mapping
        :func:`spectrotune.evaluation.scores.accuracies` of the clean test rows.
    test_tracks : mapping
        Test track id -> label index.

    Returns
    -------
    dict
        ``applies`` and ``available`` (bool) with a ``reason`` when not; else ``clean_clip_accuracy``,
        ``clean_segment_accuracy`` and ``results``: one row per variant of ``config`` (``kind``, ``snr_db``,
        ``variant``, ``clip_accuracy``, ``segment_accuracy``, ``n_tracks``, ``n_segments``, ``source``:
        ``dataset`` or ``rebuilt``), plus notes on rebuilt variants.
    """
    if not (source_kind(manifest.source.kind).has_audio and source_kind(bundle.source_kind).has_audio):
        return {"applies": False, "available": False, "reason": "image sources have no audio to add noise to"}
    wanted = [(kind, float(snr), noise.variant_name(kind, snr)) for kind in config.noise_kinds
              for snr in config.snr_db]
    present = manifest.counts.variants_in("test")
    rows: list[dict[str, Any]] = []
    for kind, snr, name in wanted:
        if name not in present:
            continue
        table = D.read_split(data_dir, "test", columns=[D.TRACK_ID, D.LABEL, D.MEL], variants=[name])
        s = accuracies(bundle.predict_proba(D.mel_array(table)), table.column(D.TRACK_ID).to_pylist(),
                       table.column(D.LABEL).to_numpy())
        rows.append(_row(kind, snr, name, s, "dataset"))
    missing = [(kind, snr, name) for kind, snr, name in wanted if name not in present]
    result: dict[str, Any] = {"applies": True, "available": True, "clean_clip_accuracy": clean["clip_accuracy"],
                              "clean_segment_accuracy": clean["segment_accuracy"]}
    if missing:
        log(f"robustness: rebuilding {len(missing)} noisy variant(s) of {len(test_tracks)} test tracks from the "
            f"source audio ({', '.join(m[2] for m in missing)})")
        try:
            rebuilt, notes = _rebuild(bundle, manifest, variants=missing, test_tracks=test_tracks, log=log)
        except SourceUnavailable as e:
            if not rows:
                return {"applies": True, "available": False, "reason": str(e)}
            rebuilt, notes = [], {"reason_missing_variants": str(e)}
        rows += rebuilt
        result.update(notes)
    order = {name: i for i, (_, _, name) in enumerate(wanted)}
    result["results"] = sorted(rows, key=lambda r: order[r["variant"]])
    return result


def _row(kind: str, snr: float, name: str, s: Mapping[str, Any], how: str) -> dict[str, Any]:
    return {"kind": kind, "snr_db": snr, "variant": name, "clip_accuracy": s["clip_accuracy"],
            "segment_accuracy": s["segment_accuracy"], "n_tracks": s["n_tracks"], "n_segments": s["n_segments"],
            "source": how}


def _rebuild(bundle: Bundle, manifest: DatasetManifest, *, variants: Sequence[tuple[str, float, str]],
             test_tracks: Mapping[str, int], log: Callable[[str], None]) -> tuple[list[dict], dict]:
    """Noisy variants of the test tracks from the source audio: decode, segment, add noise, log-mel, predict."""
    from spectrotune.sources.listing import list_source, local_copy

    source_path = storage.norm(manifest.source.path)
    try:
        listing = list_source(source_path, kind=manifest.source.kind)
    except (InputError, StorageError) as e:
        raise SourceUnavailable(f"source audio unavailable: {e}") from e
    by_track = {item.track_id: item for item in listing.items}
    # The test hop the dataset was cut with, so rebuilt segments are the ones prepare would have written.
    recipe = bundle.recipe.with_hop(manifest.audio_config.hop_for("test"))
    proba: dict[str, list[np.ndarray]] = {name: [] for _, _, name in variants}
    ids: list[str] = []
    labels: list[int] = []
    failed: list[str] = []
    absent = [t for t in test_tracks if t not in by_track]
    todo = [t for t in test_tracks if t in by_track]
    t_start = time.perf_counter()
    for i, track_id in enumerate(todo):
        try:
            with local_copy(by_track[track_id].path) as local:
                segs, _ = cut_windows(local, recipe.windowing)
        except InputError as e:
            failed.append(f"{track_id}: {getattr(e, 'reason', None) or e}")
            continue
        for kind, snr, name in variants:  # one variant at a time: memory stays that of one copy of the track
            (copy,) = noisy_copies(segs, [(kind, snr)], seed=manifest.seed, track_id=track_id)
            for start in range(0, len(segs), REBUILD_CHUNK):
                proba[name].append(bundle.predict_proba(recipe.log_mel(copy.audio[start:start + REBUILD_CHUNK])))
        ids += [track_id] * len(segs)
        labels += [test_tracks[track_id]] * len(segs)
        if (i + 1) % 50 == 0:
            log(f"robustness: {i + 1}/{len(todo)} tracks rebuilt ({time.perf_counter() - t_start:.0f} s)")
    if not ids:
        reason = (f"none of the {len(test_tracks)} test tracks could be read from the source {source_path}"
                  + (f" ({len(absent)} not found" + (f", {len(failed)} could not be read or decoded" if failed else "") + ")"))
        raise SourceUnavailable(reason)
    rows = []
    for kind, snr, name in variants:
        s = accuracies(np.concatenate(proba[name], axis=0), ids, np.asarray(labels))
        rows.append(_row(kind, snr, name, s, "rebuilt"))
    notes: dict[str, Any] = {"rebuilt_from": str(source_path)}
    if absent or failed:
        notes["tracks_not_rebuilt"] = {"not_in_source": absent[:20], "n_not_in_source": len(absent),
                                       "failed": failed[:20], "n_failed": len(failed)}
        log(f"robustness: {len(absent)} test track(s) missing from the source, {len(failed)} could not be read or decoded; "
            "their noisy variants are left out")
    return rows, notes
