"""``spectrotune inspect`` on a dataset written by main at 325b798, without Ray: the summary, the example
figure, and noisy WAVs rebuilt from the (re-synthesized) source at the variant's SNR."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from legacy_data import LEGACY_DATASET, legacy_corpus, legacy_dataset

from spectrotune import dataset as D
from spectrotune.audio.noise import measured_snr_db
from spectrotune.errors import DatasetError
from spectrotune.prepare.inspect import export_noisy_audio, inspect_dataset, manifest_summary


def test_the_summary_names_labels_rows_variants_and_shape():
    text = manifest_summary(D.read_manifest(LEGACY_DATASET))
    assert "labels:   3: blues, classical, country" in text
    assert "rows:     train 48, valid 12, test 12" in text
    assert "variants: clean, white@20dB; noise applied to splits ['train']" in text
    assert "mel:      16 x 87 (log-mel dB)" in text and "errors:   0" in text


def test_noisy_audio_is_rebuilt_from_the_source_at_the_target_snr(tmp_path):
    data = legacy_dataset(tmp_path / "ds", legacy_corpus(tmp_path / "corpus"))
    text = inspect_dataset(data, out=tmp_path / "out", export_audio=2)
    assert (tmp_path / "out" / "examples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "audio:    4 WAV files" in text
    for clean_path in sorted((tmp_path / "out" / "audio").glob("*_clean.wav")):
        clean, _ = sf.read(clean_path, dtype="float64")
        noisy, _ = sf.read(str(clean_path).replace("_clean.wav", "_white_at_20dB.wav"), dtype="float64")
        assert abs(measured_snr_db(clean, noisy) - 20.0) < 0.5  # 16-bit WAV quantisation aside
        assert not np.array_equal(clean, noisy)


def test_exporting_audio_needs_the_source(tmp_path):
    data = legacy_dataset(tmp_path / "ds", tmp_path / "gone")
    with pytest.raises(DatasetError, match="source folder of this dataset is gone"):
        export_noisy_audio(data, tmp_path / "out", n=1)
