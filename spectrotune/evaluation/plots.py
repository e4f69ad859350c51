"""Figures of the reports: one figure helper, one PNG writer, and the plots that evaluate, train and tune draw.

matplotlib's object-oriented API on the Agg canvas: no pyplot state, safe in threads and without a display.
matplotlib is imported inside :func:`figure`, so importing this module is cheap. No ``ray``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spectrotune import storage

__all__ = ["figure", "plot_confusion", "plot_learning_curves", "plot_robustness", "save_figure"]



def figure(width: float, height: float):
    """A matplotlib Figure of ``width`` x ``height`` inches at 100 dpi on the Agg canvas, constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_confusion(cm: np.ndarray, labels: Sequence[str]):
    """Confusion matrix figure: true labels down, predicted across, each cell annotated with its count."""
    cm = np.asarray(cm)
    n = len(labels)
    size = max(4.0, 0.6 * n + 2.0)
    fig = figure(size + 1.0, size)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1, int(cm.max())))
    ax.set_xticks(range(n), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(labels))
    ax.set_xlabel("predicted genre")
    ax.set_ylabel("true genre")
    ax.set_title(f"confusion matrix (test clips, n={int(cm.sum())})")
    threshold = cm.max() / 2.0 if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if cm[i, j] > threshold else "black", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_learning_curves(metrics: Mapping[str, Any]):
    """Loss and accuracy per epoch from a bundle's ``metrics`` (``history`` list of per-epoch dicts)."""
    history = list(metrics.get("history") or [])
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig = figure(10.0, 4.0)
    ax_loss, ax_acc = fig.subplots(1, 2)

    def series(ax, keys: Sequence[str]) -> None:
        for key in keys:
            points = [(e, h[key]) for e, h in zip(epochs, history, strict=True) if h.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=key.replace("_", " "))

    series(ax_loss, ("train_loss", "valid_loss"))
    series(ax_acc, ("train_accuracy", "valid_accuracy", "valid_clip_accuracy"))
    best = metrics.get("best_epoch")
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        if best is not None:
            ax.axvline(best, color="gray", linestyle="--", linewidth=1, label=f"best epoch {best}")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    ax_acc.set_ylim(0, 1.02)
    return fig


def plot_robustness(robustness: Mapping[str, Any]):
    """Clip accuracy against SNR, one line per noise kind, the clean accuracy as a dashed line."""
    fig = figure(6.0, 4.0)
    ax = fig.add_subplot()
    by_kind: dict[str, list[tuple[float, float]]] = {}
    for r in robustness.get("results", []):
        by_kind.setdefault(r["kind"], []).append((r["snr_db"], r["clip_accuracy"]))
    for kind, points in by_kind.items():
        points.sort()
        ax.plot(*zip(*points, strict=True), marker="o", label=f"{kind} noise")
    clean = robustness.get("clean_clip_accuracy")
    if clean is not None:
        ax.axhline(clean, color="black", linestyle="--", linewidth=1, label=f"clean ({clean:.2f})")
    ax.invert_xaxis()  # cleaner on the left, noisier to the right
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("clip accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("robustness to added noise (test clips)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def save_figure(fig, path: str | Path) -> None:
    """Write a matplotlib figure as a PNG at ``path`` (local: aside, then renamed; see :func:`storage.write_bytes`)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    storage.write_bytes(path, buffer.getvalue())
