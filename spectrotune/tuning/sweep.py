"""``spectrotune tune``: a hyperparameter sweep on Ray Tune over several prepared datasets (:func:`tune`), and the
run setup it shares with cross-validation (:mod:`spectrotune.tuning.cv`).

Each trial trains one model through exactly the code of ``spectrotune train`` (:mod:`spectrotune.tuning.trial`);
ASHA stops poor trials per source (:mod:`spectrotune.tuning.schedulers`); the best trial of each source is exported
as a bundle and evaluated on its test split (:mod:`spectrotune.tuning.results` lists every output).

Config (``tune`` section; the usual overrides are ``sources.<name>=PATH``, ``tune.num_samples``, ``train.epochs``)::

    sources:                      # prepared datasets (spectrotune prepare), name -> folder
      gtzan: prepared/gtzan       # GTZAN-layout audio
      spotify: prepared/spotify   # Spotify-layout images
    tune:
      num_samples: 8              # samples per grid point (grid dimensions multiply the trial count)
      search: random              # random | grid | optuna (pip install spectrotune[optuna])
      scheduler: asha             # asha | none; ASHA reads tune.metric every epoch, rungs per source
      grace_period: 1             # epochs before ASHA may stop a trial
      reduction_factor: 2
      max_concurrent_trials: 1    # 0 = as many as the cluster fits
      cpus_per_trial: 1           # split over train.num_workers workers; gpus_per_trial may be fractional
      gpus_per_trial: 0
      space: {...}                # see spectrotune.tuning.space

The number of classes and the input shape come from each dataset's manifest, so one sweep can mix a 10-genre
audio dataset with a 14-genre image dataset: one trial trains on one source.

Names and resume. The sweep is named ``tune.name`` or ``sweep-<config hash>`` and lives in ``tune.storage_path``
(default ``OUT/sweeps``; layout in :mod:`spectrotune.tuning.plan`). ``spectrotune tune --resume NAME`` restores it
with ``Tuner.restore(..., resume_errored=True)``: finished trials are not run again, interrupted ones continue from
their last epoch checkpoint, and a trial whose Train run had already finished when the driver died only re-reports
its epochs. Resuming uses the config saved with the sweep, whatever the command line says.

Imports Ray lazily (inside the functions that start or drive it), so a bad config fails before Ray loads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectrotune import storage
from spectrotune.config import Config, build
from spectrotune.config_checks import check_sweep_schedule
from spectrotune.dataset import read_manifest
from spectrotune.dataset_check import check_shards
from spectrotune.errors import ConfigError, OutputExistsError, SpectrotuneError
from spectrotune.schema import BUNDLE_DIR, METRIC_KEYS, SCORE, SWEEP_JSON
from spectrotune.tuning import results
from spectrotune.tuning.plan import (
    STATE_FILE,
    SweepSpec,
    load_state,
    save_state,
    storage_root,
    sweep_name,
    trial_backbones,
    trial_concurrency,
)
from spectrotune.tuning.space import Dimension, max_epochs, parse_space, space_sources, validate_space

logger = logging.getLogger(__name__)

__all__ = ["SweepResult", "SweepRun", "resolve_run", "run_published", "run_tuner", "start_trials", "tune"]


@dataclass(frozen=True)
class SweepResult:
    """What :func:`tune` produced.

    Attributes
    ----------
    name : str
        The sweep's name (pass it to ``--resume``).
    path : str
        Ray Tune's experiment folder (a local path or a URI).
    rows : list of dict
        The results table, one row per trial (``OUT/results.csv``).
    best : dict
        Per source: ``trial_id``, ``params``, ``valid_clip_accuracy``, ``test_clip_accuracy``, ``bundle``,
        ``report``.
    out : Path
    """

    name: str
    path: str
    rows: list[dict[str, Any]]
    best: dict[str, dict[str, Any]]
    out: Path


def tune(
    config: Config,
    *,
    out: str | Path,
    resume: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
) -> SweepResult:
    """Run (or resume) a sweep over ``config.tune.space`` and the prepared datasets in ``config.sources``.

    Parameters
    ----------
    config : Config
        ``sources``, ``tune``, and the base ``train``/``model`` settings every trial starts from.
    out : path
        Output folder (results table, plots, best bundles; the experiment too unless ``tune.storage_path``).
    resume : str, optional
        Name of an interrupted sweep in the same storage to continue (its saved config is used).
    progress : bool
        Tune's status table on the terminal.
    log : callable
        Receives the driver's messages.

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError
        No sources, an unknown space key or value, an unknown metric, Optuna missing, a trial larger than the
        cluster, or ``resume`` naming no sweep.
    OutputExistsError
        A sweep of the same name exists and ``resume`` was not given.
    DatasetError
        A source is not a prepared dataset.
    SpectrotuneError
        Every trial failed (the results table, with each trial's error, is written first).
    """
    return run_published(out, SWEEP_JSON, lambda local, published: _sweep(
        config, out=local, published=published, resume=resume, progress=progress, log=log))


def run_published(out: str | Path, marker: str, run: Callable[[Path, Path | str], tuple[Any, str | None]]) -> Any:
    """Run ``run(local folder, published path)`` and publish the folder as ``out`` (a URI: uploaded, ``marker``
    last); a failure message it returns is raised as a :class:`SpectrotuneError` only after its files are
    published."""
    published = storage.norm(out)
    with storage.local_output(published, last=[marker]) as local:
        result, failure = run(local, published)
    if failure:
        raise SpectrotuneError(failure)
    return result


@dataclass(frozen=True)
class SweepRun:
    """A sweep or cross-validation run, named and placed before anything starts (see :func:`resolve_run`).

    Attributes
    ----------
    config : Config
        The config the run uses: the one saved with it when resuming.
    kind : str
        ``sweep`` or ``cv`` (saved with the run: a resume must be of the same kind).
    name : str
    root : str
        The storage of all sweeps (``tune.storage_path`` or ``OUT/sweeps``).
    state : dict or None
        The saved state (``spectrotune-sweep.json``) when resuming, else None.
    """

    config: Config
    kind: str
    name: str
    root: str
    state: dict[str, Any] | None

    @property
    def path(self) -> str:
        """Ray Tune's experiment folder, ``<root>/<name>``."""
        return str(storage.join(self.root, self.name))


def resolve_run(config: Config, *, out: Path | str, resume: str | None, kind: str, folds: int | None,
                log: Callable[[str], None]) -> SweepRun:
    """Resolve name, storage and (when resuming) the saved state of a ``kind`` (``sweep`` or ``cv``) run.

    Raises
    ------
    ConfigError
        ``resume`` names no sweep, one without Tune state, or one of the other kind.
    OutputExistsError
        Not resuming, and a run of the same name exists.
    """
    from ray import tune as rt

    root = storage_root(config, out)
    if resume:
        path = str(storage.join(root, resume))
        state = load_state(path, name=resume, root=root)
        if not rt.Tuner.can_restore(path):
            raise ConfigError(f"--resume {resume}: {path} has no Tune state (the driver stopped before the first "
                              "trial started); run it again without --resume")
        if state.get("kind") != kind:
            raise ConfigError(f"--resume {resume}: that is a {state.get('kind')} run, not a {kind}"
                              + (" (add --cv K)" if state.get("kind") == "cv" else " (drop --cv)"))
        saved = build(Config, state["config"], origin=str(storage.join(path, STATE_FILE)))
        if saved.hash() != config.hash() and config.sources:
            log(f"resuming {resume} with the config saved with it (the config given now differs and is ignored)")
        return SweepRun(config=saved, kind=kind, name=resume, root=root, state=state)
    name = sweep_name(config, folds=folds)
    path = str(storage.join(root, name))
    if rt.Tuner.can_restore(path):
        raise OutputExistsError(f"sweep {name} already exists at {path}: continue it with --resume {name}, or set "
                                f"tune.name for a new one")
    return SweepRun(config=config, kind=kind, name=name, root=root, state=None)


def check_sources(sources: Mapping[str, str], names: Sequence[str], log: Callable[[str], None]) -> dict[str, str]:
    """``{name: normalised path}`` of the named prepared datasets, each manifest read (and described in the log).

    Raises
    ------
    DatasetError
        A source is not a prepared dataset, or one of its shards is damaged (:mod:`spectrotune.dataset_check`).
    """
    resolved = {}
    for name in names:
        path = sources[name]
        manifest = read_manifest(path)
        check_shards(path, manifest)  # a damaged source: one line naming the file here, not a failure in every trial
        log(f"source {name}: {path} ({len(manifest.labels)} genres, input {list(manifest.input_shape)}, "
            f"{manifest.source.kind})")
        resolved[name] = str(storage.norm(path))
    return resolved


def start_trials(run: SweepRun, *, sources: Mapping[str, str], out: Path,
                 folds: dict[str, list[list[str]]] | None = None, extra_state: Mapping[str, Any] | None = None,
                 backbones: Mapping[str, Any] | None = None, log: Callable[[str], None]) -> tuple[SweepSpec, int]:
    """The setup a sweep and a cross-validation share once their inputs are known: start Ray, fit the
    concurrency to the cluster, make the trials' spec, and save the run's state on its first start.

    Parameters
    ----------
    run : SweepRun
    sources : mapping
        ``{name: dataset path}`` the trials train on (from :func:`check_sources`).
    out : Path
        The local output folder (created).
    folds : dict, optional
        CV: per source, the fold track lists.
    extra_state : mapping, optional
        Further entries of the saved state (CV: ``folds_k`` and ``folds``).
    backbones : mapping, optional
        The pretrained checkpoints the trials start from (:func:`~spectrotune.tuning.plan.trial_backbones`).

    Returns
    -------
    spec : SweepSpec
    concurrency : int
        Trials run at once.
    """
    import ray

    from spectrotune.runtime import init_ray

    config, tc = run.config, run.config.tune
    init_ray()
    concurrency = trial_concurrency(wanted=tc.max_concurrent_trials, cpus_per_trial=tc.cpus_per_trial,
                                    gpus_per_trial=tc.gpus_per_trial, cluster=ray.cluster_resources(), log=log)
    workers = config.train.num_workers
    spec = SweepSpec(config=config.to_dict(), sources=dict(sources), experiment=run.path,
                     cpus_per_worker=tc.cpus_per_trial / workers, gpus_per_worker=tc.gpus_per_trial / workers,
                     folds=folds, backbones=dict(backbones or {}))
    out.mkdir(parents=True, exist_ok=True)
    if run.state is None:
        save_state(run.path, {"kind": run.kind, "name": run.name, "config": config.to_dict(), **(extra_state or {}),
                              "created": time.time()})
    return spec, concurrency


def open_tracking(run: SweepRun, spec: SweepSpec, *, out: Path, published: Path | str,
                  log: Callable[[str], None]) -> Any:
    """The run's :class:`~spectrotune.tracking.sweeps.SweepTracking` (parent MLflow run, per-trial runs and
    TensorBoard folders ``OUT/tb/<trial id>``; trial run ids kept in ``trial_state/<trial id>/``)."""
    from spectrotune.tracking.sweeps import start_sweep_tracking

    return start_sweep_tracking(run.config, kind=run.kind, name=run.name, experiment_dir=run.path, out=out,
                                published=published, trial_folder=spec.trial_state,
                                trial_config=lambda params: spec.trial_inputs(params)[0], log=log)


def run_tuner(run: SweepRun, spec: SweepSpec, *, config: Config, param_space: Mapping[str, Any], concurrency: int,
              asha: bool, max_epochs: int, progress: bool, callbacks: Sequence[Any] = ()) -> Any:
    """Build (or, when ``run`` is resumed, restore) the Tuner and run it; returns Tune's ``ResultGrid``.

    ``config.tune`` gives the metric, search, scheduler and sample count (CV passes a grid of one sample).
    ``callbacks`` (tracking) join a new Tuner's; a restored one keeps those it was made with (Tune pickles them).
    """
    from ray import tune as rt

    from spectrotune.tuning.schedulers import DRIVER_RESOURCES, PerSourceASHA, search_algorithm
    from spectrotune.tuning.trial import PlacementGroupJanitor, run_trial, trial_dirname

    tc = config.tune
    trainable = rt.with_resources(rt.with_parameters(run_trial, spec=spec), dict(DRIVER_RESOURCES))
    if run.state is not None:
        tuner = rt.Tuner.restore(run.path, trainable=trainable, resume_errored=True)
    else:
        mode = "min" if tc.metric.endswith("loss") else "max"
        scheduler = (PerSourceASHA(max_t=max_epochs, grace_period=tc.grace_period,
                                   reduction_factor=tc.reduction_factor) if asha else None)
        search_alg, limit = search_algorithm(tc.search, seed=tc.seed, concurrency=concurrency)
        tuner = rt.Tuner(
            trainable,
            param_space=dict(param_space),
            tune_config=rt.TuneConfig(
                metric=tc.metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                num_samples=tc.num_samples, max_concurrent_trials=limit,
                # A fresh actor per trial: a reused one would still hold the stopped trial's Train run.
                reuse_actors=False, trial_dirname_creator=trial_dirname,
            ),
            run_config=rt.RunConfig(name=run.name, storage_path=run.root, verbose=1 if progress else 0,
                                    callbacks=[PlacementGroupJanitor(), *callbacks]),
        )  # fmt: skip
    return tuner.fit()


def _sweep_inputs(config: Config, log: Callable[[str], None]) -> tuple[list[Dimension], list[str], dict[str, str]]:
    """The space's dimensions, the source names and their dataset paths, all checked before Ray starts."""
    tc = config.tune
    metrics = tuple(k for k in METRIC_KEYS if k not in ("epoch", "attempt"))
    if tc.metric not in metrics:
        raise ConfigError(f"tune.metric={tc.metric!r}: not a reported metric (one of {', '.join(metrics)})")
    if tc.search == "optuna":
        from spectrotune.tuning.schedulers import search_algorithm

        search_algorithm(tc.search, seed=tc.seed, concurrency=1)  # fail before anything starts
    dims = parse_space(tc.space)
    check_sweep_schedule(config, max_epochs=max_epochs(config, dims), swept=any(d.key == "train.epochs" for d in dims))
    names = space_sources(config, dims)
    validate_space(config, dims)
    return dims, names, check_sources(config.sources, names, log)


def _sweep(config: Config, *, out: Path, published: Path | str, resume: str | None, progress: bool,
           log: Callable[[str], None]) -> tuple[SweepResult, str | None]:
    """:func:`tune` writing its files into the local folder ``out``, which is published as ``published``."""
    from spectrotune.tuning.schedulers import build_param_space

    t0 = time.perf_counter()
    run = resolve_run(config, out=published, resume=resume, kind="sweep", folds=None, log=log)
    config, name, path = run.config, run.name, run.path
    dims, names, sources = _sweep_inputs(config, log)
    spec, concurrency = start_trials(run, sources=sources, out=out, backbones=trial_backbones(config, dims, sources),
                                     log=log)
    tracking = open_tracking(run, spec, out=out, published=published, log=log)
    tc = config.tune
    asha = tc.scheduler == "asha"
    log(f"{'resuming' if resume else 'starting'} sweep {name} at {path}: {tc.num_samples} sample(s) x grid over "
        f"{len(names)} source(s), {concurrency} trial(s) at a time, search {tc.search}, scheduler {tc.scheduler}")
    grid = run_tuner(run, spec, config=config, param_space=build_param_space(dims, sources=names, search=tc.search),
                     concurrency=concurrency, asha=asha, max_epochs=max_epochs(config, dims), progress=progress,
                     callbacks=tracking.callbacks())
    rows = results.collect_rows(grid, spec, dims, asha=asha)
    best = _export_best(rows, spec, names, out=out, published=published, log=log, tracking=tracking)
    results.write_results(rows, best, out, name=name, path=path)
    results.plot_trial_curves(rows, out / results.TRIAL_CURVES_PNG)
    results.plot_accuracy_vs_params(rows, dims, out / results.ACCURACY_VS_PARAMS_PNG)
    summary = results.sweep_summary(rows, best, name=name, path=path, seconds=time.perf_counter() - t0)
    storage.write_json(out / SWEEP_JSON, summary)
    for source, b in best.items():
        log(f"best on {source}: trial {b['trial_id']} valid clip accuracy {b[SCORE]:.3f}, test clip accuracy "
            f"{b['test_clip_accuracy']:.3f}; bundle {b['bundle']}")
    table = storage.join(published, results.RESULTS_MD)
    log(f"sweep {name}: {len(rows)} trials in {time.perf_counter() - t0:.0f} s; table {table}")
    result = SweepResult(name=name, path=path, rows=[results.public_row(r) for r in rows], best=best, out=published)
    failure = results.all_failed(rows, table)
    tracked = tracking.finish(**results.tracking_summary(rows, best, out), failed=failure is not None)
    return result, failure or (str(tracked) if tracked else None)


def _export_best(rows: Sequence[Mapping[str, Any]], spec: SweepSpec, names: Sequence[str], *, out: Path,
                 published: Path | str, log: Callable[[str], None], tracking: Any) -> dict[str, dict[str, Any]]:
    """Export the best trial of every source as ``OUT/best/<source>/bundle`` and evaluate it on the test split
    (the report is attached to the trial's MLflow run, which the bundle records)."""
    from ray.train import Result

    from spectrotune.evaluation.evaluate import evaluate
    from spectrotune.training.outputs import export_run
    from spectrotune.training.plan import plan_run

    best: dict[str, dict[str, Any]] = {}
    for source in names:
        row = results.best_trial(rows, source)
        if row is None:
            log(f"source {source}: no trial reported a result; nothing to export")
            continue
        trial_params = dict(row["_params"])
        config, data, _ = spec.trial_inputs(trial_params)
        final = out / results.BEST_DIR / source
        partial = storage.staging_sibling(final)  # written aside, then renamed onto the old export
        try:
            export_run(plan_run(data, config=config, backbones=spec.backbones),
                       Result.from_path(str(storage.join(spec.runs, row["trial_id"]))), partial, run_dir=None,
                       log=lambda _: None)
            storage.replace_dir(partial, final)
            tracking.record_bundle(row["trial_id"], final / BUNDLE_DIR)
        finally:
            storage.delete(partial)
        report = evaluate(final / BUNDLE_DIR, data, out=final / results.REPORT_DIR, config=config.evaluate,
                          log=lambda _: None)
        record = {"trial_id": row["trial_id"], "params": trial_params,
                  SCORE: row[SCORE], "best_epoch": row["best_epoch"], "test_clip_accuracy": report["clip_accuracy"],
                  "bundle": str(storage.join(published, results.BEST_DIR, source, BUNDLE_DIR)),
                  "report": str(storage.join(published, results.BEST_DIR, source, results.REPORT_DIR))}
        storage.write_json(final / results.TRIAL_JSON, record)
        best[source] = record
    return best
