"""``spectrotune inspect`` on a dataset written by main at 325b798, without Ray: the summary, the example
figure, and noisy WAVs rebuilt from the (re-synthesized) source at the variant's SNR. The source may be an ``s3://``
prefix (the loopback S3 server of tests/s3_server.py): ``spectrotune inspect --export-audio`` writes the WAVs of the
local copy, and an object that cannot be read is named by its URI as a local file is by its path."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
from legacy_data import LEGACY_DATASET, legacy_corpus, legacy_dataset, track_file
from s3_server import moto_s3

from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.cli import main
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


BUCKET = "spectrotune-inspect"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The legacy corpus, locally and on the loopback S3 server: yields (local corpus, the URI of its copy)."""
    corpus = legacy_corpus(tmp_path_factory.mktemp("inspect") / "corpus")
    with moto_s3(BUCKET) as env, pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        storage.upload(corpus, f"s3://{BUCKET}/corpus")
        yield corpus, f"s3://{BUCKET}/corpus/"


def _wavs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.wav"))}


def test_inspect_export_audio_from_an_s3_source_writes_the_local_copys_wavs(s3, tmp_path, capsys):
    corpus, uri = s3
    remote, local = legacy_dataset(tmp_path / "remote", uri), legacy_dataset(tmp_path / "local", corpus)
    assert main(["inspect", str(remote), "--out", str(tmp_path / "r"), "--export-audio", "2"]) == 0
    assert "audio:    4 WAV files" in capsys.readouterr().out
    export_noisy_audio(local, tmp_path / "l", n=2)
    got = _wavs(tmp_path / "r" / "audio")
    assert len(got) == 4 and got == _wavs(tmp_path / "l")


def test_an_object_no_decoder_reads_is_named_by_its_uri_as_a_local_file_by_its_path(s3, tmp_path, capsys):
    corpus, _ = s3
    picked = export_noisy_audio(legacy_dataset(tmp_path / "ds", corpus), tmp_path / "first", n=1)[0].name
    bad = tmp_path / "bad"
    shutil.copytree(corpus, bad)
    bad_file = track_file(bad, picked.split("_seg")[0])
    bad_file.write_bytes(b"not audio\n" * 40)  # listed, but no decoder reads it
    storage.upload(bad, f"s3://{BUCKET}/bad")
    bad_uri = f"s3://{BUCKET}/bad/{bad_file.relative_to(bad).as_posix()}"
    errors = []
    for source in (bad, f"s3://{BUCKET}/bad"):
        data = legacy_dataset(tmp_path / f"ds{len(errors)}", source)
        assert main(["inspect", str(data), "--out", str(tmp_path / "out"), "--export-audio", "1"]) == 2
        errors.append(capsys.readouterr().err.strip())
    local, remote = errors
    assert remote.startswith(f"spectrotune: error: {bad_uri}: ") and "\n" not in remote
    assert remote.replace(bad_uri, str(bad_file)) == local and "spectrotune-src-" not in remote


def test_exporting_audio_from_an_empty_s3_prefix_says_the_source_is_gone(s3, tmp_path):
    data = legacy_dataset(tmp_path / "ds", f"s3://{BUCKET}/gone/")
    with pytest.raises(DatasetError, match=f"^s3://{BUCKET}/gone: source folder of this dataset is gone"):
        export_noisy_audio(data, tmp_path / "out", n=1)


def test_a_track_gone_from_the_source_is_named(s3, tmp_path):
    corpus, _ = s3
    picked = export_noisy_audio(legacy_dataset(tmp_path / "ds", corpus), tmp_path / "first", n=1)[0].name
    track = picked.split("_seg")[0]
    shutil.copytree(corpus, tmp_path / "corpus")
    track_file(tmp_path / "corpus", track).unlink()
    data = legacy_dataset(tmp_path / "ds2", tmp_path / "corpus")
    with pytest.raises(DatasetError, match=f"track\\(s\\) {track} of this dataset are no longer in its source"):
        export_noisy_audio(data, tmp_path / "out", n=1)
