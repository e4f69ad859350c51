"""What a sweep is outside Ray: its name and folders, the spec every trial receives, the per-trial event files, the
saved sweep state, and how many trials fit on the cluster at once.

Folders. A sweep is named ``tune.name`` or ``sweep-<config hash>`` (:func:`sweep_name`) and lives in
``tune.storage_path`` (a folder or a URI such as ``s3://bucket/sweeps``; default ``OUT/sweeps``)::

    <storage>/<sweep>/
      spectrotune-sweep.json      the sweep's kind and resolved config (resuming uses it, whatever the command says)
      tracking.json               the sweep's MLflow parent run (with tracking.mlflow_uri; spectrotune.tracking)
      runs/<trial id>/            each trial's Ray Train run (its epoch checkpoints)
      trial_state/<trial id>/     start-<ns>.json and fit-<ns>.json per driver start and per fit (the results
                                  table counts them); done.json, the epochs of a finished run; tracking.json,
                                  the trial's MLflow run
      ...                         Ray Tune's own experiment files

Resources. A trial's training workers ask Ray Train for ``tune.cpus_per_trial / train.num_workers`` CPUs and
``tune.gpus_per_trial / train.num_workers`` GPUs each. Concurrency is capped to what the cluster holds, leaving
one CPU for Ray Data's read tasks (:data:`RESERVED_CPUS`), so trials never wait on each other for resources on a
small machine (on a 2-CPU machine: one trial at a time with the defaults).

Models and data. A sweep may pick ``model.name`` among ``cnn``, ``crnn``, ``musicnn`` and ``vgg``; every model it can
pick must read every source's dataset (:func:`trial_backbones`: ``musicnn``/``vgg`` need sources prepared with the
musicnn front end, which ``cnn``/``crnn`` read too), and the pretrained checkpoints the trials start from are read
here, in the sweep's driver, and reach the trials in their :class:`SweepSpec` (no trial node needs the cache).

Pure Python: no ``ray`` (paths go through :mod:`spectrotune.storage`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectrotune import storage
from spectrotune.config import Config
from spectrotune.errors import ConfigError
from spectrotune.tuning.space import FOLD_KEY, SOURCE_KEY, Dimension, apply_params

logger = logging.getLogger(__name__)

__all__ = [
    "RESERVED_CPUS",
    "STATE_FILE",
    "SweepSpec",
    "load_state",
    "save_state",
    "storage_root",
    "sweep_name",
    "trial_backbones",
    "trial_concurrency",
]

STATE_FILE = "spectrotune-sweep.json"
RUNS = "runs"
TRIAL_STATE = "trial_state"
DONE = "done.json"
EVENTS = ("start", "fit")
# CPUs left free when capping concurrency: Ray Data read tasks need a whole CPU while training workers hold theirs.
RESERVED_CPUS = 1.0


def sweep_name(config: Config, *, folds: int | None = None) -> str:
    """The deterministic name of a sweep (``tune.name`` or ``sweep-<config hash>``; CV: ``cv<K>-...``)."""
    if folds is None:
        return config.tune.name or f"sweep-{config.hash()}"
    return f"{config.tune.name}-cv{folds}" if config.tune.name else f"cv{folds}-{config.hash()}"


def storage_root(config: Config, out: Path | str) -> str:
    """Where Ray Tune keeps the experiments: ``tune.storage_path``, else ``OUT/sweeps`` (local or a URI)."""
    given = config.tune.storage_path
    return str(storage.norm(given) if given else storage.join(out, "sweeps"))


@dataclass(frozen=True)
class SweepSpec:
    """What every trial needs besides its sampled parameters (handed to it with ``tune.with_parameters``).

    Attributes
    ----------
    config : dict
        The sweep's base config (:meth:`Config.to_dict`); a trial applies its parameters to it.
    sources : dict
        Source name -> prepared dataset path (normalised: absolute, or a URI).
    experiment : str
        The sweep's folder (``<storage>/<sweep>``; a string, as Ray takes it).
    cpus_per_worker, gpus_per_worker : float
        What each of a trial's ``train.num_workers`` training workers asks Ray Train for.
    folds : dict, optional
        Cross-validation only: per source, the ``k`` track-id lists of the folds.
    backbones : dict
        The pretrained checkpoints trials start from, by name (:func:`trial_backbones`).
    """

    config: dict[str, Any]
    sources: dict[str, str]
    experiment: str
    cpus_per_worker: float
    gpus_per_worker: float
    folds: dict[str, list[list[str]]] | None = None
    backbones: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def runs(self) -> str:
        """The folder holding every trial's Ray Train run (``<experiment>/runs``)."""
        return str(storage.join(self.experiment, RUNS))

    def trial_state(self, trial_id: str) -> str:
        """The folder of a trial's event files and ``done.json``."""
        return str(storage.join(self.experiment, TRIAL_STATE, trial_id))

    def trial_inputs(self, params: Mapping[str, Any]) -> tuple[Config, str, dict[str, list[str]] | None]:
        """A trial's config (with the sweep's per-worker CPUs), dataset path and, in CV, its train/valid tracks."""
        config = apply_params(self.config, params, origin=f"trial {dict(params)}")
        train = dataclasses.replace(config.train, cpus_per_worker=self.cpus_per_worker)
        config = dataclasses.replace(config, train=train)
        source = params[SOURCE_KEY]
        tracks = None
        if self.folds is not None:
            folds = self.folds[source]
            k = int(params[FOLD_KEY])
            tracks = {"train": [t for i, fold in enumerate(folds) if i != k for t in fold], "valid": list(folds[k])}
        return config, self.sources[source], tracks

    def record_event(self, trial_id: str, event: str) -> None:
        """Leave a ``<event>-<ns>.json`` file for a trial (``event`` one of ``start``, ``fit``)."""
        payload = json.dumps({"event": event, "time": time.time(), "pid": os.getpid()}).encode()
        # In place, not aside + rename: a driver SIGKILLed between the two would leave no event, and a resumed
        # sweep would count a fit that happened as none (the killed-driver test saw fits=0 that way).
        storage.write_bytes(storage.join(self.trial_state(trial_id), f"{event}-{time.time_ns()}.json"), payload,
                            atomic=False)

    def trial_events(self, trial_id: str) -> dict[str, int]:
        """How many times the trial's driver started and called ``fit`` (``{"start": n, "fit": m}``)."""
        names = storage.list_files(self.trial_state(trial_id))
        return {event: sum(1 for n in names if n.startswith(event + "-")) for event in EVENTS}

    def read_done(self, trial_id: str) -> list[dict[str, Any]] | None:
        """The epochs (one metrics dict each) of the trial's finished Train run, or None when it has not finished."""
        path = storage.join(self.trial_state(trial_id), DONE)
        return json.loads(storage.read_bytes(path)) if storage.is_file(path) else None

    def write_done(self, trial_id: str, history: Sequence[Mapping[str, Any]]) -> None:
        """Record that the trial's Train run finished with these epochs (a resumed trial re-reports them)."""
        storage.write_bytes(storage.join(self.trial_state(trial_id), DONE), json.dumps(list(history)).encode())


