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
  (:func:`spectrotune.evaluation.baselines.run_baselines`), and an RBF SVM and logistic regression on the pretrained
  musicnn embeddings of every track (``evaluate.embeddings``; Ray Data, :mod:`spectrotune.evaluation.embeddings`;
  without ``spectrotune fetch musicnn`` the report says so in one line), next to the CNN.

Writes ``report.json``, ``report.md`` and the PNGs into ``out`` (default: a ``report`` folder beside the bundle).
When the bundle records the MLflow run that trained it (or with ``--log-to RUN_ID``), the report's metrics and
files are attached to that run (:func:`spectrotune.tracking.runs.attach_report`).
The scores come from :mod:`~spectrotune.evaluation.scores`, the text from :mod:`~spectrotune.evaluation.report`
and the figures from :mod:`~spectrotune.evaluation.plots`; this module reads the inputs and puts them together.
No ``ray`` here (the embedding baselines start it in :mod:`~spectrotune.evaluation.embeddings`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.evaluation.scores import accuracies, confusion_matrix, macro_f1, per_class_scores
from spectrotune.evaluation.plots import plot_confusion, plot_learning_curves, plot_robustness, save_figure
from spectrotune.evaluation.report import report_markdown
from spectrotune.schema import CONFUSION_PNG, LEARNING_CURVES_PNG, REPORT_JSON, REPORT_MD, ROBUSTNESS_PNG
from spectrotune.bundle import Bundle, load_bundle
from spectrotune.config import EvaluateConfig
from spectrotune.dataset import DatasetManifest
from spectrotune.errors import DatasetError
from spectrotune.evaluation.robustness import check_compatible, measure_robustness
from spectrotune.tracking.runs import attach_report

logger = logging.getLogger(__name__)

__all__ = ["evaluate"]

# --------------------------------------------------------------------------------------------------------------
# Driver


def evaluate(
    bundle_dir: str | Path,
    data_dir: str | Path,
    *,
    out: str | Path | None = None,
    config: EvaluateConfig | None = None,
    log: Callable[[str], None] = logger.info,
    log_to: str | None = None,
    tracking_uri: str | None = None,
    strict_tracking: bool = False,
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
    log_to : str, optional
        MLflow run id to attach the report's metrics and plots to (``--log-to``); default the run the bundle
        records (``bundle/tracking.json``, written by a tracked ``train``); ``"none"``: attach nothing.
    tracking_uri : str, optional
        MLflow tracking URI of that run; default the bundle's.
    strict_tracking : bool
        Fail (after the report is written) instead of warning when MLflow cannot be used.

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
    TrackingError
        ``log_to`` without a known tracking URI, or (``strict_tracking``) MLflow unusable; the report is written.
    """
    t0 = time.perf_counter()
    config = config or EvaluateConfig()
    bundle_dir, data_dir = storage.norm(bundle_dir), storage.norm(data_dir)
    bundle = load_bundle(bundle_dir)
    manifest = D.read_manifest(data_dir)
    check_compatible(bundle, manifest, bundle_dir=bundle_dir, data_dir=data_dir, log=log)
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

    robustness = measure_robustness(bundle, manifest, data_dir=data_dir, config=config, clean=scores,
                                    test_tracks=dict(zip(scores["tracks"], truth.tolist(), strict=True)), log=log)
    baselines = _baselines(data_dir, manifest, config=config, log=log)

    with storage.local_output(out, last=[REPORT_JSON], staged=True) as local:  # a failure leaves out as it was
        report = _write_report(local, bundle=bundle, bundle_dir=bundle_dir, data_dir=data_dir, manifest=manifest,
                               scores=scores, per_class=per_class, cm=cm, robustness=robustness,
                               baselines=baselines, macro_f1=macro_f1(truth, pred), t0=t0)
        tracking_error = attach_report(report, report_dir=local, bundle_dir=bundle_dir, run_id=log_to,
                                       tracking_uri=tracking_uri, strict=strict_tracking, log=log)
    log(f"wrote {storage.join(out, REPORT_JSON)} and {storage.join(out, REPORT_MD)}")
    if tracking_error is not None:
        raise tracking_error
    return report


def _write_report(out: Path, *, bundle: Bundle, bundle_dir: Path | str, data_dir: Path | str,
                  manifest: DatasetManifest, scores: Mapping[str, Any], per_class: Mapping[str, Any], cm: Any,
                  robustness: dict[str, Any], baselines: dict[str, Any], macro_f1: float,
                  t0: float) -> dict[str, Any]:
    """Plots, ``report.json`` and ``report.md`` into the local folder ``out``; returns the report."""
    labels = bundle.labels
    out.mkdir(parents=True, exist_ok=True)
    files = {"confusion_matrix": CONFUSION_PNG}
    save_figure(plot_confusion(cm, labels), out / CONFUSION_PNG)
    meta = bundle.meta
    history = meta.history
    if history:
        save_figure(plot_learning_curves(meta.metrics), out / LEARNING_CURVES_PNG)
        files["learning_curves"] = LEARNING_CURVES_PNG
    if robustness.get("available"):
        save_figure(plot_robustness(robustness), out / ROBUSTNESS_PNG)
        files["robustness"] = ROBUSTNESS_PNG

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
        "learning_curves": {"epochs": len(history), "best_epoch": meta.best_epoch},
        "bundle": {"path": str(bundle_dir), "model": dataclasses.asdict(meta.model), "config_hash": meta.config_hash,
                   "best_epoch": meta.best_epoch, "best": meta.best, "input_shape": list(bundle.input_shape)},
        "data": {"path": str(data_dir), "config_hash": manifest.config_hash,
                 "source": dataclasses.asdict(manifest.source), "split": manifest.split},
        "files": files,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    storage.write_json(out / REPORT_JSON, report)
    storage.write_text(out / REPORT_MD, report_markdown(report))
    return report


# --------------------------------------------------------------------------------------------------------------
# Baselines


def _baselines(data_dir: Path, manifest: DatasetManifest, *, config: EvaluateConfig,
               log: Callable[[str], None]) -> dict:
    """Handcrafted-feature baselines (``available``/``results``) and, in ``embeddings``, those on musicnn embeddings
    (:mod:`spectrotune.evaluation.embeddings`: Ray Data; without the musicnn cache, a one-line ``reason``)."""
    if not config.baselines:
        return {"available": False, "reason": "disabled (evaluate.baselines: false)"}
    from spectrotune.evaluation.baseline_data import load_dataset_features
    from spectrotune.evaluation.baselines import run_baselines
    from spectrotune.evaluation.embeddings import embedding_baselines

    try:
        tracks = load_dataset_features(data_dir)
        results = run_baselines(tracks, seed=manifest.seed)
        log("baselines: " + ", ".join(f"{m} {r['test_accuracy']:.3f}" for m, r in results.items()))
        out: dict[str, Any] = {"available": True, "results": {m: _brief(r) for m, r in results.items()}}
    except DatasetError as e:
        log(f"baselines skipped: {e}")
        out = {"available": False, "reason": str(e)}
    emb = embedding_baselines(data_dir, model=config.embedding_model, layer=config.embeddings, seed=manifest.seed,
                              log=log)
    if not emb["available"]:
        log(f"musicnn embeddings not run: {emb['reason']}")
    out["embeddings"] = {**emb, "results": {m: _brief(r) for m, r in emb["results"].items()}} if emb["available"] \
        else emb
    return out


def _brief(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"test_accuracy": r["test_accuracy"], "test_macro_f1": r["test_macro_f1"],
            "valid_accuracy": r.get("valid_accuracy"), "params": r.get("params"), "n_test": r.get("n_test")}
