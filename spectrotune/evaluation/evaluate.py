"""``spectrotune evaluate``: how good a model bundle is on a prepared dataset's test split, and how robust.

Everything is measured on the test tracks, which training never saw (splits are by track):

- **segment accuracy**: argmax of each clean test segment;
- **clip accuracy**: segment probabilities averaged per track, then argmax (the number to quote);
- **macro F1** and **per-class precision / recall / F1 / support**, all at clip level; macro F1 averages over
  the labels present in the test truth or predictions (:func:`spectrotune.evaluation.scores.macro_f1`, which the
  baselines use too), so the CNN and the baselines are compared the same way;
- **confusion matrix** (clip level) drawn to ``confusion_matrix.png``; **learning curves** from the bundle's
  metrics history drawn to ``learning_curves.png``;
- **robustness**: clip accuracy with each noise kind at each SNR (:class:`~spectrotune.config.EvaluateConfig`).
  Test rows of a variant such as ``white@10dB`` that prepare already wrote (``noise.splits`` including
  ``test``) are used as they are; any other variant is rebuilt from the source audio the manifest points to,
  with the dataset's segmentation and noise seed and the bundle's log-mel parameters, i.e. bit-identically to
  what prepare would have written. If the source is gone, the report says so instead of failing; image
  (Spotify) sources have no audio to add noise to, so robustness does not apply to them;
- **baselines**: random forest / SVMs / kNN / logistic regression on the dataset's handcrafted features
  (:func:`spectrotune.evaluation.baselines.run_baselines`), next to the CNN.

Writes ``report.json``, ``report.md`` and the PNGs into ``out`` (default: a ``report`` folder beside the bundle).
The scores come from :mod:`~spectrotune.evaluation.scores`, the text from :mod:`~spectrotune.evaluation.report`
and the figures from :mod:`~spectrotune.evaluation.plots`; this module reads the inputs and puts them together.
No ``ray``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spectrotune.audio import io as audio
from spectrotune.audio import logmel
from spectrotune.audio import noise
from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.evaluation.scores import accuracies, confusion_matrix, macro_f1, per_class_scores
from spectrotune.evaluation.plots import plot_confusion, plot_learning_curves, plot_robustness, save_figure
from spectrotune.evaluation.report import report_markdown
from spectrotune.schema import CONFUSION_PNG, LEARNING_CURVES_PNG, REPORT_JSON, REPORT_MD, ROBUSTNESS_PNG
from spectrotune.bundle import Bundle, load_bundle
from spectrotune.config import EvaluateConfig
from spectrotune.errors import DatasetError, InputError, SpectrotuneError
from spectrotune.predict import log_mel_params, segment_params

__all__ = ["evaluate"]

# Segments per model call when rebuilding noisy test audio: bounds memory on long clips.
_REBUILD_CHUNK = 256


# The robustness code below still calls the scorer by its old private name; the alias goes when that code moves
# to spectrotune.evaluation.robustness (which imports scores.accuracies itself).
_accuracies = accuracies


# --------------------------------------------------------------------------------------------------------------
# Driver


def evaluate(
    bundle_dir: str | Path,
    data_dir: str | Path,
    *,
    out: str | Path | None = None,
    config: EvaluateConfig | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate a model bundle on the test split of a prepared dataset and write the report.

    Parameters
    ----------
    bundle_dir : path
        Model bundle (``spectrotune train``).
    data_dir : path
        Prepared dataset (``spectrotune prepare``) with the same labels as the bundle.
    out : path, optional
        Report folder; default ``<bundle_dir>/../report``. Created if missing; report files in it are replaced.
        Any of the three paths may be a URI (``s3://...``); a report for a URI is uploaded with ``report.json``
        last.
    config : EvaluateConfig, optional
        Noise kinds and SNRs of the robustness table, and whether to run the baselines.
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        The report (also in ``out/report.json``): ``segment_accuracy``, ``clip_accuracy``, ``macro_f1`` (floats
        in [0, 1]), ``per_class`` {label: {precision, recall, f1, support}}, ``confusion_matrix`` (list of rows,
        true label by predicted label, clip counts), ``labels``, ``n_test_tracks``, ``n_test_segments``,
        ``robustness``, ``baselines``, ``learning_curves``, ``bundle``, ``data``, ``files``.

    Raises
    ------
    BundleError
        The bundle cannot be loaded.
    DatasetError
        Not a prepared dataset, no clean test rows, or the bundle's labels / input shape differ from the
        dataset's.
    """
    t0 = time.perf_counter()
    config = config or EvaluateConfig()
    bundle_dir, data_dir = storage.norm(bundle_dir), storage.norm(data_dir)
    bundle = load_bundle(bundle_dir)
    manifest = D.read_manifest(data_dir)
    _check_compatible(bundle, manifest, bundle_dir=bundle_dir, data_dir=data_dir, log=log)
    out = storage.norm(out) if out is not None else storage.join(storage.parent(bundle_dir), "report")
    labels = bundle.labels

    table = D.read_split(data_dir, "test", columns=[D.TRACK_ID, D.LABEL, D.SEGMENT, D.MEL], variants=[D.CLEAN])
    if table.num_rows == 0:
        raise DatasetError(f"{data_dir}: the test split has no clean rows (empty test split, or noise.keep_clean "
                           "was false for it); nothing to evaluate")
    track_ids = table.column(D.TRACK_ID).to_pylist()
    y_seg = table.column(D.LABEL).to_numpy()
    proba = bundle.predict_proba(D.mel_array(table))
    del table
    scores = accuracies(proba, track_ids, y_seg)
    truth, pred = scores["truth"], scores["pred"]
    log(f"test: {scores['n_tracks']} tracks, {scores['n_segments']} segments; clip accuracy "
        f"{scores['clip_accuracy']:.3f}, segment accuracy {scores['segment_accuracy']:.3f}")

    per_class = per_class_scores(truth, pred, labels)
    cm = confusion_matrix(truth, pred, n_classes=len(labels))

    robustness = _robustness(bundle, manifest, data_dir=data_dir, config=config, clean=scores,
                             test_tracks=dict(zip(scores["tracks"], truth.tolist(), strict=True)), log=log)
    baselines = _baselines(data_dir, manifest, enabled=config.baselines, log=log)

    with storage.local_output(out, last=[REPORT_JSON]) as local:
        report = _write_report(local, bundle=bundle, bundle_dir=bundle_dir, data_dir=data_dir, manifest=manifest,
                               scores=scores, per_class=per_class, cm=cm, robustness=robustness,
                               baselines=baselines, macro_f1=macro_f1(truth, pred), t0=t0)
    log(f"wrote {storage.join(out, REPORT_JSON)} and {storage.join(out, REPORT_MD)}")
    return report


