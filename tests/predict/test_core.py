"""The pure predict path on a dataset and a bundle written by main at 325b798: the bundle's recipe recomputes the
dataset's rows bit for bit from the (rebuilt) source audio, and every file of the corpus is predicted."""

from __future__ import annotations

import numpy as np
import pytest
from legacy_data import LEGACY_BUNDLE, LEGACY_DATASET, legacy_corpus, track_file

from spectrotune import dataset as D
from spectrotune.bundle import load_bundle
from spectrotune.predict.core import check_top_k, format_predictions, predict_files
from spectrotune.predict.files import expand_paths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return legacy_corpus(tmp_path_factory.mktemp("legacy") / "corpus")


def test_the_recipe_recomputes_the_legacy_test_rows_bit_for_bit(corpus):
    recipe = load_bundle(LEGACY_BUNDLE).recipe
    table = D.read_split(LEGACY_DATASET, "test", columns=[D.TRACK_ID, D.SEGMENT, D.MEL], variants=[D.CLEAN])
    tracks = table.column(D.TRACK_ID).to_pylist()
    mel = D.mel_array(table)
    for track in sorted(set(tracks)):
        rows = [i for i, t in enumerate(tracks) if t == track]  # sorted by segment
        got, padded, hop = recipe.model_input(track_file(corpus, track))
        assert not padded and hop == 1.0
        np.testing.assert_array_equal(got, mel[rows])  # same decode, segmentation and log-mel


def test_every_file_of_the_legacy_corpus_is_predicted(corpus):
    files, had_folder = expand_paths([corpus])
    assert had_folder and len(files) == 12
    rows, timeline = predict_files(load_bundle(LEGACY_BUNDLE), files, top_k=2, timeline=True)
    assert [r["status"] for r in rows] == ["ok"] * 12 and {r["n_segments"] for r in rows} == {4}
    assert len(timeline) == 48 and [t["start_seconds"] for t in timeline[:4]] == [0.0, 1.0, 2.0, 3.0]
    text = format_predictions(rows, 2)
    assert len(text.splitlines()) == 12 and "could not be predicted" not in text


@pytest.mark.parametrize("top_k, n_labels, expected", [(1, 3, 1), (3, 3, 3), (10, 3, 3)])
def test_top_k_is_cut_to_the_labels(top_k, n_labels, expected):
    assert check_top_k(top_k, n_labels) == expected
