"""K-fold cross-validation on Ray Tune (``spectrotune cv``): three disjoint folds by track, the test split held
out, the CNN and the baselines scored per fold. Starts Ray: 3 fits of the tiny audio source."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tune_sources import TRIAL

from spectrotune import dataset as D
from spectrotune.cli import main as cli_main
from spectrotune.tuning.results import STATUS_DONE

pytestmark = pytest.mark.integration


def test_three_fold_cross_validation_reports_three_disjoint_folds(sources, tmp_path, capsys):
    settings = [*TRIAL, f"sources.audio={sources['audio']}", f"sources.spotify={sources['spotify']}",
                "train.epochs=1", "tune.cpus_per_trial=0.5", "tune.max_concurrent_trials=0"]
    code = cli_main(["cv", "demo", "--folds", "3", "--source", "audio", "--out", str(tmp_path / "cv"),
                     "--no-progress", *(f"--set={s}" for s in settings)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert report["k"] == 3 and list(report["sources"]) == ["audio"]
    folds = report["sources"]["audio"]["folds"]
    assert [f["fold"] for f in folds] == [0, 1, 2]
    seen: dict[str, int] = {}
    for fold in folds:
        for track in fold["tracks"]:
            assert track not in seen, f"{track} in folds {seen[track]} and {fold['fold']}"
            seen[track] = fold["fold"]
        assert 0.0 <= fold["cnn"]["clip_accuracy"] <= 1.0 and fold["cnn"]["status"] == STATUS_DONE
        assert set(fold["baselines"]) >= {"random_forest", "svm_rbf", "knn"}
    # the folds cover exactly the train and valid tracks; the test split stays held out
    held_in = {t for split in ("train", "valid")
               for t in D.read_split(sources["audio"], split, columns=["track_id"]).column("track_id").to_pylist()}
    assert set(seen) == held_in
    summary = report["sources"]["audio"]["summary"]
    assert summary["cnn"]["per_fold"] == [f["cnn"]["clip_accuracy"] for f in folds]
    assert summary["cnn"]["std"] == pytest.approx(np.std(summary["cnn"]["per_fold"], ddof=1))
    assert "±" in (tmp_path / "cv" / "cv.md").read_text()