def trial_backbones(config: Config, dims: Sequence[Dimension], sources: Mapping[str, str]) -> dict[str, Any]:
    """Check every ``model.name`` (and ``model.pretrained``) a sweep can pick against every source's dataset, and
    read the checkpoints those models start from (``{name: PretrainedBackbone}``) from the cache, here.

    Raises
    ------
    ConfigError
        A model that cannot read a source's dataset (``musicnn`` on a log-mel dataset), naming both.
    InputError
        A checkpoint is not in the cache (``spectrotune fetch musicnn``).
    """
    from spectrotune.dataset import read_manifest
    from spectrotune.models.params import MODEL_PARAMS, pretrained_of
    from spectrotune.training.transfer import check_model_input, load_backbone

    def candidates(key: str, default: Any) -> list[Any]:
        dim = next((d for d in dims if d.key == key), None)
        return list(dim.candidates()) if dim is not None else [default]

    base, found = config.to_dict(), {}
    for source, path in sources.items():
        manifest = read_manifest(path)
        for name in candidates("model.name", config.model.name):
            for chosen in candidates("model.pretrained", None) if "pretrained" in MODEL_PARAMS[name] else [None]:
                trial = apply_params(base, {"model.name": name, **({"model.pretrained": chosen} if chosen else {})},
                                     origin="tune.space")
                try:
                    check_model_input(trial, manifest)
                except ConfigError as e:
                    raise ConfigError(f"tune.space: source {source} ({path}): {e}; sweep each model over sources "
                                      "prepared for it") from e
                backbone = load_backbone(trial, manifest)  # the front-end check for every source
                if backbone is not None:
                    found.setdefault(pretrained_of(name, trial.model.params()), backbone)
    return found


def save_state(experiment: str, payload: Mapping[str, Any]) -> None:
    """Write the sweep's state file (kind, name, resolved config, CV folds) into its folder."""
    storage.write_bytes(storage.join(experiment, STATE_FILE), json.dumps(payload, indent=2).encode())


def load_state(experiment: str, *, name: str, root: str) -> dict[str, Any]:
    """The state file of the sweep ``name`` at ``experiment`` (in ``root``, the storage of all sweeps).

    Raises
    ------
    ConfigError
        No such sweep; the message lists the sweeps found in ``root``.
    """
    path = storage.join(experiment, STATE_FILE)
    if not storage.is_file(path):
        known = sorted({f.split("/")[0] for f in storage.list_files(root) if f.count("/") == 1
                        and f.endswith("/" + STATE_FILE)})
        raise ConfigError(f"--resume {name}: no sweep of that name in {root} "
                          f"(sweeps there: {', '.join(known) or 'none'}; --out or tune.storage_path must match)")
    return json.loads(storage.read_bytes(path))


def trial_concurrency(
    *,
    wanted: int,
    cpus_per_trial: float,
    gpus_per_trial: float,
    cluster: Mapping[str, float],
    log: Callable[[str], None] = logger.info,
) -> int:
    """How many trials run at once: ``wanted`` (0 = as many as fit), capped to what the cluster holds.

    One CPU is left for Ray Data (:data:`RESERVED_CPUS`). A cluster reporting no CPUs (an autoscaler starting
    from zero) is not capped.

    Parameters
    ----------
    wanted : int
        ``tune.max_concurrent_trials``.
    cpus_per_trial, gpus_per_trial : float
        What one trial's workers hold together (GPUs may be fractional).
    cluster : mapping
        ``ray.cluster_resources()``: ``{"CPU": n, "GPU": m, ...}``.

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
