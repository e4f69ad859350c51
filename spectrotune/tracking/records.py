"""What tracking writes, as plain data: run parameters from a config, metric names, the record of which MLflow run
a run folder, a sweep trial or a bundle belongs to, and tracking URIs made absolute. Pure Python (no ``mlflow``,
no ``ray``).

Names. Per epoch the keys of :data:`~spectrotune.schema.METRIC_KEYS` (``train_loss`` ... ``samples_per_second``,
``attempt``) at step ``epoch``, in MLflow and TensorBoard alike. An evaluation adds ``test_clip_accuracy``,
``test_segment_accuracy``, ``test_macro_f1``, ``test_clip_accuracy_<kind>_<snr>dB`` per robustness variant and
``baseline_<model>_test_accuracy`` (:func:`report_metrics`).

Records. ``tracking.json`` (:data:`~spectrotune.schema.TRACKING_JSON`, a :class:`RunRecord`) sits in a train run's
Ray Train folder (a rerun continues the MLflow run it names), in a sweep's experiment folder (``tracking/`` holds
the parent's and one per trial) and in a bundle (``evaluate`` attaches its report to that run).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from spectrotune import storage
from spectrotune.errors import ConfigError, TrackingError
from spectrotune.schema import METRIC_KEYS, TRACKING_JSON
from spectrotune.typed_config import JsonRecord

__all__ = ["MAX_PARAM_CHARS", "RunRecord", "epoch_metrics", "flat_params", "metric_name", "normalize_uri",
           "read_record", "report_metrics"]

#: MLflow refuses longer parameter values; longer ones are cut and end with "...".
MAX_PARAM_CHARS = 6000
#: MLflow tracking URIs without a ``scheme:`` that still name no local folder (Databricks profiles).
_BARE_URIS = ("databricks", "databricks-uc", "uc")


@dataclass(frozen=True)
class RunRecord(JsonRecord):
    """Which MLflow run something is logged to: the tracking URI (absolute), the experiment and the run id."""

    FILE: ClassVar[str] = TRACKING_JSON
    FORMAT: ClassVar[str] = "spectrotune-tracking/1"
    KIND: ClassVar[str] = "tracking"
    WHAT: ClassVar[str] = "tracking record"
    ERROR: ClassVar[type[Exception]] = TrackingError

    format: str
    tracking_uri: str
    experiment: str
    experiment_id: str
    run_id: str

    @classmethod
    def of(cls, *, tracking_uri: str, experiment: str, experiment_id: str, run_id: str) -> RunRecord:
        return cls(format=cls.FORMAT, tracking_uri=tracking_uri, experiment=experiment,
                   experiment_id=experiment_id, run_id=run_id)


def read_record(folder: str | Path) -> RunRecord | None:
    """The :class:`RunRecord` in ``folder`` (a local folder or a URI), or None when there is none.

    Raises
    ------
    TrackingError
        The file exists but is not a tracking record (the message names it).
    """
    path = storage.join(folder, TRACKING_JSON)
    if not storage.is_file(path):
        return None
    try:
        data = json.loads(storage.read_bytes(path))
    except ValueError as e:
        raise TrackingError(f"{path}: unreadable tracking record: {e}") from e
    return RunRecord.from_dict(data, origin=str(path))


def normalize_uri(uri: str, *, base: Path | None = None) -> tuple[str, str | None]:
    """``(tracking URI, artifact location or None)`` for ``tracking.mlflow_uri``.

    A plain local folder becomes ``sqlite:///<abs folder>/mlflow.db`` with artifacts in ``<folder>/artifacts`` (the
    file store of MLflow 3 refuses new runs unless ``MLFLOW_ALLOW_FILE_STORE=true``); a relative ``sqlite:///``
    path becomes absolute. Both matter because Ray's controller process may run in another working directory.
    Other URIs are returned unchanged, with MLflow's default artifact location.
    """
    uri = uri.strip()
    base = base or Path.cwd()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((base / uri[len("sqlite:///"):]).resolve()), None
    if uri in _BARE_URIS or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", uri):
        return uri, None
    folder = (base / uri).resolve()
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 3] + "..."


def flat_params(config: Mapping[str, Any], *, prefix: str = "") -> dict[str, str]:
    """A resolved config (:meth:`~spectrotune.config.Config.to_dict`) as MLflow parameters, one per leaf.

    ``{"train": {"lr": 0.01}}`` -> ``{"train.lr": "0.01"}``: strings as they are, everything else as JSON (lists,
    ``null``, ``true``). The ``tracking`` section is left out: it is not part of the run (the config hash leaves it
    out too) and a parameter, once logged, cannot change.
    """
    out: dict[str, str] = {}
    for key, value in config.items():
        if not prefix and key == "tracking":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat_params(value, prefix=name + "."))
        else:
            out[name] = _param_value(value)
    return out


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def epoch_metrics(metrics: Mapping[str, Any]) -> tuple[int, dict[str, float]]:
    """``(epoch, {name: value})`` of one epoch's report: the :data:`~spectrotune.schema.METRIC_KEYS` but ``epoch``,
    finite numbers only (a diverged run's NaN loss is left out rather than refused by MLflow).

    Raises
    ------
    ConfigError
        The report has no ``epoch`` (not a spectrotune training report).
    """
    if "epoch" not in metrics:
        raise ConfigError(f"not an epoch report (no 'epoch' among {sorted(metrics)[:8]})")
    values = {key: _finite(metrics.get(key)) for key in METRIC_KEYS if key != "epoch"}
    return int(metrics["epoch"]), {key: value for key, value in values.items() if value is not None}


def metric_name(text: str) -> str:
    """``text`` with the characters MLflow refuses in metric names replaced (``white@10dB`` -> ``white_10dB``)."""
    return re.sub(r"[^\w.\-/ :]", "_", text)


def report_metrics(report: Mapping[str, Any], *, prefix: str = "test_") -> dict[str, float]:
    """The numbers of an evaluation report (:func:`spectrotune.evaluation.evaluate.evaluate`) as MLflow metrics.

    ``test_clip_accuracy``, ``test_segment_accuracy``, ``test_macro_f1``, one ``test_clip_accuracy_<variant>``
    per robustness row (``white@10dB`` -> ``test_clip_accuracy_white_10dB``) and ``baseline_<model>_test_accuracy``
    per baseline; ``prefix`` replaces ``test_`` (a sweep's parent logs ``best/<source>/test_...``).
    """
    out: dict[str, float] = {}
    for key in ("clip_accuracy", "segment_accuracy", "macro_f1"):
        value = _finite(report.get(key))
        if value is not None:
            out[f"{prefix}{key}"] = value
    robustness = report.get("robustness") or {}
    for row in robustness.get("results", []) if robustness.get("available") else []:
        value = _finite(row.get("clip_accuracy"))
        if value is not None:
            out[metric_name(f"{prefix}clip_accuracy_{row['variant']}")] = value
    baselines = report.get("baselines") or {}
    for model, result in (baselines.get("results") or {}).items() if baselines.get("available") else []:
        value = _finite(result.get("test_accuracy"))
        if value is not None:
            base = prefix[: -len("test_")] if prefix.endswith("test_") else prefix
            out[metric_name(f"{base}baseline_{model}_test_accuracy")] = value
    return out
