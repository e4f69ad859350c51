"""The Python API (spectrotune.api through ``import spectrotune as st``): loaded lazily, Ray-free on import; a
file's Prediction equals what ``spectrotune predict`` prints for it, samples in memory give the same as the file;
the timeline, padded and silent flags; the README's "Python API" examples run as written."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from legacy_data import LEGACY_BUNDLE

import spectrotune as st
from spectrotune.api import Model, Prediction, Window
from spectrotune.bundle import save_bundle
from spectrotune.cli import main
from spectrotune.config import load_config
from spectrotune.errors import BundleError, InputError
from spectrotune.models.networks import build_model
from spectrotune.models.params import model_params

README = Path(__file__).parents[1] / "README.md"
SR = 22050
LABELS = ["blues", "jazz", "metal", "rock"]


def _bundle(path: Path) -> Path:
    """A bundle of the demo config (3-s windows, loop padding) with a random 4-genre CNN, built without Ray."""
    config = load_config("demo", overrides=["features.n_mels=32", "features.hop_length=512"])
    cfg = config.to_dict()
    n_frames = 3 * SR // 512 + 1
    params = model_params("cnn", {"width": 8, "depth": 2})
    torch.manual_seed(0)
    mean, std = torch.full((32,), -40.0), torch.full((32,), 20.0)  # near the log-mel range: outputs vary with input
    model = build_model("cnn", n_classes=len(LABELS), n_mels=32, params=params, norm_mean=mean, norm_std=std)
    return save_bundle(path, model=model.eval(), model_name="cnn", model_params=params, labels=LABELS,
                       input_shape=(32, n_frames), source_kind="audio", audio=cfg["audio"], features=cfg["features"],
                       norm_mean=mean.numpy(), norm_std=std.numpy(), metrics={}, config=cfg,
                       config_hash=config.hash())


def _song(seconds: float, *, sr: int = SR, channels: int = 1, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    y = 0.2 * np.sin(2 * np.pi * 220 * t * (1 + 0.3 * np.sin(t))) + 0.05 * rng.standard_normal(t.size)
    return np.stack([y * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32) if channels > 1 \
        else y.astype(np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return _bundle(tmp_path_factory.mktemp("api") / "bundle")


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("songs")
    files = {"mono.wav": (_song(7.5), SR), "stereo44k.flac": (_song(6.2, sr=44100, channels=2, seed=1), 44100),
             "short.wav": (_song(1.1, seed=2), SR), "silence.wav": (np.zeros(4 * SR, np.float32), SR)}
    for name, (y, sr) in files.items():
        sf.write(root / name, y, sr, subtype="PCM_16")
    return {name: root / name for name in files}


def test_importing_the_package_loads_neither_torch_nor_ray_until_a_name_is_used():
    code = ("import sys, spectrotune as st\n"
            "heavy = lambda: sorted(m for m in ('ray', 'torch') if m in sys.modules)\n"
            "print(heavy(), callable(st.prepare), callable(st.predict), heavy())\n"
            "st.load_bundle\n"
            "import spectrotune.prepare.task\n"  # the room imported first: still the callable room
            "print(callable(st.prepare), st.train.__module__, st.evaluate.__name__, st.tune.__name__, "
            "'ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["[] True True []", "True spectrotune.training.driver evaluate tune False"]


def test_the_stage_functions_take_the_cli_functions_arguments():
    from spectrotune.evaluation.evaluate import evaluate
    from spectrotune.predict.driver import predict
    from spectrotune.prepare.driver import prepare
    from spectrotune.training.driver import train

    assert st.train is train and st.evaluate is evaluate
    assert inspect.signature(st.prepare) == inspect.signature(prepare)
    assert inspect.signature(st.predict) == inspect.signature(predict)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        st.nope  # noqa: B018


def test_predict_file_equals_spectrotune_predict_on_the_same_files(model_dir, songs, capsys):
    names = ["mono.wav", "stereo44k.flac", "short.wav", "silence.wav"]
    argv = ["predict", str(model_dir), *(str(songs[n]) for n in names), "--top-k", "4", "--timeline",
            "--format", "json", "--no-ray", "-q"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    m = st.load_bundle(model_dir)
    for name, row in zip(names, rows, strict=True):
        p = m.predict_file(songs[name])
        assert isinstance(p, Prediction) and p.source == str(songs[name])
        assert p.probabilities == {row[f"top{i}"]: row[f"p{i}"] for i in range(1, 5) if row[f"top{i}"]}
        assert (p.genre, p.padded, p.silent, len(p.windows)) == (row["top1"], row["padded"], row["silent"],
                                                                 row["n_segments"])
        timeline = [(w.start, w.genre) for w in p.windows if w.genre]  # a silent clip has windows, no genres
        assert timeline == [(s["start_seconds"], s["top1"]) for s in row["timeline"]]
        assert [w.probabilities[w.genre] for w in p.windows if w.genre] == [s["p1"] for s in row["timeline"]]
    mono, stereo, short, silence = (m.predict_file(songs[n]) for n in names)
    assert [(w.start, w.end) for w in mono.windows] == [(0.0, 3.0), (3.0, 6.0)]
    assert list(mono.probabilities) == mono.genres and sum(mono.probabilities.values()) == pytest.approx(1.0)
    assert mono.top(2) == list(mono.probabilities.items())[:2]
    assert all(sum(w.probabilities.values()) == pytest.approx(1.0, abs=1e-6) for w in mono.windows)
    assert short.padded and not mono.padded and len(short.windows) == 1
    assert silence.silent and silence.genre is None and silence.probabilities == {} and "silent" in silence.reason
    assert stereo.genre in LABELS and len(stereo.windows) == 2


def test_samples_in_memory_predict_exactly_as_their_file(model_dir, songs):
    m = st.load_bundle(model_dir)
    for name in ("mono.wav", "stereo44k.flac", "short.wav", "silence.wav"):
        y, sr = sf.read(songs[name], dtype="float32")
        from_file, from_array = m.predict_file(songs[name]), m.predict(y, sr)
        assert from_array == Prediction(**{**from_file.__dict__, "source": "<array>"}), name
    y, sr = sf.read(songs["stereo44k.flac"], dtype="float32")
    assert m.predict(y.T, sr) == m.predict(y, sr)  # [channels, n], librosa's layout
    assert m.predict(y.astype(np.float64), sr).genre == m.predict(y, sr).genre


def test_the_timeline_as_a_dataframe(model_dir, songs):
    p = st.load_bundle(model_dir).predict_file(songs["mono.wav"])
    frame = p.timeline()
    assert list(frame.columns) == ["start", "end", "genre", *LABELS]
    assert frame["genre"].tolist() == [w.genre for w in p.windows]
    assert isinstance(p.windows[0], Window)


@pytest.mark.parametrize("samples, sr, match", [
    (np.zeros(0, np.float32), SR, "non-empty"),
    (np.full(SR, np.nan, np.float32), SR, "NaN or infinite"),
    (np.ones(SR, np.int32), SR, "dtype int32"),
    (np.zeros((2, 3, SR), np.float32), SR, "shape"),
    (np.zeros(SR, np.float32), 0, "sr must be"),
])
def test_bad_samples_are_a_clear_error(model_dir, samples, sr, match):
    with pytest.raises(InputError, match=match):
        st.load_bundle(model_dir).predict(samples, sr)


def test_bad_paths_are_clear_errors(model_dir, tmp_path):
    with pytest.raises(InputError, match="No such file"):
        st.load_bundle(model_dir).predict_file(tmp_path / "gone.wav")
    with pytest.raises(BundleError, match="not a model bundle"):
        st.load_bundle(tmp_path)
    assert "4 genres, 22050 Hz" in repr(Model(st.load_bundle(model_dir).bundle))


# -- the README's "Python API" section -------------------------------------------------------------------------------


def _readme_blocks() -> list[str]:
    section = README.read_text(encoding="utf-8").split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_predict_example_runs_as_written(songs, tmp_path):
    code = _readme_blocks()[0]
    assert '"spectrotune-demo/run/bundle"' in code and '"song.wav"' in code
    code = code.replace('"spectrotune-demo/run/bundle"', repr(str(LEGACY_BUNDLE)))
    code = code.replace('"song.wav"', repr(str(songs["stereo44k.flac"])))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    first = done.stdout.splitlines()[0]
    assert first.split()[0] in ("blues", "classical", "country"), done.stdout


@pytest.mark.integration
def test_readme_training_example_runs_as_written(ray_session, tmp_path):
    from spectrotune.sources.synth.corpus import generate_corpus

    code = _readme_blocks()[1]
    generate_corpus(tmp_path / "corpus", genres=2, tracks=3, seconds=6.0, seed=0)
    for path in ("corpus", "data/demo", "runs/demo"):  # relative paths, as the README writes them: run in tmp_path
        assert f'"{path}"' in code, path
    namespace: dict = {}
    cwd = Path.cwd()
    try:
        import os

        os.chdir(tmp_path)
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    finally:
        os.chdir(cwd)
    assert (tmp_path / "runs/demo/bundle/bundle.json").is_file()
    assert (tmp_path / "runs/demo/report/report.json").is_file()
    assert 0.0 <= namespace["report"]["clip_accuracy"] <= 1.0
