"""Tests of spectrotune.evaluation.plots: each figure draws its data and is written as a PNG."""

from __future__ import annotations

import numpy as np

from spectrotune.evaluation.plots import figure, plot_confusion, plot_learning_curves, plot_robustness, save_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_figure_has_the_asked_size_in_inches():
    fig = figure(6.0, 4.0)
    assert tuple(fig.get_size_inches()) == (6.0, 4.0) and fig.dpi == 100


def test_confusion_annotates_every_cell(tmp_path):
    cm = np.array([[3, 1, 0], [0, 2, 0], [1, 0, 4]])
    fig = plot_confusion(cm, ["blues", "jazz", "rock"])
    ax = fig.axes[0]
    assert sorted(int(t.get_text()) for t in ax.texts) == sorted(cm.ravel().tolist())
    assert "n=11" in ax.get_title()
    save_figure(fig, tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:8] == PNG_MAGIC


def test_learning_curves_plot_loss_and_accuracy_per_epoch(tmp_path):
    history = [{"epoch": e, "train_loss": 1.0 / e, "valid_loss": 1.2 / e, "valid_accuracy": 0.2 * e,
                "valid_clip_accuracy": 0.25 * e} for e in (1, 2, 3)]
    fig = plot_learning_curves({"history": history, "best_epoch": 3})
    ax_loss, ax_acc = fig.axes[:2]
    assert [line.get_label() for line in ax_loss.lines][:2] == ["train loss", "valid loss"]
    assert list(ax_acc.lines[0].get_xdata()) == [1, 2, 3]
    save_figure(fig, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_MAGIC


def test_robustness_draws_one_line_per_noise_kind_and_the_clean_level(tmp_path):
    results = [{"kind": k, "snr_db": s, "clip_accuracy": a} for k, s, a in
               (("white", 10.0, 0.6), ("white", 0.0, 0.3), ("pink", 10.0, 0.7), ("pink", 0.0, 0.4))]
    fig = plot_robustness({"results": results, "clean_clip_accuracy": 0.8})
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels == ["white noise", "pink noise", "clean (0.80)"]
    save_figure(fig, tmp_path / "rob.png")
    assert (tmp_path / "rob.png").read_bytes()[:8] == PNG_MAGIC
