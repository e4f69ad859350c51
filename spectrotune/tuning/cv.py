"""``spectrotune cv`` (or ``spectrotune tune --cv K``): K-fold cross-validation by track of one fixed config, every
fold a Ray Tune trial, with the classical baselines scored on the same folds.

The tracks of the train and valid splits are dealt into K folds by track, stratified by genre
(:func:`~spectrotune.sources.splits.stratified_folds`); the test split stays held out. Each fold is one trial with
the fixed config (``tune.space`` is ignored): train on the other folds' tracks (every variant allowed by
``train.variants``), validate on the fold's tracks (``clean`` variant). The CNN's fold score is the valid clip
accuracy after the last epoch (no epoch is picked on the fold itself; the best epoch's is reported beside it). The
classical baselines are fit on the same other-folds tracks with their default hyperparameters (no inner
validation) and scored on the fold. ``OUT/cv.json`` and ``OUT/cv.md`` give per-fold numbers and mean ± sample
standard deviation.

The run is named, stored and resumed like a sweep, with the same setup (:mod:`spectrotune.tuning.sweep`); the
folds are saved with it, so a resumed run keeps them. Imports Ray lazily.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spectrotune import storage
from spectrotune.config import Config
from spectrotune.dataset import open_dataset
from spectrotune.errors import ConfigError, DatasetError
from spectrotune.schema import CLEAN, GENRE, SCORE, SPLIT, TRACK_ID, VARIANT
from spectrotune.sources.splits import stratified_folds
from spectrotune.tuning.plan import trial_backbones
from spectrotune.tuning.results import STATUS_NONE, all_failed, collect_rows, markdown_table, tracking_summary
from spectrotune.tuning.space import FOLD_KEY
from spectrotune.tuning.sweep import (check_sources, open_tracking, resolve_run, run_published, run_tuner,
                                      start_trials)

logger = logging.getLogger(__name__)

__all__ = ["CV_JSON", "CV_MD", "CVResult", "cross_validate"]

CV_JSON = "cv.json"
CV_MD = "cv.md"


@dataclass(frozen=True)
class CVResult:
    """What :func:`cross_validate` produced.

    Attributes
    ----------
    name, path : str
        The run's name and Ray Tune experiment folder.
    folds : int
    sources : dict
        Per source: ``folds`` (per fold: ``fold``, ``tracks``, ``cnn`` {clip_accuracy (last epoch),
        best_clip_accuracy, best_epoch, status}, ``baselines`` {model: clip accuracy}) and ``summary``
        ({model: {mean, std, per_fold}}, ``cnn`` first).
    out : Path
    """

    name: str
    path: str
    folds: int
    sources: dict[str, dict[str, Any]]
    out: Path


def cross_validate(
    config: Config,
    *,
    out: str | Path,
    folds: int,
    source: str | None = None,
    resume: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
) -> CVResult:
    """K-fold cross-validation by track of the fixed config, every fold a Tune trial, plus the baselines.

    Parameters
    ----------
    config : Config
        The fixed training config; ``sources`` lists the datasets (``tune.space`` is ignored).
    out : path
        Output folder (``cv.json``, ``cv.md``; the experiment under ``sweeps/`` unless ``tune.storage_path``).
    folds : int
        K (GTZAN papers report 10).
    source : str, optional
        Only this source; default every source in ``config.sources``.
    resume : str, optional
        Name of an interrupted cross-validation run to continue.
    progress : bool
    log : callable

    Returns
    -------
    CVResult

    Raises
    ------
    ConfigError
        ``folds < 2`` or more folds than tracks, no or unknown source, or a trial larger than the cluster.
    SpectrotuneError
        Every fold failed (``cv.json``/``cv.md`` are written first).
    """
    return run_published(out, CV_JSON, lambda local, published: _cross_validate(
        config, out=local, published=published, folds=folds, source=source, resume=resume, progress=progress,
        log=log))


def cv_tracks(data: str) -> dict[str, str]:
    """``{track_id: genre}`` of the train and valid splits of a prepared dataset (the test split stays held out),
    sorted by track id.

    Raises
    ------
    DatasetError
        The dataset has no clean train/valid segments.
    """
    import pyarrow.dataset as pads

    dataset = open_dataset(data)
    table = dataset.to_table(columns=[TRACK_ID, GENRE],
                             filter=pads.field(SPLIT).isin(["train", "valid"]) & (pads.field(VARIANT) == CLEAN))
    pairs = dict(zip(table.column(TRACK_ID).to_pylist(), table.column(GENRE).to_pylist()))
    if not pairs:
        raise DatasetError(f"{data}: no clean train/valid segments to cross-validate on")
    return dict(sorted(pairs.items()))


def _fold_baselines(data: str, folds: Sequence[Sequence[str]], *, seed: int,
                    log: Callable[[str], None]) -> list[dict[str, float]] | None:
    """Per fold ``{model: accuracy}`` of the classical baselines fit on the other folds; None without features."""
    from spectrotune.evaluation.baseline_data import load_dataset_features
    from spectrotune.evaluation.baselines import run_baselines

    try:
        table = load_dataset_features(data)
    except DatasetError as e:
        log(f"baselines skipped for {data}: {e}")
        return None
    fold_of = {t: i for i, fold in enumerate(folds) for t in fold}
    table = table[table[TRACK_ID].isin(fold_of)].copy()
    out = []
    for i in range(len(folds)):
        table[SPLIT] = ["test" if fold_of[t] == i else "train" for t in table[TRACK_ID]]
        results = run_baselines(table, seed=seed)
        out.append({model: float(r["test_accuracy"]) for model, r in results.items()})
    return out


def _mean_std(values: Sequence[float]) -> dict[str, Any]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "per_fold": [float(v) for v in array]}


def _cross_validate(config: Config, *, out: Path, published: Path | str, folds: int, source: str | None,
                    resume: str | None, progress: bool, log: Callable[[str], None]) -> tuple[CVResult, str | None]:
    """:func:`cross_validate` writing its files into the local folder ``out``, published as ``published``."""
    from spectrotune.tuning.schedulers import fold_param_space

    t0 = time.perf_counter()
    if folds < 2:
        raise ConfigError(f"--cv {folds}: cross-validation needs at least 2 folds")
    run = resolve_run(config, out=published, resume=resume, kind="cv", folds=folds, log=log)
    config, state, name, path = run.config, run.state, run.name, run.path
    if state is not None:
        folds = int(state["folds_k"])
    if not config.sources:
        raise ConfigError("cv: no prepared datasets; set sources.<name>=PATH")
    if source is not None and source not in config.sources:
        raise ConfigError(f"--source {source}: not in sources (have {', '.join(config.sources)})")
    names = [source] if source is not None else list(config.sources)
    if state is not None:
        names = list(state["folds"])
    sources = check_sources(config.sources, names, log)
    if state is not None:
        assignment = {s: [list(f) for f in state["folds"][s]] for s in names}
    else:
        assignment = {s: stratified_folds(cv_tracks(sources[s]), k=folds, seed=config.seed) for s in names}
    spec, concurrency = start_trials(run, sources=sources, out=out, folds=assignment,
                                     extra_state={"folds_k": folds, "folds": assignment},
                                     backbones=trial_backbones(config, [], sources), log=log)
    tracking = open_tracking(run, spec, out=out, published=published, log=log)
    tc = config.tune
    cv_config = dataclasses.replace(config, tune=dataclasses.replace(tc, search="grid", num_samples=1))
    log(f"{'resuming' if resume else 'starting'} {folds}-fold cross-validation {name} at {path} on "
        f"{', '.join(names)}; {concurrency} fold(s) at a time")
    grid = run_tuner(run, spec, config=cv_config, param_space=fold_param_space(folds, sources=names),
                     concurrency=concurrency, asha=False, max_epochs=config.train.epochs, progress=progress,
                     callbacks=tracking.callbacks())
    rows = collect_rows(grid, spec, [], asha=False)
    report = {s: _source_report(rows, s, assignment[s], data=sources[s], seed=config.seed, log=log) for s in names}
    storage.write_json(out / CV_JSON, {"name": name, "path": path, "k": folds, "held_out": "test split",
                                       "sources": report})
    storage.write_text(out / CV_MD, _cv_markdown(name, folds, report))
    for s, r in report.items():
        for model, m in r["summary"].items():
            log(f"{s} {model}: clip accuracy {m['mean']:.3f} ± {m['std']:.3f} over {folds} folds")
    table = storage.join(published, CV_MD)
    log(f"cross-validation {name} done in {time.perf_counter() - t0:.0f} s; report {table}")
    failure = all_failed(rows, table)
    # The parent MLflow run gets <source>/<model>/mean and /std of the fold clip accuracies, cv.json and cv.md.
    tracked = tracking.finish(tracking_summary(rows, {}, out)["outcomes"], files={"": [out / CV_JSON, out / CV_MD]},
                              metrics={f"{s}/{model}/{stat}": m[stat] for s, r in report.items()
                                       for model, m in r["summary"].items() for stat in ("mean", "std")},
                              failed=failure is not None)
    result = CVResult(name=name, path=path, folds=folds, sources=report, out=published)
    return result, failure or (str(tracked) if tracked else None)


def _source_report(rows: Sequence[Mapping[str, Any]], source: str, folds: Sequence[Sequence[str]], *, data: str,
                   seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    """One source's ``folds`` (the CNN's and the baselines' numbers per fold) and ``summary`` (mean ± std)."""
    fold_rows = {int(r[FOLD_KEY]): r for r in rows if r["source"] == source}
    baselines = _fold_baselines(data, folds, seed=seed, log=log)
    per_fold = []
    for i, tracks in enumerate(folds):
        r = fold_rows.get(i, {})
        per_fold.append({
            "fold": i, "n_tracks": len(tracks), "tracks": list(tracks),
            "cnn": {"clip_accuracy": r.get("last_valid_clip_accuracy"), "best_clip_accuracy": r.get(SCORE),
                    "best_epoch": r.get("best_epoch"), "epochs_run": r.get("epochs_run"),
                    "status": r.get("status", STATUS_NONE), "trial_id": r.get("trial_id"),
                    "error": r.get("error", "")},
            "baselines": baselines[i] if baselines else {},
        })  # fmt: skip
    summary = {}
    cnn = [f["cnn"]["clip_accuracy"] for f in per_fold]
    if all(v is not None for v in cnn):
        summary["cnn"] = _mean_std(cnn)
    else:
        log(f"source {source}: {sum(v is None for v in cnn)} fold(s) without a CNN result; no CNN summary")
    for model in (baselines[0] if baselines else {}):
        summary[model] = _mean_std([b[model] for b in baselines])
    return {"folds": per_fold, "summary": summary}


