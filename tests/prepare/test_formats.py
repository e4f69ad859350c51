"""Every audio format through prepare (issue 10: a genre folder's mp3 files were skipped without a word), the
files it cannot use named in errors.parquet, and short clips loop-padded (zeros when configured).

The task-level tests run one batch without Ray (and without ffmpeg, by PATH); the pipeline test runs prepare
through the shared Ray fixture on a corpus holding each format soundfile writes, an m4a and two stray files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from spectrotune import dataset as D
from spectrotune.audio import io as audio
from spectrotune.config import load_config
from spectrotune.prepare.driver import prepare
from spectrotune.prepare.task import process_batch
from spectrotune.sources.kinds import AUDIO, LogMel
from spectrotune.sources.listing import list_source

SR = 22050
FFMPEG = shutil.which("ffmpeg")
OVERRIDES = ["features.n_mels=16", "features.n_fft=512", "features.hop_length=256", "features.handcrafted=false",
             "noise.enabled=false", "split.fractions={train: 1.0, valid: 0.0, test: 0.0}"]
LOSSLESS = {"blues.00000.wav": "WAV", "blues.00001.flac": "FLAC", "blues.00002.aiff": "AIFF", "blues.00003.au": "AU"}
LOSSY = {"jazz.00000.ogg": ("OGG", "VORBIS", SR), "jazz.00001.opus": ("OGG", "OPUS", 48000),
         "jazz.00002.mp3": ("MP3", "MPEG_LAYER_III", SR)}


def _int16(seconds: float, *, sr: int = SR, freq: float = 220.0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    y = np.stack([0.3 * np.sin(2 * np.pi * freq * t), 0.2 * np.sin(2 * np.pi * 2.5 * freq * t)], axis=1)
    return np.round(y * 32767).astype(np.int16)


def make_corpus(root: Path) -> Path:
    """Lossless copies of one clip (the same integer samples), lossy ones, an m4a, a 2-s preview and strays."""
    for name, fmt in LOSSLESS.items():
        (root / "blues").mkdir(parents=True, exist_ok=True)
        sf.write(root / "blues" / name, _int16(4.0), SR, format=fmt, subtype="PCM_16")
    for name, (fmt, subtype, rate) in LOSSY.items():
        (root / "jazz").mkdir(parents=True, exist_ok=True)
        sf.write(root / "jazz" / name, _int16(4.0, sr=rate) / 32768.0, rate, format=fmt, subtype=subtype)
    m4a = root / "jazz" / "jazz.00003.m4a"
    if FFMPEG:
        subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-i", str(root / "blues" / "blues.00000.wav"),
                        "-c:a", "aac", str(m4a)], check=True)
    else:
        m4a.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    (root / "rock").mkdir(parents=True, exist_ok=True)
    sf.write(root / "rock" / "rock.00000.wav", _int16(2.0, freq=330.0), SR, subtype="PCM_16")  # a 2-s preview
    sf.write(root / "rock" / "rock.00001.wav", _int16(4.0, freq=330.0), SR, subtype="PCM_16")
    (root / "rock" / "notes.txt").write_text("track list\n")
    (root / "jazz" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    return root


def _preview_window(path: Path, pad: str) -> np.ndarray:
    y = audio.decode(path, sr=SR)
    win = 3 * SR
    return np.tile(y, 2)[:win] if pad == "repeat" else np.concatenate([y, np.zeros(win - len(y), np.float32)])


@pytest.mark.parametrize("pad", ["repeat", "zeros"])
def test_a_short_clip_is_loop_padded_or_zero_padded_as_configured(tmp_path, pad):
    corpus = make_corpus(tmp_path / "corpus")
    item = next(i for i in list_source(corpus).items if i.track_id == "rock.00000")
    config = load_config("demo", overrides=[*OVERRIDES, *([f"audio.pad={pad}"] if pad == "zeros" else [])])
    assert config.audio.pad == pad  # repeat is the default
    result = process_batch([item], splits={"rock.00000": "train"}, labels={"rock": 0}, config=config, kind=AUDIO,
                           out_dir=tmp_path / "out", shard_name="part-00000")
    assert result.padded_clips == 1 and not result.errors
    (shard,) = result.files
    mel = D.mel_array(pq.read_table(tmp_path / "out" / shard))
    log_mel = LogMel.from_config(config.features, sample_rate=SR)
    np.testing.assert_array_equal(mel, log_mel(_preview_window(Path(item.path), pad)[None]))


def test_without_ffmpeg_the_m4a_is_an_error_row_naming_the_fix(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "corpus")
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))
    items = [i for i in list_source(corpus).items if i.genre == "jazz"]
    assert sorted(Path(i.path).suffix for i in items) == [".m4a", ".mp3", ".ogg", ".opus"]
    result = process_batch(items, splits={i.track_id: "train" for i in items}, labels={"jazz": 0},
                           config=load_config("demo", overrides=OVERRIDES), kind=AUDIO, out_dir=tmp_path / "out",
                           shard_name="part-00000")
    assert result.errors == [{"path": str(corpus / "jazz" / "jazz.00003.m4a"), "track_id": "jazz.00003",
                              "genre": "jazz", "stage": "decode",
                              "reason": "libsndfile cannot read .m4a files and ffmpeg is not installed: install "
                                        "ffmpeg (on PATH) to read .m4a"}]
    assert result.rows == {"train|jazz|clean": 3}  # ogg, opus and mp3 need no ffmpeg


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, ray_session):
    base = tmp_path_factory.mktemp("formats")
    corpus = make_corpus(base / "corpus")
    result = prepare(corpus, base / "out", config=load_config("demo", overrides=OVERRIDES), progress=False)
    return corpus, base / "out", result


@pytest.mark.integration
def test_every_format_lands_in_the_dataset(prepared):
    corpus, out, result = prepared
    table = D.read_split(out, "train", columns=[D.TRACK_ID, D.SEGMENT, D.MEL])
    tracks = table.column(D.TRACK_ID).to_pylist()
    expected = {Path(n).stem for n in (*LOSSLESS, *LOSSY)} | {"rock.00000", "rock.00001"}
    if FFMPEG:
        expected.add("jazz.00003")
    assert set(tracks) == expected
    mel = D.mel_array(table)
    rows = {t: mel[[i for i, x in enumerate(tracks) if x == t]] for t in expected}
    for name in LOSSLESS:  # wav, flac, aiff and au of the same samples: the same rows, bit for bit
        np.testing.assert_array_equal(rows[Path(name).stem], rows["blues.00000"])
    for name in LOSSY:
        assert rows[Path(name).stem].shape == (1, 16, 259) and np.isfinite(rows[Path(name).stem]).all()


@pytest.mark.integration
def test_what_prepare_cannot_use_is_named_in_errors_parquet(prepared):
    corpus, out, result = prepared
    errors = {Path(e["path"]).name: (e["stage"], e["reason"]) for e in D.read_errors(out).to_pylist()}
    expected = {"notes.txt": ("list", "not an audio file spectrotune reads (.txt); left out"),
                "cover.jpg": ("list", "not an audio file spectrotune reads (.jpg); left out")}
    if not FFMPEG:
        expected["jazz.00003.m4a"] = ("decode", "libsndfile cannot read .m4a files and ffmpeg is not installed: "
                                                "install ffmpeg (on PATH) to read .m4a")
    assert errors == expected and result.n_failed == len(expected)


@pytest.mark.integration
def test_the_short_clip_is_loop_padded_and_the_manifest_says_so(prepared):
    corpus, out, result = prepared
    manifest = D.read_manifest(out)
    assert manifest.config["audio"]["pad"] == "repeat" and manifest.audio_config.pad == "repeat"
    assert manifest.counts.padded_clips == 1
    table = D.read_split(out, "train", columns=[D.TRACK_ID, D.MEL])
    mel = D.mel_array(table)[table.column(D.TRACK_ID).to_pylist().index("rock.00000")]
    log_mel = LogMel.from_config(manifest.feature_config, sample_rate=SR)
    np.testing.assert_array_equal(mel, log_mel(_preview_window(corpus / "rock" / "rock.00000.wav", "repeat")[None])[0])
