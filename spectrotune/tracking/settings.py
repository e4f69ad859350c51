"""The ``tracking`` config section: where runs, trials and evaluations are logged (TensorBoard, MLflow).

It lives here, beside the code that reads it, and is the ``tracking`` field of :class:`spectrotune.config.Config`
(built and checked like every other section: unknown keys fail at load, naming the key). Tracking does not change
what is trained, so :meth:`~spectrotune.config.Config.hash` leaves this section out: turning MLflow on for a rerun
continues the same run. Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spectrotune.errors import ConfigError

__all__ = ["TrackingConfig"]


@dataclass(frozen=True)
class TrackingConfig:
    """Experiment tracking of ``train``, ``tune``, ``cv`` and ``evaluate``.

    Attributes
    ----------
    tensorboard : bool
        TensorBoard event files (tensorboardX, no TensorFlow): ``OUT/tb/<run name>/`` for ``train``,
        ``OUT/tb/<trial id>/`` for each trial of a sweep; ``tensorboard --logdir OUT/tb`` shows them side by side.
    mlflow_uri : str or None
        MLflow tracking URI (off when None): an ``http(s)://`` server, ``sqlite:///file.db``, any URI MLflow takes,
        or a plain local folder (kept as ``FOLDER/mlflow.db`` with artifacts in ``FOLDER/artifacts``).
        Needs ``pip install 'spectrotune[mlflow]'``.
    experiment : str or None
        MLflow experiment; default the run's name (``train``) or the sweep's (``tune``, ``cv``).
    tags : dict
        Extra tags on every MLflow run (``{team: audio}``).
    log_bundle : bool
        Also upload the model bundle as an artifact of the train run (``bundle/``).
    strict : bool
        An MLflow that cannot be used (not installed, server unreachable, bad URI) is an error instead of one
        warning (``--strict-tracking``).
    """

    tensorboard: bool = True
    mlflow_uri: str | None = None
    experiment: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    log_bundle: bool = False
    strict: bool = False

    def __post_init__(self) -> None:
        for key in ("mlflow_uri", "experiment"):
            value = getattr(self, key)
            if value is not None and not value.strip():
                raise ConfigError(f"tracking.{key}: must not be empty (leave it null to "
                                  f"{'turn MLflow off' if key == 'mlflow_uri' else 'use the run name'})")
