"""The text of the reports: ``report.md`` and the terminal headline of ``spectrotune evaluate``, and the Markdown
table of ``spectrotune baseline`` (``baselines.md``).

Pure string formatting of the report dicts that :func:`spectrotune.evaluation.evaluate.evaluate` and
:func:`spectrotune.evaluation.baselines.run_baselines` return; nothing here computes a score or reads a file.
Numbers are printed with three decimals, missing ones as an em dash. No ``ray``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spectrotune.schema import CONFUSION_PNG

__all__ = ["baselines_markdown", "headline", "report_markdown"]


# --------------------------------------------------------------------------------------------------------------
# Evaluation report


def headline(report: Mapping[str, Any]) -> str:
    """One or two lines for the terminal: the headline numbers, worst robustness point, best baseline."""
    line = (f"clip accuracy {report['clip_accuracy']:.3f} (segment {report['segment_accuracy']:.3f}, macro-F1 "
            f"{report['macro_f1']:.3f}) on {report['n_test_tracks']} test tracks")
    extra = []
    rob = report.get("robustness") or {}
    if rob.get("available") and rob.get("results"):
        worst = min(rob["results"], key=lambda r: (r["snr_db"], r["clip_accuracy"]))
        extra.append(f"at {worst['variant']}: {worst['clip_accuracy']:.3f}")
    results = _baseline_results(report.get("baselines") or {})
    if results:
        name, best = max(results.items(), key=lambda kv: kv[1]["test_accuracy"])
        extra.append(f"best baseline {name}: {best['test_accuracy']:.3f}")
    return line + ("\n" + "; ".join(extra) if extra else "")


def _baseline_results(base: Mapping[str, Any]) -> dict[str, Any]:
    """Every baseline that ran: the handcrafted-feature models, then those on musicnn embeddings."""
    emb = base.get("embeddings") or {}
    return {**(base.get("results") or {} if base.get("available") else {}),
            **(emb.get("results") or {} if emb.get("available") else {})}


def number(value: Any) -> str:
    """A score in a Markdown cell: three decimals, an em dash for a missing value."""
    return "—" if value is None else f"{float(value):.3f}"


def report_markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: headline numbers, per-class table, robustness table, baselines next to the CNN, plots."""
    files = report.get("files") or {}
    model = (report.get("bundle") or {}).get("model") or {}
    lines = [
        "# Evaluation report", "",
        (f"Bundle `{report['bundle']['path']}` ({model.get('name', '?')}) on dataset `{report['data']['path']}`, "
         f"test split: {report['n_test_tracks']} tracks, {report['n_test_segments']} segments."), "",
        "| metric | value |", "|---|---:|",
        f"| clip accuracy | {number(report['clip_accuracy'])} |",
        f"| segment accuracy | {number(report['segment_accuracy'])} |",
        f"| macro F1 (clip) | {number(report['macro_f1'])} |", "",
        "## Per class (clip level)", "",
        "| genre | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|",
    ]
    for genre, m in report["per_class"].items():
        lines.append(f"| {genre} | {number(m['precision'])} | {number(m['recall'])} | {number(m['f1'])} | {m['support']} |")
    lines += ["", f"![confusion matrix]({files.get('confusion_matrix', CONFUSION_PNG)})", ""]

    lines += ["## Robustness to noise", ""]
    rob = report["robustness"]
    if not rob.get("available"):
        lines.append(f"Not measured: {rob.get('reason')}.")
    else:
        lines += ["| variant | clip accuracy | segment accuracy | tracks | from |", "|---|---:|---:|---:|---|",
                  (f"| clean | {number(rob['clean_clip_accuracy'])} | {number(rob['clean_segment_accuracy'])} | "
                   f"{report['n_test_tracks']} | dataset |")]
        for r in rob["results"]:
            lines.append(f"| {r['variant']} | {number(r['clip_accuracy'])} | {number(r['segment_accuracy'])} | "
                         f"{r['n_tracks']} | {r['source']} |")
        if rob.get("reason_missing_variants"):
            lines += ["", f"Some variants could not be rebuilt: {rob['reason_missing_variants']}."]
        if "robustness" in files:
            lines += ["", f"![robustness]({files['robustness']})"]
    lines.append("")

    lines += ["## Baselines (clip level: handcrafted features, musicnn embeddings)", ""]
    base = report["baselines"]
    lines += ["| model | test accuracy | test macro F1 |", "|---|---:|---:|",
              (f"| **CNN ({model.get('name', 'bundle')})** | **{number(report['clip_accuracy'])}** | "
               f"**{number(report['macro_f1'])}** |")]
    for name, r in _baseline_results(base).items():
        lines.append(f"| {name} | {number(r['test_accuracy'])} | {number(r['test_macro_f1'])} |")
    if not base.get("available"):
        lines += ["", f"Baselines not run: {base.get('reason')}."]
    emb = base.get("embeddings")
    if emb and not emb.get("available"):
        lines += ["", f"musicnn embeddings not run: {emb.get('reason')}."]
    lines.append("")

    lines += ["## Training", ""]
    if "learning_curves" in files:
        best = report["bundle"].get("best_epoch")
        lines += [f"Best epoch: {best}." if best is not None else "", "",
                  f"![learning curves]({files['learning_curves']})"]
    else:
        lines.append("The bundle holds no metrics history, so there are no learning curves.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------------
# Baselines report


def baselines_markdown(results: Mapping[str, Mapping[str, Any]], *, notes: Sequence[str] = ()) -> str:
    """A Markdown table of :func:`run_baselines` results, one row per model, in the given order, then ``notes``.

    Accuracies and macro-F1 are per track, printed with three decimals; a missing validation score is
    printed as an em dash.
    """
    lines = [
        "| model | hyperparameters | valid accuracy | test accuracy | test macro-F1 | train tracks | test tracks |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        params = result.get("params") or {}
        shown = ", ".join(
            f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()
        )
        cells = [
            name,
            shown or "—",
            number(result.get("valid_accuracy")),
            number(result.get("test_accuracy")),
            number(result.get("test_macro_f1")),
            str(result.get("n_train", "—")),
            str(result.get("n_test", "—")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"