def _cv_markdown(name: str, k: int, report: Mapping[str, Mapping[str, Any]]) -> str:
    about = ("Folds by track, stratified by genre, over the train and valid splits (the test split is held out). "
             "CNN: valid clip accuracy after the last epoch; baselines: default hyperparameters, fit on the other "
             "folds. Mean ± sample standard deviation over folds.")
    lines = [f"# {k}-fold cross-validation {name}", "", about, ""]
    for source, r in report.items():
        models = list(r["summary"])
        lines += [f"## {source}", "",
                  markdown_table([{"model": m, "mean ± std": f"{s['mean']:.3f} ± {s['std']:.3f}",
                                   **{f"fold {i}": v for i, v in enumerate(s["per_fold"])}}
                                  for m, s in r["summary"].items()],
                                 ["model", "mean ± std", *(f"fold {i}" for i in range(k))]) if models else "",
                  "", markdown_table([{"fold": f["fold"], "tracks": f["n_tracks"], "status": f["cnn"]["status"],
                                       "best epoch": f["cnn"]["best_epoch"],
                                       "best clip accuracy": f["cnn"]["best_clip_accuracy"]}
                                      for f in r["folds"]],
                                     ["fold", "tracks", "status", "best epoch", "best clip accuracy"]), ""]
    return "\n".join(lines)
