"""End to end on synthetic data: prepare -> train 2 epochs -> evaluate -> predict, far above chance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spectrotune import dataset as D
from spectrotune.config import load_config
from spectrotune.predict.driver import predict
from spectrotune.sources.synth.corpus import generate_corpus
from spectrotune.flows import run_pipeline

pytestmark = pytest.mark.integration  # runs the flow on a local Ray


@pytest.fixture(scope="module")
def flow(tmp_path_factory, ray_session):
    base = tmp_path_factory.mktemp("flow")
    generate_corpus(base / "corpus", genres=3, tracks=8, seconds=12.0, seed=2, borrow=0.0)
    config = load_config("demo", overrides=[
        "train.epochs=2", "train.batch_size=16", "train.lr=0.003", "train.schedule=constant", "model.width=16",
        "model.depth=3", "audio.hop_seconds.train=1.0", "noise.enabled=false",
        "split.fractions={train: 0.5, valid: 0.25, test: 0.25}",
        "evaluate.snr_db=[10]", "evaluate.noise_kinds=[white]",
    ])
    report = run_pipeline(base / "corpus", base / "out", config=config, progress=False, log=lambda _: None)
    return base, report


def test_pipeline_learns_the_synthetic_genres_far_above_chance(flow):
    base, report = flow
    assert report["n_test_tracks"] == 6
    assert report["clip_accuracy"] >= 2 / 3  # chance is 1/3 with three genres
    saved = json.loads((base / "out" / "run" / "report" / "report.json").read_text())
    for key in ("segment_accuracy", "clip_accuracy", "macro_f1", "per_class", "robustness", "baselines"):
        assert key in saved
    assert saved["baselines"]["available"] is True


def test_predict_with_the_trained_bundle_names_the_right_genres(flow):
    base, _ = flow
    # only the test tracks: the model has seen the others
    test_ids = set(D.read_split(base / "out" / "dataset", "test", columns=[D.TRACK_ID]).column(D.TRACK_ID).to_pylist())
    files = sorted(f for f in (base / "corpus" / "genres_original").rglob("*.wav") if f.stem in test_ids)
    assert len(files) == len(test_ids) == 6
    result = predict(base / "out" / "run" / "bundle", files, top_k=2, use_ray=False, log=lambda _: None)
    rows = result.rows
    assert len(rows) == len(files) and all(r["status"] == "ok" for r in rows)
    correct = sum(r["top1"] == f.parent.name for r, f in zip(rows, files, strict=True))
    assert correct / len(files) >= 2 / 3


def test_overwrite_starts_over_without_the_old_run(flow, tmp_path, monkeypatch):
    import spectrotune.training.driver

    base, _ = flow
    out = tmp_path / "out"
    (out / "run" / "runs" / "train-old").mkdir(parents=True)  # checkpoints of data about to be replaced
    seen = {}

    def stop_before_training(data, run, **_):
        seen["run_left"] = Path(run).exists()
        raise RuntimeError("stop before training")

    monkeypatch.setattr(spectrotune.training.driver, "train", stop_before_training)
    config = load_config("demo", overrides=["noise.enabled=false", "features.n_mels=16"])
    with pytest.raises(RuntimeError, match="stop before training"):
        run_pipeline(base / "corpus", out, config=config, overwrite=True, progress=False, log=lambda _: None)
    assert seen == {"run_left": False} and (out / "dataset" / "manifest.json").is_file()


def test_cli_evaluate_predict_and_export_work_on_the_trained_bundle(flow, tmp_path, capsys):
    """The commands a user types after training, through the command line (in this process, no Ray needed)."""
    import soundfile as sf

    from spectrotune.cli import main

    base, _ = flow
    bundle, data = base / "out" / "run" / "bundle", base / "out" / "dataset"
    assert main(["evaluate", str(bundle), "--data", str(data), "--out", str(tmp_path / "report"),
                 "--no-baselines"]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["baselines"]["available"] is False  # --no-baselines
    assert f"clip accuracy {report['clip_accuracy']:.3f}" in capsys.readouterr().err  # messages: stderr

    wav = sorted((base / "corpus" / "genres_original").rglob("*.wav"))[0]
    short = tmp_path / "short.wav"  # 1 s stereo at 44.1 kHz: resampled, mixed down, padded to one window
    sf.write(short, np.random.default_rng(0).normal(0, 0.1, (44100, 2)), 44100)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    out_csv = tmp_path / "preds.csv"
    assert main(["predict", str(bundle), str(wav), str(short), str(broken), "--top-k", "2", "--no-ray",
                 "--output", str(out_csv)]) == 0
    captured = capsys.readouterr()  # results on stdout, messages on stderr
    assert "padded" in captured.out and str(broken) in captured.out
    assert "1 file(s) could not be predicted" in captured.out + captured.err
    rows = out_csv.read_text().splitlines()
    assert rows[0].startswith("path,status,reason,padded,silent,n_segments,top1,p1,top2,p2") and len(rows) == 4

    onnx_file = tmp_path / "model.onnx"
    assert main(["export", str(bundle), "--onnx", str(onnx_file)]) == 0
    assert onnx_file.stat().st_size > 0 and "output 'logits' [batch, 3]" in capsys.readouterr().out


def test_predict_computes_exactly_the_inputs_prepare_wrote(flow):
    """The bundle's audio and log-mel parameters reproduce the dataset's test rows of a track, segment by segment."""
    from spectrotune.bundle import load_bundle

    base, _ = flow
    bundle = load_bundle(base / "out" / "run" / "bundle")
    table = D.read_split(base / "out" / "dataset", "test", columns=[D.TRACK_ID, D.GENRE, D.SEGMENT, D.MEL],
                         variants=[D.CLEAN])
    track = table.column(D.TRACK_ID)[0].as_py()
    rows = table.filter(table.column(D.TRACK_ID).to_numpy(zero_copy_only=False) == track).sort_by(D.SEGMENT)
    wav = base / "corpus" / "genres_original" / rows.column(D.GENRE)[0].as_py() / f"{track}.wav"
    mel, padded, _ = bundle.recipe.model_input(str(wav))
    assert not padded and mel.shape == (rows.num_rows, *bundle.input_shape)
    np.testing.assert_array_equal(mel, D.mel_array(rows))  # bit for bit: same decode, segmentation and log-mel