def _write_report(out: Path, *, bundle: Bundle, bundle_dir: Path | str, data_dir: Path | str,
                  manifest: Mapping[str, Any], scores: Mapping[str, Any], per_class: Mapping[str, Any], cm: Any,
                  robustness: dict[str, Any], baselines: dict[str, Any], macro_f1: float,
                  t0: float) -> dict[str, Any]:
    """Plots, ``report.json`` and ``report.md`` into the local folder ``out``; returns the report."""
    labels = bundle.labels
    out.mkdir(parents=True, exist_ok=True)
    files = {"confusion_matrix": CONFUSION_PNG}
    save_figure(plot_confusion(cm, labels), out / CONFUSION_PNG)
    history = list((bundle.meta.get("metrics") or {}).get("history") or [])
    if history:
        save_figure(plot_learning_curves(bundle.meta["metrics"]), out / LEARNING_CURVES_PNG)
        files["learning_curves"] = LEARNING_CURVES_PNG
    if robustness.get("available"):
        save_figure(plot_robustness(robustness), out / ROBUSTNESS_PNG)
        files["robustness"] = ROBUSTNESS_PNG

    metrics = bundle.meta.get("metrics") or {}
    report = {
        "segment_accuracy": scores["segment_accuracy"],
        "clip_accuracy": scores["clip_accuracy"],
        "macro_f1": macro_f1,
        "per_class": per_class,
        "confusion_matrix": cm.astype(int).tolist(),
        "labels": labels,
        "n_test_tracks": scores["n_tracks"],
        "n_test_segments": scores["n_segments"],
        "robustness": robustness,
        "baselines": baselines,
        "learning_curves": {"epochs": len(history), "best_epoch": metrics.get("best_epoch")},
        "bundle": {"path": str(bundle_dir), "model": bundle.meta.get("model"),
                   "config_hash": bundle.meta.get("config_hash"), "best_epoch": metrics.get("best_epoch"),
                   "best": metrics.get("best"), "input_shape": list(bundle.input_shape)},
        "data": {"path": str(data_dir), "config_hash": manifest.get("config_hash"), "source": manifest.get("source"),
                 "split": manifest.get("split")},
        "files": files,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    storage.write_text(out / REPORT_JSON, json.dumps(_jsonable(report), indent=2))
    storage.write_text(out / REPORT_MD, report_markdown(report))
    return report


def _check_compatible(bundle: Bundle, manifest: Mapping[str, Any], *, bundle_dir: Path, data_dir: Path,
                      log: Callable[[str], None]) -> None:
    """The bundle must speak the dataset's labels and input shape; differing log-mel settings only warn."""
    data_labels = list(manifest.get("labels") or [])
    if bundle.labels != data_labels:
        raise DatasetError(f"bundle {bundle_dir} has labels {bundle.labels} but dataset {data_dir} has labels "
                           f"{data_labels}; evaluate a bundle on the dataset (or one with the same genres) it was "
                           "trained on")
    shape = list((manifest.get("mel") or {}).get("shape") or [])
    if shape and shape != list(bundle.input_shape):
        raise DatasetError(f"bundle {bundle_dir} expects input {list(bundle.input_shape)} (n_mels, n_frames) but "
                           f"dataset {data_dir} holds {shape}")
    data_features = (manifest.get("config") or {}).get("features") or {}
    differ = [k for k, v in log_mel_params(bundle.meta).items()
              if k != "sr" and k in data_features and data_features[k] != v]
    if differ:
        log(f"warning: the bundle's log-mel parameters differ from the dataset's in {differ}")


# --------------------------------------------------------------------------------------------------------------
# Robustness


def _robustness(bundle: Bundle, manifest: Mapping[str, Any], *, data_dir: Path, config: EvaluateConfig,
                clean: Mapping[str, Any], test_tracks: Mapping[str, int], log: Callable[[str], None]) -> dict:
    source = manifest.get("source") or {}
    if source.get("kind") == "spotify" or bundle.source_kind == "spotify":
        return {"applies": False, "available": False, "reason": "image sources have no audio to add noise to"}
    wanted = [(kind, float(snr), noise.variant_name(kind, snr)) for kind in config.noise_kinds
              for snr in config.snr_db]
    present = {v for genres in (manifest.get("counts", {}).get("per_split_genre_variant", {}).get("test") or {})
               .values() for v in genres}
    rows: list[dict[str, Any]] = []
    for kind, snr, name in wanted:
        if name not in present:
            continue
        table = D.read_split(data_dir, "test", columns=[D.TRACK_ID, D.LABEL, D.MEL], variants=[name])
        s = _accuracies(bundle.predict_proba(D.mel_array(table)), table.column(D.TRACK_ID).to_pylist(),
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
        except _SourceUnavailable as e:
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


class _SourceUnavailable(SpectrotuneError):
    """The test audio cannot be reached (source folder gone, or none of the test tracks decode)."""


def _rebuild(bundle: Bundle, manifest: Mapping[str, Any], *, variants: Sequence[tuple[str, float, str]],
             test_tracks: Mapping[str, int], log: Callable[[str], None]) -> tuple[list[dict], dict]:
    """Noisy variants of the test tracks from the source audio: decode, segment, add noise, log-mel, predict."""
    from spectrotune.sources.listing import list_source

    data_config = manifest.get("config") or {}
    source_path = Path((manifest.get("source") or {}).get("path", ""))
    try:
        listing = list_source(source_path, kind="audio")
    except InputError as e:
        raise _SourceUnavailable(f"source audio unavailable: {e}") from e
    by_track = {item.track_id: item for item in listing.items}
    seed = int(data_config.get("seed", 0))
    sr, seconds, _ = segment_params(bundle.meta)
    # The test hop the dataset was cut with, so rebuilt segments are the ones prepare would have written.
    hop = segment_params({"audio": data_config.get("audio") or bundle.meta.get("audio") or {}}, split="test")[2]
    mel_kwargs = log_mel_params(bundle.meta)
    proba: dict[str, list[np.ndarray]] = {name: [] for _, _, name in variants}
    ids: list[str] = []
    labels: list[int] = []
    failed: list[str] = []
    absent = [t for t in test_tracks if t not in by_track]
    todo = [t for t in test_tracks if t in by_track]
    t_start = time.perf_counter()
    for i, track_id in enumerate(todo):
        try:
            y = audio.decode(by_track[track_id].path, sr=sr, min_seconds=0.0)
        except InputError as e:
            failed.append(f"{track_id}: {getattr(e, 'reason', None) or e}")
            continue
        segs, _ = audio.segment(y, sr=sr, seconds=seconds, hop_seconds=hop)
        seg_ids = list(range(len(segs)))
        for kind, snr, name in variants:
            noisy, _ = noise.add_noise_batch(segs, kind=kind, snr_db=snr, seed=seed, track_id=track_id,
                                             segment_indices=seg_ids)
            for start in range(0, len(noisy), _REBUILD_CHUNK):
                mel = logmel.log_mel(noisy[start:start + _REBUILD_CHUNK], **mel_kwargs)
                proba[name].append(bundle.predict_proba(mel))
        ids += [track_id] * len(segs)
        labels += [test_tracks[track_id]] * len(segs)
        if (i + 1) % 50 == 0:
            log(f"robustness: {i + 1}/{len(todo)} tracks rebuilt ({time.perf_counter() - t_start:.0f} s)")
    if not ids:
        reason = (f"none of the {len(test_tracks)} test tracks could be read from the source {source_path}"
                  + (f" ({len(absent)} not found" + (f", {len(failed)} failed to decode" if failed else "") + ")"))
        raise _SourceUnavailable(reason)
    rows = []
    for kind, snr, name in variants:
        s = _accuracies(np.concatenate(proba[name], axis=0), ids, np.asarray(labels))
        rows.append(_row(kind, snr, name, s, "rebuilt"))
    notes: dict[str, Any] = {"rebuilt_from": str(source_path)}
    if absent or failed:
        notes["tracks_not_rebuilt"] = {"not_in_source": absent[:20], "n_not_in_source": len(absent),
                                       "failed": failed[:20], "n_failed": len(failed)}
        log(f"robustness: {len(absent)} test track(s) missing from the source, {len(failed)} failed to decode; "
            "their noisy variants are left out")
    return rows, notes


# --------------------------------------------------------------------------------------------------------------
# Baselines


def _baselines(data_dir: Path, manifest: Mapping[str, Any], *, enabled: bool, log: Callable[[str], None]) -> dict:
    if not enabled:
        return {"available": False, "reason": "disabled (evaluate.baselines: false)"}
    from spectrotune.evaluation.baseline_data import load_dataset_features
    from spectrotune.evaluation.baselines import run_baselines

    try:
        tracks = load_dataset_features(data_dir)
        results = run_baselines(tracks, seed=int((manifest.get("config") or {}).get("seed", 0)))
    except DatasetError as e:
        log(f"baselines skipped: {e}")
        return {"available": False, "reason": str(e)}
    log("baselines: " + ", ".join(f"{m} {r['test_accuracy']:.3f}" for m, r in results.items()))
    return {"available": True, "results": {
        m: {"test_accuracy": r["test_accuracy"], "test_macro_f1": r["test_macro_f1"],
            "valid_accuracy": r.get("valid_accuracy"), "params": r.get("params"), "n_test": r.get("n_test")}
        for m, r in results.items()}}


def _jsonable(value: Any) -> Any:
    """Plain JSON types; NaN becomes null (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


