"""``spectrotune demo``, the README's main command, through the command line on a tiny corpus.

The full-size demo (10 genres x 10 tracks, 12 epochs) is timed in BENCHMARKS.md; here it runs with 3 genres x 4
tracks and one epoch so that the wiring (synth -> prepare -> train -> evaluate + baselines), what it prints and its
refusal to overwrite are checked in under a minute.
"""

from __future__ import annotations

import json

import pytest

from spectrotune.cli import main
from spectrotune.flows import DISCLAIMER

pytestmark = pytest.mark.integration  # the demo runs on a local Ray

TINY = ["--genres", "3", "--tracks", "4", "--seconds", "6", "--no-progress",
        *(a for kv in ("train.epochs=1", "model.width=8", "model.depth=2", "features.n_mels=32",
                       "evaluate.snr_db=[10]", "evaluate.noise_kinds=[white]") for a in ("--set", kv))]


def test_demo_runs_the_whole_flow_and_says_what_its_numbers_mean(tmp_path, ray_session, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 0
    captured = capsys.readouterr()
    printed = captured.err  # the demo's lines are messages: stderr, through the spectrotune logger
    assert captured.out == ""
    report = json.loads((out / "run" / "report" / "report.json").read_text())
    assert (out / "corpus" / "genres_original").is_dir() and (out / "dataset" / "manifest.json").is_file()
    assert (out / "run" / "bundle" / "model.safetensors").is_file()
    assert report["labels"] == ["blues", "classical", "country"]
    assert set(report["baselines"]["results"]) >= {"random_forest", "svm_rbf", "svm_linear", "knn",
                                                    "logistic_regression"}
    assert f"report: {out / 'run' / 'report' / 'report.md'}" in printed
    assert f"clip accuracy {report['clip_accuracy']:.3f}" in printed
    assert printed.rstrip().endswith(DISCLAIMER)  # the last word: synthetic accuracy says nothing about music

    assert main(["demo", "--out", str(out), *TINY]) == 2  # an existing demo is not overwritten unasked
    assert "--overwrite" in capsys.readouterr().err
