"""Tests of spectrotune.evaluation.report: the terminal headline, report.md and the baselines table (pure text)."""

from __future__ import annotations

import copy

import pytest

from spectrotune.evaluation.report import baselines_markdown, headline, report_markdown


def _report() -> dict:
    """A report shaped like the one spectrotune.evaluation.evaluate.evaluate returns."""
    return {
        "segment_accuracy": 0.61234, "clip_accuracy": 0.75, "macro_f1": 0.7, "labels": ["blues", "jazz"],
        "per_class": {"blues": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2},
                      "jazz": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 2}},
        "n_test_tracks": 4, "n_test_segments": 40,
        "robustness": {"applies": True, "available": True, "clean_clip_accuracy": 0.75,
                       "clean_segment_accuracy": 0.61234, "results": [
                           {"kind": "white", "snr_db": 10.0, "variant": "white@10dB", "clip_accuracy": 0.5,
                            "segment_accuracy": 0.4, "n_tracks": 4, "n_segments": 40, "source": "dataset"},
                           {"kind": "white", "snr_db": 0.0, "variant": "white@0dB", "clip_accuracy": 0.25,
                            "segment_accuracy": 0.3, "n_tracks": 4, "n_segments": 40, "source": "rebuilt"}]},
        "baselines": {"available": True, "results": {
            "random_forest": {"test_accuracy": 0.5, "test_macro_f1": 0.45, "valid_accuracy": None, "params": {},
                              "n_test": 4},
            "knn": {"test_accuracy": 0.625, "test_macro_f1": 0.6, "valid_accuracy": 0.7,
                    "params": {"n_neighbors": 3}, "n_test": 4}}},
        "learning_curves": {"epochs": 3, "best_epoch": 2},
        "bundle": {"path": "run/bundle", "model": {"name": "cnn"}, "best_epoch": 2},
        "data": {"path": "out/data"},
        "files": {"confusion_matrix": "confusion_matrix.png", "learning_curves": "learning_curves.png",
                  "robustness": "robustness.png"},
    }


def test_headline_has_the_numbers_worst_noise_and_best_baseline():
    lines = headline(_report()).splitlines()
    assert lines[0] == "clip accuracy 0.750 (segment 0.612, macro-F1 0.700) on 4 test tracks"
    assert lines[1] == "at white@0dB: 0.250; best baseline knn: 0.625"


def test_headline_is_one_line_without_robustness_or_baselines():
    report = _report()
    report["robustness"] = {"applies": False, "available": False, "reason": "image sources"}
    report["baselines"] = {"available": False, "reason": "disabled"}
    assert len(headline(report).splitlines()) == 1


def test_report_markdown_tables_and_links():
    md = report_markdown(_report())
    assert md.startswith("# Evaluation report\n") and md.endswith("\n")
    assert "| clip accuracy | 0.750 |" in md and "| segment accuracy | 0.612 |" in md
    assert "| blues | 1.000 | 0.500 | 0.667 | 2 |" in md
    assert "| clean | 0.750 | 0.612 | 4 | dataset |" in md and "| white@0dB | 0.250 | 0.300 | 4 | rebuilt |" in md
    assert "| **CNN (cnn)** | **0.750** | **0.700** |" in md and "| knn | 0.625 | 0.600 |" in md
    for name in ("confusion_matrix.png", "learning_curves.png", "robustness.png"):
        assert f"]({name})" in md
    assert "Best epoch: 2." in md


@pytest.mark.parametrize("section, value, text", [
    ("robustness", {"applies": True, "available": False, "reason": "source audio unavailable"},
     "Not measured: source audio unavailable."),
    ("baselines", {"available": False, "reason": "disabled (evaluate.baselines: false)"},
     "Baselines not run: disabled (evaluate.baselines: false)."),
])
def test_report_markdown_says_why_a_section_is_missing(section, value, text):
    report = _report()
    report[section] = value
    assert text in report_markdown(report)


def test_report_markdown_without_history_has_no_learning_curves():
    report = copy.deepcopy(_report())
    del report["files"]["learning_curves"]
    md = report_markdown(report)
    assert "learning_curves.png" not in md and "no metrics history" in md


def test_baselines_markdown_one_row_per_model_in_order():
    results = {"svm_rbf": {"params": {"C": 10.0}, "valid_accuracy": None, "test_accuracy": 0.5,
                           "test_macro_f1": 0.25, "n_train": 12, "n_valid": 0, "n_test": 6},
               "random_forest": {"params": {}, "valid_accuracy": 0.75, "test_accuracy": 1.0,
                                 "test_macro_f1": 1.0, "n_train": 12, "n_valid": 6, "n_test": 6}}
    lines = baselines_markdown(results).strip().splitlines()
    assert len(lines) == 2 + len(results) and lines[0].startswith("| model | hyperparameters |")
    assert lines[2] == "| svm_rbf | C=10 | — | 0.500 | 0.250 | 12 | 6 |"
    assert lines[3] == "| random_forest | — | 0.750 | 1.000 | 1.000 | 12 | 6 |"
