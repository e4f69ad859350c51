"""A sweep's results: one row per trial from Tune's ``ResultGrid``, the best trial per source, the tables, the
summary and the plots.

Outputs (``--out OUT``)::

    OUT/
      results.csv, results.md     one row per trial: id, source, sampled parameters, status, epochs run, best
                                  epoch, best valid clip accuracy (and segment accuracy), driver starts, fits
      trial_curves.png            valid clip accuracy per epoch, one panel per source
      accuracy_vs_params.png      best valid clip accuracy against each sampled parameter
      best/<source>/bundle/       the best trial of each source as a model bundle (its best epoch)
      best/<source>/report/       its evaluation on the source's test split (spectrotune evaluate)
      sweep.json                  the summary: name, path, best trial per source with its test accuracy

Status: ``TERMINATED`` (all epochs), ``STOPPED (ASHA)``, ``STOPPED (patience)`` (``train.patience``),
``ERROR`` (the message is in the ``error`` column).

Pure Python: no ``ray`` (a ``ResultGrid`` is read through its attributes only).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spectrotune import storage
from spectrotune.config import Config
from spectrotune.evaluation.plots import figure, save_figure
from spectrotune.schema import REPORT_JSON, REPORT_MD, RESULTS_CSV, SCORE, SWEEP_JSON
from spectrotune.tracking.records import report_metrics
from spectrotune.tracking.sweeps import TrialOutcome
from spectrotune.tuning.plan import SweepSpec
from spectrotune.tuning.space import FOLD_KEY, SOURCE_KEY, Dimension

__all__ = [
    "STATUS_ASHA",
    "STATUS_DONE",
    "STATUS_ERROR",
    "STATUS_NONE",
    "STATUS_PATIENCE",
    "all_failed",
    "best_trial",
    "collect_rows",
    "markdown_table",
    "plot_accuracy_vs_params",
    "plot_trial_curves",
    "public_row",
    "sweep_summary",
    "tracking_summary",
    "trial_status",
    "write_results",
]

STATUS_DONE = "TERMINATED"
STATUS_ASHA = "STOPPED (ASHA)"
STATUS_PATIENCE = "STOPPED (patience)"
STATUS_ERROR = "ERROR"
STATUS_NONE = "NO RESULTS"
#: How each status ends the trial's MLflow run (spectrotune.tracking): FINISHED, KILLED (ASHA) or FAILED.
TRACKING_STATE = {STATUS_DONE: "done", STATUS_PATIENCE: "done", STATUS_ASHA: "stopped", STATUS_ERROR: "failed",
                  STATUS_NONE: "failed"}

RESULTS_MD = "results.md"
TRIAL_CURVES_PNG = "trial_curves.png"
ACCURACY_VS_PARAMS_PNG = "accuracy_vs_params.png"
BEST_DIR = "best"  #: ``OUT/best/<source>/`` holds the best trial's bundle, report and ``trial.json``
TRIAL_JSON = "trial.json"
REPORT_DIR = "report"  #: ``OUT/best/<source>/report``: the best bundle evaluated on the test split


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


def trial_status(history: Sequence[Mapping[str, Any]], *, error: Any, config: Config, asha: bool) -> str:
    """Why a trial ended: one of the ``STATUS_*`` names.

    Parameters
    ----------
    history : sequence of dict
        The trial's epochs, in order, each with ``epoch`` (1-based) and ``valid_clip_accuracy``.
    error : exception or None
        Tune's error for the trial.
    config : Config
        The trial's config (``train.epochs``, ``train.patience``).
    asha : bool
        Whether ASHA could have stopped it (an early end is then ASHA's, unless patience explains it).
    """
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


_UNIQUE_SUFFIX = re.compile(r"^(?P<id>.+_\d{5})_[0-9a-f]{4}$")  # Tune's "_" + 4 hex digits on a folder that existed


def result_trial_id(result: Any) -> str:
    """The id of a ``ResultGrid`` entry's trial: the ``trial_id`` its reports carry, else its folder's name.

    The folder is not always the id: a trial restored by ``--resume`` whose folder the killed driver had already
    made gets Tune's unique suffix (``4433e_00001_01f0``, ``ray.tune.experiment.trial._create_unique_logdir_name``),
    while its event files, its ``done.json`` and its Train run are named by the id (``4433e_00001``). A trial that
    never reported has its folder's name with such a suffix removed.
    """
    reported = (getattr(result, "metrics", None) or {}).get("trial_id")
    if reported:
        return str(reported)
    name = Path(str(result.path)).name
    suffixed = _UNIQUE_SUFFIX.match(name)
    return suffixed.group("id") if suffixed else name


def collect_rows(grid: Iterable[Any], spec: SweepSpec, dims: Sequence[Dimension], *,
                 asha: bool) -> list[dict[str, Any]]:
    """One row per trial of a ``ResultGrid``, in trial-id order.

    A row holds ``trial_id``, ``source``, (CV) ``fold``, each swept key, ``status``, ``epochs_run``,
    ``best_epoch``, ``valid_clip_accuracy`` and ``valid_accuracy`` at the best epoch,
    ``last_valid_clip_accuracy``, ``driver_starts``, ``fits`` and ``error``; and, for the driver only (see
    :func:`public_row`), ``_history`` (``epoch``, ``valid_clip_accuracy`` per epoch) and ``_params``.
    """
    rows = []
    swept = [d.key for d in dims if d.swept and d.key != SOURCE_KEY]
    for result in grid:
        params = dict(result.config or {})
        trial_id = result_trial_id(result)
        config, _, _ = spec.trial_inputs(params)
        history = _history(result)
        status = trial_status(history, error=result.error, config=config, asha=asha)
        best = max(history, key=lambda h: float(h[SCORE])) if history else None
        events = spec.trial_events(trial_id)
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


def public_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row without its driver-only (``_``-prefixed) entries: what the tables and :class:`SweepResult` hold."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def best_trial(rows: Sequence[Mapping[str, Any]], source: str) -> Mapping[str, Any] | None:
    """The row of ``source`` with the highest valid clip accuracy (ties: the earliest trial), None if no trial of
    it reported a result."""
    scored = [r for r in rows if r["source"] == source and r[SCORE] is not None and r["status"] != STATUS_ERROR]
    return min(scored, key=lambda r: (-r[SCORE], r["trial_id"])) if scored else None


def sweep_summary(rows: Sequence[Mapping[str, Any]], best: Mapping[str, Any], *, name: str, path: str,
                  seconds: float) -> dict[str, Any]:
    """``sweep.json``: name, experiment path, trial count, trials per status, best trial per source, seconds."""
    return {"name": name, "path": path, "trials": len(rows),
            "status": {s: sum(r["status"] == s for r in rows) for s in dict.fromkeys(r["status"] for r in rows)},
            "best": dict(best), "seconds": seconds}


def tracking_summary(rows: Sequence[Mapping[str, Any]], best: Mapping[str, Mapping[str, Any]],
                     out: Path) -> dict[str, Any]:
    """What a sweep's MLflow runs get at the end, as the arguments of
    :meth:`~spectrotune.tracking.sweeps.SweepTracking.finish`: each trial's ``outcomes``, the parent's ``metrics``
    (per source the best trial's ``best/<source>/valid_clip_accuracy`` and its test evaluation,
    ``best/<source>/test_clip_accuracy`` ...), ``tags`` (``best/<source>/trial_id``) and ``files`` (the tables, plots
    and best reports in ``out``) by artifact folder."""
    outcomes = []
    for r in rows:
        final = {"best_epoch": r["best_epoch"], f"best_{SCORE}": r[SCORE], "epochs_run": r["epochs_run"]}
        outcomes.append(TrialOutcome(trial_id=r["trial_id"], status=r["status"], state=TRACKING_STATE[r["status"]],
                                     metrics={k: float(v) for k, v in final.items() if v is not None}))
    metrics: dict[str, float] = {}
    files = {"": [out / n for n in (RESULTS_CSV, RESULTS_MD, SWEEP_JSON, TRIAL_CURVES_PNG, ACCURACY_VS_PARAMS_PNG)]}
    for source, b in best.items():
        metrics[f"best/{source}/{SCORE}"] = float(b[SCORE])
        report_dir = out / BEST_DIR / source / REPORT_DIR
        report = json.loads((report_dir / REPORT_JSON).read_text(encoding="utf-8"))
        metrics.update(report_metrics(report, prefix=f"best/{source}/test_"))
        files[f"{BEST_DIR}/{source}"] = [report_dir / n for n in (REPORT_JSON, REPORT_MD, *report["files"].values())]
    tags = {f"{BEST_DIR}/{source}/trial_id": str(b["trial_id"]) for source, b in best.items()}
    return {"outcomes": outcomes, "metrics": metrics, "files": files, "tags": tags}


def all_failed(rows: Sequence[Mapping[str, Any]], table: Path | str) -> str | None:
    """The error message of a run where no trial produced a result (exit code 2), else None; the driver raises it
    after publishing ``table``."""
    if rows and all(r["status"] in (STATUS_ERROR, STATUS_NONE) for r in rows):
        first = next((r["error"] for r in rows if r.get("error")), "no result reported")
        return f"all {len(rows)} trials failed (first: {first}); see {table}"
    return None


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``columns``; floats with 4 significant digits, None as an empty cell."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines)


def write_results(rows: Sequence[Mapping[str, Any]], best: Mapping[str, Mapping[str, Any]], out: Path, *,
                  name: str, path: str) -> None:
    """Write ``out/results.csv`` (trial-id order) and ``out/results.md`` (best first per source, then the best
    trial of each source with its test clip accuracy)."""
    public = [public_row(r) for r in rows]
    columns = list(dict.fromkeys(k for r in public for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in public:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    storage.write_text(out / RESULTS_CSV, buffer.getvalue())

    ranked = sorted(public, key=lambda r: (str(r["source"]), r["status"] == STATUS_ERROR,
                                           -(r[SCORE] if r[SCORE] is not None else -1.0), r["trial_id"]))
    shown = [c for c in columns if c != "error"] + (["error"] if any(r.get("error") for r in public) else [])
    text = [f"# Sweep {name}", "", f"Experiment: `{path}`; {len(rows)} trials. Best valid clip accuracy first.",
            "", markdown_table(ranked, shown), ""]
    if best:
        text += ["## Best trial per source", "",
                 markdown_table([{"source": s, **b} for s, b in best.items()],
                                ["source", "trial_id", SCORE, "test_clip_accuracy", "bundle"]), ""]
    storage.write_text(out / RESULTS_MD, "\n".join(text))


def plot_trial_curves(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Valid clip accuracy per epoch of every trial (rows from :func:`collect_rows`), one panel per source;
    ASHA-stopped trials dashed. Writes a PNG to ``path``."""
    from matplotlib.ticker import MaxNLocator

    sources = list(dict.fromkeys(str(r["source"]) for r in rows)) or ["-"]
    fig = figure(4.5 * len(sources), 3.6)
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
    save_figure(fig, path)
    return Path(path)


def plot_accuracy_vs_params(rows: Sequence[Mapping[str, Any]], dims: Sequence[Dimension],
                            path: str | Path) -> Path:
    """Best valid clip accuracy against each swept parameter (log axis for log-uniform), colour = source; one
    panel per swept key (``source`` alone when nothing else is swept). Writes a PNG to ``path``."""
    swept = [d for d in dims if d.swept and d.key != SOURCE_KEY] or [Dimension(SOURCE_KEY, "grid", ())]
    fig = figure(4.0 * len(swept), 3.4)
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
    save_figure(fig, path)
    return Path(path)
