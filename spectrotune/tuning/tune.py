"""``spectrotune tune``: hyperparameter sweeps and cross-validation on Ray Tune, over several prepared datasets.

A sweep trains one model per trial through exactly the code of ``spectrotune train`` (:func:`spectrotune.training.train.
plan_run`, :func:`~spectrotune.training.train.make_trainer`, :func:`~spectrotune.training.train.export_run`), in the pattern Ray
documents for Tune + Train V2 (``doc/source/train/user-guides/hyperparameter-optimization.rst``, Ray 2.60): each
Tune trial is a small *function trainable* (:func:`_trial_driver`) that builds a ``TorchTrainer`` and calls
``fit()``; ``ray.tune.integration.ray_train.TuneReportCallback`` in the trainer's ``RunConfig(callbacks=...)``
forwards every epoch's worker report (``valid_clip_accuracy`` etc.) to Tune, where ASHA reads it. The deprecated
``Tuner(trainer)`` form is not used.

Early stopping. ASHA (``tune.scheduler: asha``) compares ``tune.metric`` at rungs of ``grace_period *
reduction_factor**k`` epochs and stops trials below the rung's top ``1 / reduction_factor``; it keeps separate
rungs per source (:class:`_PerSourceASHA`), because clip accuracies on different datasets are not comparable.

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
      space:                      # keys are config keys (nested or dotted), plus `source`
        source: {grid: [gtzan, spotify]}
        train.lr: {loguniform: [1.0e-4, 3.0e-3]}
        model: {width: {choice: [16, 32]}}

Space syntax. Each leaf of ``tune.space`` is one of ``{loguniform: [lo, hi]}`` (``0 < lo < hi``),
``{uniform: [lo, hi]}``, ``{randint: [lo, hi]}`` (integers, ``hi`` exclusive, as in Tune), ``{choice: [...]}``,
``{grid: [...]}``, or a plain value (fixed for every trial). Keys are config keys — ``train.lr``,
``train.weight_decay``, ``train.batch_size``, ``model.name``, ``model.width``, ``model.depth``,
``model.dropout``, ``train.mixup_alpha``, ``train.spec_augment``, … — given nested or dotted, plus the special key
``source`` (names from ``sources``; a grid over all of them when absent). Every key and value is checked against
the config before anything starts: an unknown key or a bad value is a :class:`~spectrotune.errors.ConfigError`
naming it. With ``search: grid`` a ``choice`` is a grid too; with ``search: optuna`` a ``grid`` (``source``
included) becomes a categorical choice, since Optuna samples every dimension. Random search is seeded with
``tune.seed``. The number of classes and the input shape come from each dataset's manifest, so one sweep can mix
a 10-genre audio dataset with a 14-genre image dataset: one trial trains on one source.

Resources. A trial's driver asks Tune for no CPU (only a token of memory, since Tune refuses an empty request);
its training workers ask Ray Train for ``tune.cpus_per_trial / train.num_workers`` CPUs and
``tune.gpus_per_trial / train.num_workers`` GPUs each. Concurrency is capped to what the cluster holds, leaving
one CPU for Ray Data's read tasks, so trials never wait on each other for resources on a small machine (on a
2-CPU machine: one trial at a time with the defaults). Ray Train removes a run's worker placement group itself
only through the dashboard's state API; without a dashboard (``spectrotune``'s local Ray) a run whose trial Tune
stopped would keep its CPUs forever, so the sweep driver removes placement groups whose creating actor died
(:class:`_PlacementGroupJanitor`).

Names, storage and resume. The sweep is named ``tune.name`` or ``sweep-<config hash>`` and lives in
``tune.storage_path`` (a folder or a URI such as ``s3://bucket/sweeps``; default ``OUT/sweeps``). Each trial's
Train run is ``<sweep>/runs/<trial id>``. ``spectrotune tune --resume NAME`` restores the sweep with
``Tuner.restore(..., resume_errored=True)``: finished trials are not run again, interrupted ones continue from
their last epoch checkpoint (Ray Train resumes a run with the same name and storage), and a trial whose Train
run had already finished when the driver died only re-reports its epochs. Resuming uses the config saved with the
sweep (``<sweep>/spectrotune-sweep.json``), whatever the command line says. Every driver start and every fit
is recorded in ``<sweep>/trial_state/<trial id>/``, and the results table counts them.

Outputs (``--out OUT``)::

    OUT/
      results.csv, results.md     one row per trial: id, source, sampled parameters, status, epochs run, best
                                  epoch, best valid clip accuracy (and segment accuracy), driver starts, fits
      trial_curves.png            valid clip accuracy per epoch, one panel per source
      accuracy_vs_params.png      best valid clip accuracy against each sampled parameter
      best/<source>/bundle/       the best trial of each source as a model bundle (its best epoch)
      best/<source>/report/       its evaluation on the source's test split (spectrotune evaluate)
      sweep.json                  the summary: name, path, best trial per source with its test accuracy
      sweeps/<name>/              Ray Tune's experiment folder (unless tune.storage_path is set)

Status: ``TERMINATED`` (all epochs), ``STOPPED (ASHA)``, ``STOPPED (patience)`` (``train.patience``),
``ERROR`` (the message is in the ``error`` column).

Cross-validation (:func:`cross_validate`, ``spectrotune tune --cv K`` or ``spectrotune cv``): the tracks of the
train and valid splits are dealt into K folds by track, stratified by genre (:func:`stratified_folds`); the test
split stays held out. Each fold is one trial with the fixed config (``tune.space`` is ignored): train on the other
folds' tracks (every variant allowed by ``train.variants``), validate on the fold's tracks (``clean`` variant).
The CNN's fold score is the valid clip accuracy after the last epoch (no epoch is picked on the fold itself; the
best epoch's is reported beside it). The classical baselines are fit on the same other-folds tracks with their
default hyperparameters (no inner validation) and scored on the fold. ``OUT/cv.json`` and ``OUT/cv.md`` give
per-fold numbers and mean ± sample standard deviation.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.tune import Callback
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

from spectrotune import storage
from spectrotune.config import Config, build
from spectrotune.dataset import CLEAN, GENRE, SPLIT, TRACK_ID, VARIANT, open_dataset, read_manifest
from spectrotune.errors import ConfigError, DatasetError, OutputExistsError, SpectrotuneError
from spectrotune.schema import SCORE
from spectrotune.evaluation.plots import save_figure

__all__ = [
    "DISTRIBUTIONS",
    "CVResult",
    "Dimension",
    "SweepResult",
    "build_param_space",
    "cross_validate",
    "parse_space",
    "plot_accuracy_vs_params",
    "plot_trial_curves",
    "stratified_folds",
    "sweep_name",
    "trial_concurrency",
    "tune",
    "validate_space",
]

DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice", "grid")
SOURCE_KEY = "source"
FOLD_KEY = "fold"
STATE_FILE = "spectrotune-sweep.json"
RUNS = "runs"
TRIAL_STATE = "trial_state"
DONE = "done.json"
# Tune refuses a trial with an empty resource request ("Cannot initialize a ResourceRequest with an empty head and
# zero worker bundles"); the driver does no work, so it asks for a token of memory instead of a CPU.
DRIVER_RESOURCES = {"cpu": 0, "memory": 2**20}
# CPUs left free when capping concurrency: Ray Data read tasks need a whole CPU while training workers hold theirs.
RESERVED_CPUS = 1.0
# Keys a sweep may not vary: they place the outputs or define the sweep itself.
FORBIDDEN_KEYS = ("tune", "sources", "train.run_name", "train.storage_path")

STATUS_DONE = "TERMINATED"
STATUS_ASHA = "STOPPED (ASHA)"
STATUS_PATIENCE = "STOPPED (patience)"
STATUS_ERROR = "ERROR"
STATUS_NONE = "NO RESULTS"


# ----------------------------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class Dimension:
    """One key of the search space.

    Attributes
    ----------
    key : str
        Dotted config key (``train.lr``) or ``source``.
    kind : str
        One of :data:`DISTRIBUTIONS`, or ``fixed``.
    values : tuple
        ``(lo, hi)`` for ``loguniform``/``uniform``/``randint``; the options for ``choice``/``grid``; ``(value,)``
        for ``fixed``.
    """

    key: str
    kind: str
    values: tuple[Any, ...]

    @property
    def swept(self) -> bool:
        """Whether trials can differ in this key."""
        return self.kind != "fixed" and not (self.kind in ("choice", "grid") and len(self.values) == 1)

    def candidates(self) -> list[Any]:
        """Values to validate against the config: every option, or both ends of a range."""
        if self.kind == "randint":
            return [self.values[0], self.values[1] - 1]
        return list(self.values)


def parse_space(space: Mapping[str, Any]) -> list[Dimension]:
    """Flatten ``tune.space`` (nested or dotted keys) into dimensions, checking the distribution specs.

    A mapping with exactly one key that is a distribution name (:data:`DISTRIBUTIONS`) is a distribution; any
    other mapping is a section whose keys are prefixed with its own; anything else is a fixed value.

    Raises
    ------
    ConfigError
        A malformed distribution (wrong number of bounds, ``lo >= hi``, non-positive log-uniform bound, empty
        choice list) or a key given twice; the message names the key.
    """
    out: dict[str, Dimension] = {}

    def visit(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping) and len(node) == 1 and next(iter(node)) in DISTRIBUTIONS:
            kind, values = next(iter(node.items()))
            add(Dimension(prefix, kind, _check_distribution(prefix, kind, values)))
        elif isinstance(node, Mapping) and node:
            for key, value in node.items():
                if not isinstance(key, str) or not key:
                    raise ConfigError(f"tune.space: key {key!r} under {prefix or 'space'!r} must be a non-empty string")
                visit(value, f"{prefix}.{key}" if prefix else key)
        else:
            if not prefix:
                raise ConfigError(f"tune.space: must be a mapping of config keys, got {node!r}")
            add(Dimension(prefix, "fixed", (node,)))

    def add(dim: Dimension) -> None:
        if dim.key in out:
            raise ConfigError(f"tune.space: key {dim.key!r} is given twice (nested and dotted?)")
        out[dim.key] = dim

    if not isinstance(space, Mapping):
        raise ConfigError(f"tune.space: must be a mapping of config keys, got {space!r}")
    if space:
        visit(space, "")
    return list(out.values())


def _check_distribution(key: str, kind: str, values: Any) -> tuple[Any, ...]:
    where = f"tune.space.{key}: {{{kind}: {values!r}}}"
    if kind in ("choice", "grid"):
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"{where}: expected a non-empty list of values")
        return tuple(values)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != 2:
        raise ConfigError(f"{where}: expected [lo, hi]")
    lo, hi = values
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi))
    if not numbers or not all(math.isfinite(v) for v in (lo, hi)):
        raise ConfigError(f"{where}: bounds must be finite numbers")
    if kind == "randint" and not all(isinstance(v, int) for v in (lo, hi)):
        raise ConfigError(f"{where}: randint bounds must be integers (hi is exclusive)")
    if lo >= hi:
        raise ConfigError(f"{where}: needs lo < hi")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(f"{where}: log-uniform bounds must be > 0")
    return (lo, hi) if kind == "randint" else (float(lo), float(hi))


def _set_nested(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _with_params(base: Mapping[str, Any], params: Mapping[str, Any], *, origin: str) -> Config:
    """``base`` (a plain config dict) with dotted-key ``params`` applied, validated into a :class:`Config`."""
    data = copy.deepcopy(dict(base))
    for key, value in params.items():
        if key not in (SOURCE_KEY, FOLD_KEY):
            _set_nested(data, key, value)
    return build(Config, data, origin=origin)


def _sources_of(config: Config, dims: Sequence[Dimension]) -> list[str]:
    """The source names a sweep covers, checked against ``config.sources``."""
    if not config.sources:
        raise ConfigError("tune: no prepared datasets; set sources.<name>=PATH (e.g. --set sources.gtzan=data/gtzan)")
    dim = next((d for d in dims if d.key == SOURCE_KEY), None)
    if dim is None:
        return list(config.sources)
    if dim.kind not in ("choice", "grid", "fixed"):
        raise ConfigError(f"tune.space.source: must be a grid, a choice or one name, got {dim.kind}")
    unknown = [v for v in dim.values if v not in config.sources]
    if unknown:
        raise ConfigError(f"tune.space.source: {unknown[0]!r} is not in sources (have {', '.join(config.sources)})")
    return list(dict.fromkeys(dim.values))


def validate_space(config: Config, dims: Sequence[Dimension]) -> None:
    """Check every key and candidate value of the space against the config (and the models' parameters).

    Raises
    ------
    ConfigError
        An unknown key, a key a sweep may not vary, or a value the config (or the chosen model) rejects; the
        message names the key and the value.
    """
    from spectrotune.models.networks import model_params

    base = config.to_dict()
    for dim in dims:
        if dim.key == SOURCE_KEY:
            continue
        if dim.key == FOLD_KEY or any(dim.key == k or dim.key.startswith(k + ".") for k in FORBIDDEN_KEYS):
            raise ConfigError(f"tune.space: key {dim.key!r} cannot be swept")
        values = dim.candidates()
        if dim.kind in ("loguniform", "uniform", "randint"):
            # A range stands for numbers of its own kind: check that the key takes numbers at all.
            values = [int(v) for v in values] if dim.kind == "randint" else [float(v) for v in values]
        for value in values:
            try:
                _with_params(base, {dim.key: value}, origin="tune.space")
            except ConfigError as e:
                raise ConfigError(f"tune.space: {dim.key}={value!r}: {_strip_origin(e)}") from e
    # Model parameters depend on the model: check each swept value with each model name the sweep can pick.
    names_dim = next((d for d in dims if d.key == "model.name"), None)
    names = list(names_dim.candidates()) if names_dim else [config.model.name]
    for name in names:
        for dim in [d for d in dims if d.key.startswith("model.") and d.key != "model.name"] or [None]:
            for value in dim.candidates() if dim else [None]:
                params = {"model.name": name, **({dim.key: value} if dim else {})}
                trial = _with_params(base, params, origin="tune.space")
                try:
                    model_params(trial.model.name, trial.model.params())
                except ConfigError as e:
                    raise ConfigError(f"tune.space: model.name={name!r} with "
                                      f"{dim.key + '=' + repr(value) if dim else 'the config'}: {e}") from e


def _strip_origin(error: ConfigError) -> str:
    text = str(error)
    return text.split(": ", 1)[1] if text.startswith("tune.space: ") else text


def build_param_space(dims: Sequence[Dimension], *, sources: Sequence[str], search: str) -> dict[str, Any]:
    """The Tune ``param_space``: ``source`` first (so it varies fastest in a grid), then the space's keys.

    ``choice`` becomes a grid when ``search == "grid"``; ``grid`` becomes a choice when ``search == "optuna"``.
    """
    from ray import tune as rt

    def domain(kind: str, values: Sequence[Any]) -> Any:
        if kind == "loguniform":
            return rt.loguniform(*values)
        if kind == "uniform":
            return rt.uniform(*values)
        if kind == "randint":
            return rt.randint(*values)
        if kind == "fixed":
            return values[0]
        as_grid = (kind == "grid" and search != "optuna") or (kind == "choice" and search == "grid")
        return rt.grid_search(list(values)) if as_grid else rt.choice(list(values))

    space: dict[str, Any] = {SOURCE_KEY: domain("fixed" if len(sources) == 1 else "grid", list(sources))}
    for dim in dims:
        if dim.key != SOURCE_KEY:
            space[dim.key] = domain(dim.kind, dim.values)
    return space


# ----------------------------------------------------------------------------------------------- names and storage


def sweep_name(config: Config, *, folds: int | None = None) -> str:
    """The deterministic name of a sweep (``tune.name`` or ``sweep-<config hash>``; CV: ``cv<K>-...``)."""
    if folds is None:
        return config.tune.name or f"sweep-{config.hash()}"
    return f"{config.tune.name}-cv{folds}" if config.tune.name else f"cv{folds}-{config.hash()}"


def _storage_path(config: Config, out: Path | str) -> str:
    """Where Ray Tune keeps the experiments: ``tune.storage_path``, else ``OUT/sweeps`` (local or a URI)."""
    given = config.tune.storage_path
    return str(storage.norm(given) if given else storage.join(out, "sweeps"))


def _join(base: str, *parts: str) -> str:
    """Experiment paths stay strings (Ray takes them as they are): ``base/part/...`` for local paths and URIs."""
    return str(storage.join(base, *parts))


def _write_bytes(path: str, payload: bytes) -> None:
    """Write an event or state file in place (no write-aside: a driver killed mid-write still leaves the name)."""
    fs, fs_path = storage.filesystem(path)
    fs.create_dir(fs_path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(fs_path) as f:
        f.write(payload)


def _read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when there is no such file."""
    return storage.read_bytes(path) if storage.is_file(path) else None


def _list_names(path: str) -> list[str]:
    """Names of the entries directly inside ``path`` ([] when absent)."""
    import pyarrow.fs as pafs

    fs, fs_path = storage.filesystem(path)
    if fs.get_file_info(fs_path).type != pafs.FileType.Directory:
        return []
    return sorted(info.base_name for info in fs.get_file_info(pafs.FileSelector(fs_path)))


# ----------------------------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class _SweepSpec:
    """What every trial needs besides its sampled parameters (handed over with ``tune.with_parameters``)."""

    config: dict[str, Any]
    sources: dict[str, str]
    experiment: str
    cpus_per_worker: float
    gpus_per_worker: float
    folds: dict[str, list[list[str]]] | None = None

    @property
    def runs(self) -> str:
        return _join(self.experiment, RUNS)

    def trial_state(self, trial_id: str) -> str:
        return _join(self.experiment, TRIAL_STATE, trial_id)


def _trial_setup(spec: _SweepSpec, params: Mapping[str, Any]) -> tuple[Config, str, dict[str, list[str]] | None]:
    """The trial's config (with the sweep's per-worker resources), dataset path and CV tracks."""
    config = _with_params(spec.config, params, origin=f"trial {dict(params)}")
    train = dataclasses.replace(config.train, cpus_per_worker=spec.cpus_per_worker)
    config = dataclasses.replace(config, train=train)
    source = params[SOURCE_KEY]
    tracks = None
    if spec.folds is not None:
        folds = spec.folds[source]
        k = int(params[FOLD_KEY])
        tracks = {"train": [t for i, fold in enumerate(folds) if i != k for t in fold], "valid": list(folds[k])}
    return config, spec.sources[source], tracks


def _record(spec: _SweepSpec, trial_id: str, event: str) -> None:
    payload = json.dumps({"event": event, "time": time.time(), "pid": os.getpid()}).encode()
    _write_bytes(_join(spec.trial_state(trial_id), f"{event}-{time.time_ns()}.json"), payload)


def _trial_driver(params: dict[str, Any], *, spec: _SweepSpec) -> None:
    """One Tune trial: build the trial's ``TorchTrainer`` and fit it; worker reports reach Tune via the callback.

    Module level so Ray pickles it by reference. A trial whose Train run already finished (the sweep driver died
    before Tune recorded the trial as done) re-reports its epochs instead of training again.
    """
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from spectrotune.training.train import _training_error, make_trainer, plan_run, run_history

    trial_id = ray.tune.get_context().get_trial_id()
    _record(spec, trial_id, "start")
    done = _read_bytes(_join(spec.trial_state(trial_id), DONE))
    if done is not None:
        for metrics in json.loads(done):
            ray.tune.report(metrics)
        return
    config, data, tracks = _trial_setup(spec, params)
    plan = plan_run(data, config=config, tracks=tracks)
    gpus = spec.gpus_per_worker
    trainer = make_trainer(
        plan, run_name=trial_id, storage_path=spec.runs, callbacks=[TuneReportCallback()], progress=False,
        resources_per_worker={"CPU": spec.cpus_per_worker, **({"GPU": gpus} if gpus > 0 else {})},
        use_gpu=gpus > 0, log=lambda _: None,
    )  # fmt: skip
    _record(spec, trial_id, "fit")
    try:
        result = trainer.fit()
    except Exception as e:  # one clear line in the results table instead of a Ray traceback
        raise _training_error(e, run_dir=_join(spec.runs, trial_id)) from e
    history = run_history(result)
    _write_bytes(_join(spec.trial_state(trial_id), DONE), json.dumps(history).encode())


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def _trial_events(spec: _SweepSpec, trial_id: str) -> dict[str, int]:
    names = _list_names(spec.trial_state(trial_id))
    return {event: sum(1 for n in names if n.startswith(event + "-")) for event in ("start", "fit")}


class _PlacementGroupJanitor(Callback):
    """Tune callback: remove placement groups whose creating actor died, in this job only.

    When Tune stops a trial (ASHA) it ends the trial's actor, which takes the Train controller it owns with it;
    the controller's worker placement group then outlives it, holding its CPUs until the job ends. Ray Train's
    own cleaner needs the dashboard's state API, which a local ``spectrotune`` Ray does not start. Placement
    groups made by the driver itself (Tune's trial groups) have no creating actor and are left alone.
    """

    def __init__(self, interval_s: float = 2.0) -> None:
        self.interval_s = interval_s
        self._last = 0.0
        self._disabled = False

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self.collect()

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.collect()

    def collect(self) -> int:
        """Remove orphaned placement groups now; returns how many."""
        if self._disabled:
            return 0
        try:
            from ray._private.state import state
            from ray.core.generated import gcs_pb2
            from ray.util.placement_group import PlacementGroup, remove_placement_group

            job = ray.get_runtime_context().get_job_id()
            removed = 0
            for raw in state._connect_and_get_accessor().get_placement_group_table():
                info = gcs_pb2.PlacementGroupTableData.FromString(raw)
                if info.state == gcs_pb2.PlacementGroupTableData.REMOVED or info.is_detached:
                    continue
                creator = bytes(info.creator_actor_id)
                if info.creator_job_id.hex() != job or not creator or set(creator) == {0xFF}:
                    continue  # another job's, or made by a driver (no actor)
                if info.creator_actor_dead:
                    with contextlib.suppress(Exception):  # removed meanwhile by its owner
                        remove_placement_group(PlacementGroup(ray.PlacementGroupID(info.placement_group_id)))
                        removed += 1
            return removed
        except Exception as e:  # noqa: BLE001 - internal API changed: stop trying, say so once
            self._disabled = True
            print(f"spectrotune tune: cannot clean up placement groups of stopped trials ({e!r}); "
                  "start Ray with the dashboard so Ray Train does it", flush=True)
            return 0


class _PerSourceASHA(FIFOScheduler):
    """ASHA with one set of rungs per source: a trial is only compared with trials on the same dataset.

    Clip accuracies on a 14-genre image set and a 10-genre audio set are not comparable, so a single ASHA would
    stop every trial of the harder source. Each source gets its own ``AsyncHyperBandScheduler`` (time attribute
    ``epoch``); trials run in submission order (FIFO), as with plain ASHA.
    """

    def __init__(self, *, max_t: int, grace_period: int, reduction_factor: float) -> None:
        super().__init__()
        self._options = {"time_attr": "epoch", "max_t": max_t, "grace_period": grace_period,
                         "reduction_factor": reduction_factor}
        self._metric: str | None = None
        self._mode: str | None = None
        self._by_source: dict[str, AsyncHyperBandScheduler] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def _asha(self, trial: Any) -> AsyncHyperBandScheduler:
        source = str((trial.config or {}).get(SOURCE_KEY))
        if source not in self._by_source:
            self._by_source[source] = AsyncHyperBandScheduler(metric=self._metric, mode=self._mode,
                                                              **self._options)
        return self._by_source[source]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._asha(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._asha(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "; ".join(f"{s}: {a.debug_string()}" for s, a in self._by_source.items()) or "ASHA per source"


# ----------------------------------------------------------------------------------------------- resources


def trial_concurrency(
    *,
    wanted: int,
    cpus_per_trial: float,
    gpus_per_trial: float,
    cluster: Mapping[str, float],
    log: Callable[[str], None] = print,
) -> int:
    """How many trials run at once: ``wanted`` (0 = as many as fit), capped to what the cluster holds.

    One CPU is left for Ray Data (:data:`RESERVED_CPUS`). A cluster reporting no CPUs (an autoscaler starting
    from zero) is not capped.

    Raises
    ------
    ConfigError
        A single trial needs more CPUs or GPUs than the cluster has: it could never start.
    """
    cpus, gpus = float(cluster.get("CPU", 0.0)), float(cluster.get("GPU", 0.0))
    caps = []
    if cpus > 0:
        if cpus_per_trial > cpus:
            raise ConfigError(f"tune.cpus_per_trial={cpus_per_trial:g} but the cluster has {cpus:g} CPUs: "
                              "no trial could start")
        if cpus - cpus_per_trial < RESERVED_CPUS:
            log(f"tune.cpus_per_trial={cpus_per_trial:g} leaves no whole CPU for Ray Data on this {cpus:g}-CPU "
                "cluster: only datasets small enough to be held in memory will train")
        caps.append(max(1, math.floor((cpus - RESERVED_CPUS) / cpus_per_trial + 1e-9)))
    if gpus_per_trial > 0:
        if gpus_per_trial > gpus:
            raise ConfigError(f"tune.gpus_per_trial={gpus_per_trial:g} but the cluster has {gpus:g} GPUs: "
                              "no trial could start")
        caps.append(math.floor(gpus / gpus_per_trial + 1e-9))
    if not caps:
        return max(1, wanted)
    cap = min(caps)
    if wanted and wanted <= cap:
        return wanted
    if wanted:
        log(f"tune.max_concurrent_trials={wanted}: the cluster ({cpus:g} CPUs, {gpus:g} GPUs) fits {cap} trial(s) "
            f"at once with one CPU left for Ray Data; running {cap}")
    return cap


# ----------------------------------------------------------------------------------------------- results


def _history(result: Any) -> list[dict[str, Any]]:
    """The epochs a trial reported to Tune, one entry per epoch (a re-reported epoch keeps its last value)."""
    frame = getattr(result, "metrics_dataframe", None)
    if frame is None or len(frame) == 0 or "epoch" not in frame or SCORE not in frame:
        return []
    by_epoch: dict[int, dict[str, Any]] = {}
    for row in frame.to_dict("records"):
        if row.get("epoch") is None or (isinstance(row["epoch"], float) and math.isnan(row["epoch"])):
            continue
        by_epoch[int(row["epoch"])] = row
    return [by_epoch[e] for e in sorted(by_epoch)]


def _status(history: Sequence[Mapping[str, Any]], *, error: Any, config: Config, asha: bool) -> str:
    if error is not None:
        return STATUS_ERROR
    if not history:
        return STATUS_NONE
    epochs_run = int(history[-1]["epoch"])
    if epochs_run >= config.train.epochs:
        return STATUS_DONE
    scores = [float(h[SCORE]) for h in history]
    best_epoch = int(history[int(np.argmax(scores))]["epoch"])
    if config.train.patience and epochs_run - best_epoch >= config.train.patience:
        return STATUS_PATIENCE
    return STATUS_ASHA if asha else STATUS_DONE


def _error_line(error: Any) -> str:
    if error is None:
        return ""
    base = getattr(error, "cause", None) or error
    lines = [line.strip() for line in str(base).strip().splitlines() if line.strip()]
    return lines[-1] if lines else repr(base)


def _collect(grid: Any, spec: _SweepSpec, dims: Sequence[Dimension], *, asha: bool) -> list[dict[str, Any]]:
    """One row per trial of a ``ResultGrid``, in trial-id order."""
    rows = []
    swept = [d.key for d in dims if d.swept and d.key != SOURCE_KEY]
    for result in grid:
        params = dict(result.config or {})
        trial_id = Path(str(result.path)).name
        config, _, _ = _trial_setup(spec, params)
        history = _history(result)
        status = _status(history, error=result.error, config=config, asha=asha)
        best = max(history, key=lambda h: float(h[SCORE])) if history else None
        events = _trial_events(spec, trial_id)
        row = {"trial_id": trial_id, "source": params.get(SOURCE_KEY)}
        if FOLD_KEY in params:
            row[FOLD_KEY] = int(params[FOLD_KEY])
        row.update({key: params.get(key) for key in swept})
        row.update({
            "status": status,
            "epochs_run": int(history[-1]["epoch"]) if history else 0,
            "best_epoch": int(best["epoch"]) if best else None,
            SCORE: float(best[SCORE]) if best else None,
            "valid_accuracy": float(best["valid_accuracy"]) if best and "valid_accuracy" in best else None,
            "last_valid_clip_accuracy": float(history[-1][SCORE]) if history else None,
            "driver_starts": events["start"],
            "fits": events["fit"],
            "error": _error_line(result.error),
        })
        row["_history"] = [{"epoch": int(h["epoch"]), SCORE: float(h[SCORE])} for h in history]
        row["_params"] = params
        rows.append(row)
    rows.sort(key=lambda r: r["trial_id"])
    return rows


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def _markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines)


def _write_results(rows: Sequence[Mapping[str, Any]], best: Mapping[str, Mapping[str, Any]], out: Path, *,
                   name: str, path: str) -> None:
    public = [_public(r) for r in rows]
    columns = list(dict.fromkeys(k for r in public for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in public:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    storage.write_text(out / "results.csv", buffer.getvalue())

    ranked = sorted(public, key=lambda r: (str(r["source"]), r["status"] == STATUS_ERROR,
                                           -(r[SCORE] if r[SCORE] is not None else -1.0), r["trial_id"]))
    shown = [c for c in columns if c != "error"] + (["error"] if any(r.get("error") for r in public) else [])
    text = [f"# Sweep {name}", "", f"Experiment: `{path}`; {len(rows)} trials. Best valid clip accuracy first.",
            "", _markdown_table(ranked, shown), ""]
    if best:
        text += ["## Best trial per source", "",
                 _markdown_table([{"source": s, **b} for s, b in best.items()],
                                 ["source", "trial_id", SCORE, "test_clip_accuracy", "bundle"]), ""]
    storage.write_text(out / "results.md", "\n".join(text))


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_trial_curves(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Valid clip accuracy per epoch of every trial, one panel per source; ASHA-stopped trials dashed."""
    from matplotlib.ticker import MaxNLocator

    sources = list(dict.fromkeys(str(r["source"]) for r in rows)) or ["-"]
    fig = _figure(4.5 * len(sources), 3.6)
    axes = fig.subplots(1, len(sources), squeeze=False)[0]
    for ax, source in zip(axes, sources):
        for row in (r for r in rows if str(r["source"]) == source):
            history = row.get("_history") or []
            if not history:
                continue
            style = "--" if row["status"] == STATUS_ASHA else "-"
            ax.plot([h["epoch"] for h in history], [h[SCORE] for h in history], style, marker="o", markersize=3,
                    label=f"{row['trial_id']} ({row['status'].lower()})")
        ax.set(title=f"source {source}", xlabel="epoch", ylabel="valid clip accuracy", ylim=(0, 1.02))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0] and len(rows) <= 16:
            ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


def plot_accuracy_vs_params(rows: Sequence[Mapping[str, Any]], dims: Sequence[Dimension],
                            path: str | Path) -> Path:
    """Best valid clip accuracy against each sampled parameter (log axis for log-uniform), colour = source."""
    swept = [d for d in dims if d.swept and d.key != SOURCE_KEY] or [Dimension(SOURCE_KEY, "grid", ())]
    fig = _figure(4.0 * len(swept), 3.4)
    axes = fig.subplots(1, len(swept), squeeze=False)[0]
    scored = [r for r in rows if r.get(SCORE) is not None]
    sources = list(dict.fromkeys(str(r["source"]) for r in scored))
    colors = {s: f"C{i % 10}" for i, s in enumerate(sources)}
    for ax, dim in zip(axes, swept):
        values = [r.get(dim.key) for r in scored]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            xs = [float(v) for v in values]
        else:
            categories = list(dict.fromkeys(map(str, values)))
            xs = [categories.index(str(v)) for v in values]
            ax.set_xticks(range(len(categories)), categories, rotation=20, fontsize=8)
        for source in sources:
            pts = [(x, r[SCORE]) for x, r in zip(xs, scored) if str(r["source"]) == source]
            if pts:
                ax.scatter(*zip(*pts), color=colors[source], label=source, s=24, alpha=0.8)
        positive = numeric and xs and min(xs) > 0
        if dim.kind == "loguniform" or (positive and max(xs) / min(xs) >= 100):
            ax.set_xscale("log")
        ax.set(xlabel=dim.key, ylabel="best valid clip accuracy", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    if sources:
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


# ----------------------------------------------------------------------------------------------- running


def _check_sources(sources: Mapping[str, str], names: Sequence[str], log: Callable[[str], None]) -> dict[str, str]:
    resolved = {}
    for name in names:
        path = sources[name]
        manifest = read_manifest(path)
        shape = manifest.get("mel", {}).get("shape")
        log(f"source {name}: {path} ({len(manifest['labels'])} genres, input {shape}, "
            f"{manifest.get('source', {}).get('kind', 'audio')})")
        resolved[name] = str(storage.norm(path))
    return resolved


def _save_state(experiment: str, payload: Mapping[str, Any]) -> None:
    _write_bytes(_join(experiment, STATE_FILE), json.dumps(payload, indent=2).encode())


def _load_state(experiment: str, *, name: str, storage: str) -> dict[str, Any]:
    raw = _read_bytes(_join(experiment, STATE_FILE))
    if raw is None:
        known = [n for n in _list_names(storage) if _read_bytes(_join(storage, n, STATE_FILE)) is not None]
        raise ConfigError(f"--resume {name}: no sweep of that name in {storage} "
                          f"(sweeps there: {', '.join(known) or 'none'}; --out or tune.storage_path must match)")
    return json.loads(raw)


def _run_tuner(
    *,
    spec: _SweepSpec,
    name: str,
    storage: str,
    param_space: Mapping[str, Any] | None,
    resume: bool,
    config: Config,
    concurrency: int,
    asha: bool,
    max_epochs: int,
    progress: bool,
) -> Any:
    """Build (or restore) the Tuner and run it; returns the ``ResultGrid``."""
    from ray import tune as rt
    from ray.tune.search.basic_variant import BasicVariantGenerator

    tc = config.tune
    trainable = rt.with_resources(rt.with_parameters(_trial_driver, spec=spec), dict(DRIVER_RESOURCES))
    path = _join(storage, name)
    if resume:
        tuner = rt.Tuner.restore(path, trainable=trainable, resume_errored=True)
    else:
        mode = "min" if tc.metric.endswith("loss") else "max"
        scheduler = (_PerSourceASHA(max_t=max_epochs, grace_period=tc.grace_period,
                                    reduction_factor=tc.reduction_factor) if asha else None)
        if tc.search == "optuna":
            search_alg, limit = _optuna(tc.seed), concurrency
        else:
            search_alg, limit = BasicVariantGenerator(max_concurrent=concurrency, random_state=tc.seed), None
        tuner = rt.Tuner(
            trainable,
            param_space=dict(param_space or {}),
            tune_config=rt.TuneConfig(
                metric=tc.metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                num_samples=tc.num_samples, max_concurrent_trials=limit,
                # A fresh actor per trial: a reused one would still hold the stopped trial's Train run.
                reuse_actors=False, trial_dirname_creator=_trial_dirname,
            ),
            run_config=rt.RunConfig(name=name, storage_path=storage, verbose=1 if progress else 0,
                                    callbacks=[_PlacementGroupJanitor()]),
        )  # fmt: skip
    return tuner.fit()


def _optuna(seed: int) -> Any:
    try:
        import optuna  # noqa: F401
    except ImportError as e:
        raise ConfigError("tune.search=optuna needs Optuna: pip install spectrotune[optuna]") from e
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=seed)


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


def _sweep_inputs(config: Config, log: Callable[[str], None]) -> tuple[list[Dimension], list[str], dict[str, str]]:
    tc = config.tune
    if tc.metric not in _metric_keys():
        raise ConfigError(f"tune.metric={tc.metric!r}: not a reported metric (one of {', '.join(_metric_keys())})")
    if tc.search == "optuna":
        _optuna(tc.seed)  # fail before anything starts
    dims = parse_space(tc.space)
    names = _sources_of(config, dims)
    validate_space(config, dims)
    sources = _check_sources(config.sources, names, log)
    return dims, names, sources


def _metric_keys() -> tuple[str, ...]:
    from spectrotune.training.train import METRIC_KEYS

    return tuple(k for k in METRIC_KEYS if k not in ("epoch", "attempt"))


def _max_epochs(config: Config, dims: Sequence[Dimension]) -> int:
    dim = next((d for d in dims if d.key == "train.epochs"), None)
    if dim is None:
        return config.train.epochs
    return int(max(dim.candidates()))


def _prepare_run(config: Config, *, out: Path | str, resume: str | None, kind: str, folds: int | None,
                 log: Callable[[str], None]) -> tuple[Config, str, str, dict[str, Any] | None]:
    """Resolve name, storage and (when resuming) the saved sweep state; refuse to overwrite a sweep."""
    from ray import tune as rt

    root = _storage_path(config, out)
    if resume:
        path = _join(root, resume)
        state = _load_state(path, name=resume, storage=root)
        if not rt.Tuner.can_restore(path):
            raise ConfigError(f"--resume {resume}: {path} has no Tune state (the driver stopped before the first "
                              "trial started); run it again without --resume")
        if state.get("kind") != kind:
            raise ConfigError(f"--resume {resume}: that is a {state.get('kind')} run, not a {kind}"
                              + (" (add --cv K)" if state.get("kind") == "cv" else " (drop --cv)"))
        saved = build(Config, state["config"], origin=_join(path, STATE_FILE))
        if saved.hash() != config.hash() and config.sources:
            log(f"resuming {resume} with the config saved with it (the config given now differs and is ignored)")
        return saved, resume, root, state
    name = sweep_name(config, folds=folds)
    path = _join(root, name)
    if rt.Tuner.can_restore(path):
        raise OutputExistsError(f"sweep {name} already exists at {path}: continue it with --resume {name}, or set "
                                f"tune.name for a new one")
    return config, name, root, None


def tune(
    config: Config,
    *,
    out: str | Path,
    resume: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
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
    return _published(out, "sweep.json", lambda local, published: _sweep(
        config, out=local, published=published, resume=resume, progress=progress, log=log))


def _published(out: str | Path, marker: str, run: Callable[[Path, Path | str], tuple[Any, str | None]]) -> Any:
    """Run ``run(local folder, published path)`` and publish the folder as ``out`` (a URI: uploaded, ``marker``
    last); a failure message it returns is raised only after its files are published."""
    published = storage.norm(out)
    with storage.local_output(published, last=[marker]) as local:
        result, failure = run(local, published)
    if failure:
        raise SpectrotuneError(failure)
    return result


def _sweep(config: Config, *, out: Path, published: Path | str, resume: str | None, progress: bool,
           log: Callable[[str], None]) -> tuple[SweepResult, str | None]:
    """:func:`tune` writing its files into the local folder ``out``, which is published as ``published``."""
    from spectrotune.runtime import init_ray

    t0 = time.perf_counter()
    config, name, experiments, state = _prepare_run(config, out=published, resume=resume, kind="sweep", folds=None,
                                                    log=log)
    dims, names, sources = _sweep_inputs(config, log)
    tc = config.tune
    init_ray()
    concurrency = trial_concurrency(wanted=tc.max_concurrent_trials, cpus_per_trial=tc.cpus_per_trial,
                                    gpus_per_trial=tc.gpus_per_trial, cluster=ray.cluster_resources(), log=log)
    workers = config.train.num_workers
    path = _join(experiments, name)
    spec = _SweepSpec(config=config.to_dict(), sources=sources, experiment=path,
                      cpus_per_worker=tc.cpus_per_trial / workers, gpus_per_worker=tc.gpus_per_trial / workers)
    out.mkdir(parents=True, exist_ok=True)
    if state is None:
        _save_state(path, {"kind": "sweep", "name": name, "config": config.to_dict(), "created": time.time()})
    param_space = build_param_space(dims, sources=names, search=tc.search)
    asha = tc.scheduler == "asha"
    log(f"{'resuming' if resume else 'starting'} sweep {name} at {path}: {tc.num_samples} sample(s) x grid over "
        f"{len(names)} source(s), {concurrency} trial(s) at a time, search {tc.search}, scheduler {tc.scheduler}")
    grid = _run_tuner(spec=spec, name=name, storage=experiments, param_space=param_space, resume=bool(resume),
                      config=config, concurrency=concurrency, asha=asha, max_epochs=_max_epochs(config, dims),
                      progress=progress)
    rows = _collect(grid, spec, dims, asha=asha)
    best = _export_best(rows, spec, names, out=out, published=published, log=log)
    _write_results(rows, best, out, name=name, path=path)
    plot_trial_curves(rows, out / "trial_curves.png")
    plot_accuracy_vs_params(rows, dims, out / "accuracy_vs_params.png")
    summary = {"name": name, "path": path, "trials": len(rows),
               "status": {s: sum(r["status"] == s for r in rows) for s in dict.fromkeys(r["status"] for r in rows)},
               "best": best, "seconds": time.perf_counter() - t0}
    storage.write_text(out / "sweep.json", json.dumps(summary, indent=2, default=str))
    for source, b in best.items():
        log(f"best on {source}: trial {b['trial_id']} valid clip accuracy {b[SCORE]:.3f}, test clip accuracy "
            f"{b['test_clip_accuracy']:.3f}; bundle {b['bundle']}")
    table = storage.join(published, "results.md")
    log(f"sweep {name}: {len(rows)} trials in {time.perf_counter() - t0:.0f} s; table {table}")
    result = SweepResult(name=name, path=path, rows=[_public(r) for r in rows], best=best, out=published)
    return result, _all_failed(rows, table)


def _all_failed(rows: Sequence[Mapping[str, Any]], table: Path | str) -> str | None:
    """A run where no trial produced a result is an error (exit code 2), raised after its table is published."""
    if rows and all(r["status"] in (STATUS_ERROR, STATUS_NONE) for r in rows):
        first = next((r["error"] for r in rows if r.get("error")), "no result reported")
        return f"all {len(rows)} trials failed (first: {first}); see {table}"
    return None


def _export_best(rows: Sequence[Mapping[str, Any]], spec: _SweepSpec, names: Sequence[str], *, out: Path,
                 published: Path | str, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Export the best trial of every source as ``OUT/best/<source>/bundle`` and evaluate it on the test split."""
    from ray.train import Result

    from spectrotune.evaluation.evaluate import evaluate
    from spectrotune.training.train import export_run, plan_run

    best: dict[str, dict[str, Any]] = {}
    for source in names:
        scored = [r for r in rows if r["source"] == source and r[SCORE] is not None and r["status"] != STATUS_ERROR]
        if not scored:
            log(f"source {source}: no trial reported a result; nothing to export")
            continue
        row = min(scored, key=lambda r: (-r[SCORE], r["trial_id"]))  # ties: the earliest trial
        trial_params = dict(row["_params"])
        config, data, _ = _trial_setup(spec, trial_params)
        final = out / "best" / source
        partial = out / "best" / f".{source}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        plan = plan_run(data, config=config)
        result = Result.from_path(_join(spec.runs, row["trial_id"]))
        export_run(plan, result, partial, run_dir=None, log=lambda _: None)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        report = evaluate(final / "bundle", data, out=final / "report", config=config.evaluate, log=lambda _: None)
        record = {"trial_id": row["trial_id"], "params": trial_params,
                  SCORE: row[SCORE], "best_epoch": row["best_epoch"], "test_clip_accuracy": report["clip_accuracy"],
                  "bundle": str(storage.join(published, "best", source, "bundle")),
                  "report": str(storage.join(published, "best", source, "report"))}
        storage.write_text(final / "trial.json", json.dumps(record, indent=2, default=str))
        best[source] = record
    return best


# ----------------------------------------------------------------------------------------------- cross-validation


def stratified_folds(tracks: Mapping[str, str], *, k: int, seed: int) -> list[list[str]]:
    """Deal tracks into ``k`` folds, stratified by genre.

    Each genre's tracks are shuffled with a generator seeded by ``(seed, genre)`` and dealt round-robin, the
    deal continuing where the previous genre stopped, so fold sizes differ by at most one overall and each
    genre's count per fold by at most one. The result does not depend on the order of ``tracks``.

    Parameters
    ----------
    tracks : mapping
        ``{track_id: genre}``.
    k : int
        Number of folds, ``2 <= k <= len(tracks)``.
    seed : int

    Returns
    -------
    list of list of str
        ``k`` disjoint, sorted track-id lists covering every track.

    Raises
    ------
    ConfigError
        ``k < 2`` or more folds than tracks.
    """
    if k < 2:
        raise ConfigError(f"--cv {k}: cross-validation needs at least 2 folds")
    if k > len(tracks):
        raise ConfigError(f"--cv {k}: only {len(tracks)} tracks to split into {k} folds")
    by_genre: dict[str, list[str]] = {}
    for track_id, genre in tracks.items():
        by_genre.setdefault(str(genre), []).append(str(track_id))
    folds: list[list[str]] = [[] for _ in range(k)]
    position = 0
    for genre in sorted(by_genre):
        ids = sorted(by_genre[genre])
        digest = int.from_bytes(hashlib.blake2b(genre.encode(), digest_size=8).digest(), "little")
        order = np.random.default_rng([seed, digest]).permutation(len(ids))
        for j in order:
            folds[position % k].append(ids[j])
            position += 1
    return [sorted(fold) for fold in folds]


def _cv_tracks(data: str) -> dict[str, str]:
    """``{track_id: genre}`` of the train and valid splits (the test split stays held out)."""
    import pyarrow.dataset as pads

    dataset = open_dataset(data)
    table = dataset.to_table(columns=[TRACK_ID, GENRE],
                             filter=pads.field(SPLIT).isin(["train", "valid"]) & (pads.field(VARIANT) == CLEAN))
    pairs = dict(zip(table.column(TRACK_ID).to_pylist(), table.column(GENRE).to_pylist()))
    if not pairs:
        raise DatasetError(f"{data}: no clean train/valid segments to cross-validate on")
    return dict(sorted(pairs.items()))


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
    table = table[table["track_id"].isin(fold_of)].copy()
    out = []
    for i in range(len(folds)):
        table["split"] = ["test" if fold_of[t] == i else "train" for t in table["track_id"]]
        results = run_baselines(table, seed=seed)
        out.append({model: float(r["test_accuracy"]) for model, r in results.items()})
    return out


def _mean_std(values: Sequence[float]) -> dict[str, Any]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "per_fold": [float(v) for v in array]}


def cross_validate(
    config: Config,
    *,
    out: str | Path,
    folds: int,
    source: str | None = None,
    resume: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
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
    return _published(out, "cv.json", lambda local, published: _cross_validate(
        config, out=local, published=published, folds=folds, source=source, resume=resume, progress=progress,
        log=log))


def _cross_validate(config: Config, *, out: Path, published: Path | str, folds: int, source: str | None,
                    resume: str | None, progress: bool, log: Callable[[str], None]) -> tuple[CVResult, str | None]:
    """:func:`cross_validate` writing its files into the local folder ``out``, published as ``published``."""
    from spectrotune.runtime import init_ray

    t0 = time.perf_counter()
    if folds < 2:
        raise ConfigError(f"--cv {folds}: cross-validation needs at least 2 folds")
    config, name, experiments, state = _prepare_run(config, out=published, resume=resume, kind="cv", folds=folds,
                                                    log=log)
    if state is not None:
        folds = int(state["folds_k"])
    if not config.sources:
        raise ConfigError("cv: no prepared datasets; set sources.<name>=PATH")
    if source is not None and source not in config.sources:
        raise ConfigError(f"--source {source}: not in sources (have {', '.join(config.sources)})")
    names = [source] if source is not None else list(config.sources)
    if state is not None:
        names = list(state["folds"])
    sources = _check_sources(config.sources, names, log)
    if state is not None:
        assignment = {s: [list(f) for f in state["folds"][s]] for s in names}
    else:
        assignment = {s: stratified_folds(_cv_tracks(sources[s]), k=folds, seed=config.seed) for s in names}
    tc = config.tune
    init_ray()
    concurrency = trial_concurrency(wanted=tc.max_concurrent_trials, cpus_per_trial=tc.cpus_per_trial,
                                    gpus_per_trial=tc.gpus_per_trial, cluster=ray.cluster_resources(), log=log)
    workers = config.train.num_workers
    path = _join(experiments, name)
    spec = _SweepSpec(config=config.to_dict(), sources=sources, experiment=path,
                      cpus_per_worker=tc.cpus_per_trial / workers, gpus_per_worker=tc.gpus_per_trial / workers,
                      folds=assignment)
    out.mkdir(parents=True, exist_ok=True)
    if state is None:
        _save_state(path, {"kind": "cv", "name": name, "config": config.to_dict(), "folds_k": folds,
                           "folds": assignment, "created": time.time()})
    from ray import tune as rt

    param_space = {FOLD_KEY: rt.grid_search(list(range(folds))),
                   SOURCE_KEY: rt.grid_search(names) if len(names) > 1 else names[0]}
    cv_config = dataclasses.replace(config, tune=dataclasses.replace(tc, search="grid", num_samples=1))
    log(f"{'resuming' if resume else 'starting'} {folds}-fold cross-validation {name} at {path} on "
        f"{', '.join(names)}; {concurrency} fold(s) at a time")
    grid = _run_tuner(spec=spec, name=name, storage=experiments, param_space=param_space, resume=bool(resume),
                      config=cv_config, concurrency=concurrency, asha=False, max_epochs=config.train.epochs,
                      progress=progress)
    rows = _collect(grid, spec, [], asha=False)

    report: dict[str, dict[str, Any]] = {}
    for s in names:
        fold_rows = {int(r[FOLD_KEY]): r for r in rows if r["source"] == s}
        baselines = _fold_baselines(sources[s], assignment[s], seed=config.seed, log=log)
        per_fold = []
        for i, tracks in enumerate(assignment[s]):
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
            log(f"source {s}: {sum(v is None for v in cnn)} fold(s) without a CNN result; no CNN summary")
        for model in (baselines[0] if baselines else {}):
            summary[model] = _mean_std([b[model] for b in baselines])
        report[s] = {"folds": per_fold, "summary": summary}
    storage.write_text(out / "cv.json", json.dumps({"name": name, "path": path, "k": folds, "held_out": "test split",
                                              "sources": report}, indent=2))
    storage.write_text(out / "cv.md", _cv_markdown(name, folds, report))
    for s, r in report.items():
        for model, m in r["summary"].items():
            log(f"{s} {model}: clip accuracy {m['mean']:.3f} ± {m['std']:.3f} over {folds} folds")
    table = storage.join(published, "cv.md")
    log(f"cross-validation {name} done in {time.perf_counter() - t0:.0f} s; report {table}")
    return CVResult(name=name, path=path, folds=folds, sources=report, out=published), _all_failed(rows, table)


def _cv_markdown(name: str, k: int, report: Mapping[str, Mapping[str, Any]]) -> str:
    about = ("Folds by track, stratified by genre, over the train and valid splits (the test split is held out). "
             "CNN: valid clip accuracy after the last epoch; baselines: default hyperparameters, fit on the other "
             "folds. Mean ± sample standard deviation over folds.")
    lines = [f"# {k}-fold cross-validation {name}", "", about, ""]
    for source, r in report.items():
        models = list(r["summary"])
        lines += [f"## {source}", "",
                  _markdown_table([{"model": m, "mean ± std": f"{s['mean']:.3f} ± {s['std']:.3f}",
                                    **{f"fold {i}": v for i, v in enumerate(s["per_fold"])}}
                                   for m, s in r["summary"].items()],
                                  ["model", "mean ± std", *(f"fold {i}" for i in range(k))]) if models else "",
                  "", _markdown_table([{"fold": f["fold"], "tracks": f["n_tracks"], "status": f["cnn"]["status"],
                                        "best epoch": f["cnn"]["best_epoch"],
                                        "best clip accuracy": f["cnn"]["best_clip_accuracy"]}
                                       for f in r["folds"]],
                                      ["fold", "tracks", "status", "best epoch", "best clip accuracy"]), ""]
    return "\n".join(lines)
