"""The prepare pipeline end to end on Ray Data: good, odd and bad inputs mixed in one corpus.

One prepare run is shared by most tests (module fixture) so the suite pays Ray Data's start-up once; every test
that uses it starts Ray and is marked ``integration``. One batch through the task without Ray:
tests/prepare/test_task.py.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from spectrotune import dataset as D
from spectrotune.cli import main as cli_main
from spectrotune.config import load_config
from spectrotune.errors import DatasetError, OutputExistsError
from spectrotune.prepare.driver import prepare

SR = 22050
GENRES = ("blues", "jazz", "rock")


def _tone(seconds: float, freq: float, *, sr: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


GOOD = {  # relative path -> (seconds, how it is written)
    "blues/blues.00000.wav": (7.0, "PCM_16"),
    "blues/blues.00001.wav": (7.0, "PCM_U8"),
    "blues/blues.00002.wav": (6.5, "PCM_24"),
    "jazz/jazz.00000.wav": (7.0, "FLOAT"),
    "jazz/jazz.00001.WAV": (7.0, "PCM_16"),  # upper-case extension
    "jazz/jäzz_çafé.wav": (6.0, "PCM_16"),  # non-ASCII name
    "rock/rock.00000.wav": (7.0, "stereo44k"),
    "rock/rock.00001.wav": (6.0, "silent"),
    "rock/rock.00002.wav": (2.0, "PCM_16"),  # shorter than one window: padded
}
BAD = {  # relative path -> reason fragment expected in the errors table
    "blues/blues.00003.wav": "not a readable audio file",  # truncated inside the header
    "blues/blues.00004.wav": "empty file",
    "jazz/jazz.00002.wav": "not a readable audio file",  # a text file named .wav
    "jazz/jazz.00054.wav": "not a readable audio file",  # corrupt header, like GTZAN's
    "rock/rock.00003.wav": "too short",
    "rock/rock.00004.wav": "NaN or infinite",
    "rock/rock.00005.wav": "",  # unreadable: a dangling link
}


def make_corpus(root: Path) -> Path:
    for i, (rel, (seconds, how)) in enumerate(GOOD.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        freq = 110.0 * (1 + GENRES.index(path.parent.name))
        if how == "stereo44k":
            y = _tone(seconds, freq, sr=44100, seed=i)
            sf.write(path, np.stack([y, 0.5 * y], axis=1), 44100, subtype="PCM_16")
        elif how == "silent":
            sf.write(path, np.zeros(int(seconds * SR), np.float32), SR, subtype="PCM_16")
        else:
            sf.write(path, _tone(seconds, freq, seed=i), SR, subtype=how)
    good = root / "blues" / "blues.00000.wav"
    (root / "blues" / "blues.00003.wav").write_bytes(good.read_bytes()[:30])
    (root / "blues" / "blues.00004.wav").write_bytes(b"")
    (root / "jazz" / "jazz.00002.wav").write_text("this is not audio\n" * 100)
    (root / "jazz" / "jazz.00054.wav").write_bytes(b"\x00" * 12 + good.read_bytes()[12:])
    sf.write(root / "rock" / "rock.00003.wav", _tone(0.5, 220.0), SR, subtype="PCM_16")
    nan = _tone(4.0, 330.0)
    nan[1000:1010] = np.nan
    sf.write(root / "rock" / "rock.00004.wav", nan, SR, subtype="FLOAT")
    (root / "rock" / "rock.00005.wav").symlink_to(root / "missing-target.wav")
    return root


def _lists(root: Path) -> Path:
    """Every file in train except one track per genre in valid and test."""
    lists = root.parent / "lists"
    lists.mkdir()
    rows = {"train": [], "valid": [], "test": []}
    for rel in list(GOOD) + list(BAD):
        name = Path(rel).name
        split = {"blues.00001.wav": "valid", "jazz.00000.wav": "valid", "rock.00001.wav": "valid",
                 "blues.00002.wav": "test", "jäzz_çafé.wav": "test", "rock.00002.wav": "test"}.get(name, "train")
        rows[split].append(rel)
    for split, lines in rows.items():
        (lists / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return lists


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, ray_session):
    base = tmp_path_factory.mktemp("pipeline")
    corpus = make_corpus(base / "corpus")
    config = load_config("demo", overrides=[
        "split.kind=lists", f"split.dir={_lists(corpus)}", "audio.hop_seconds.train=2.0",
        "noise.variants=[{kind: white, snr_db: 10}, {kind: pink, snr_db: 0}]",
    ])
    result = prepare(corpus, base / "out", config=config, progress=False)
    return corpus, base / "out", result, config


@pytest.mark.integration
def test_every_good_file_is_processed_and_every_bad_one_recorded(prepared):
    corpus, out, result, _ = prepared
    errors = D.read_errors(out).to_pylist()
    failed = {Path(e["path"]).relative_to(corpus).as_posix(): e["reason"] for e in errors}
    assert set(failed) == set(BAD)
    for rel, fragment in BAD.items():
        assert fragment in failed[rel], (rel, failed[rel])
        assert failed[rel], rel
    table = pq.read_table(out / "data")
    written = set(table.column("track_id").to_pylist())
    assert written == {Path(rel).stem for rel in GOOD}
    assert result.n_failed == len(BAD)
    assert result.manifest.errors.count == len(BAD)


@pytest.mark.integration
def test_row_counts_match_the_manifest(prepared):
    _, out, result, _ = prepared
    manifest = json.loads((out / D.MANIFEST).read_text())
    table = pq.read_table(out / "data", columns=["split", "genre", "variant"])
    counted = Counter(zip(table.column("split").to_pylist(), table.column("genre").to_pylist(),
                          table.column("variant").to_pylist()))
    expected = {(s, g, v): n for s, genres in manifest["counts"]["per_split_genre_variant"].items()
                for g, variants in genres.items() for v, n in variants.items()}
    assert dict(counted) == expected
    assert sum(manifest["counts"]["rows_per_split"].values()) == table.num_rows
    assert manifest["labels"] == list(GENRES)
    assert manifest["counts"]["tracks"] == len(GOOD)


@pytest.mark.integration
def test_segmentation_hop_per_split_and_padding(prepared):
    _, out, result, _ = prepared
    clean = pq.read_table(out / "data", filters=[("variant", "=", "clean")]).to_pandas()
    segs = clean.groupby("track_id")["segment"].count()
    # 7 s at 3-s windows: train hop 2 s -> starts 0, 2, 4 -> 3 segments; valid/test hop 3 s -> 2 segments
    assert segs["blues.00000"] == 3
    assert segs["jazz.00000"] == 2
    assert segs["rock.00002"] == 1  # 2 s clip padded to one window
    assert result.manifest.counts.padded_clips == 1
    assert result.manifest.counts.silent_segments >= 2


@pytest.mark.integration
def test_noise_only_on_train_and_values_finite(prepared):
    _, out, _, _ = prepared
    table = pq.read_table(out / "data")
    df = table.select(["split", "variant", "snr_db", "track_id"]).to_pandas()
    assert set(df[df.split == "train"].variant) == {"clean", "white@10dB", "pink@0dB"}
    assert set(df[df.split != "train"].variant) == {"clean"}
    mel = D.mel_array(table)
    assert mel.shape[1:] == (128, 130) and mel.dtype == np.float32
    assert np.isfinite(mel).all()
    feats = np.stack([f for f in table.column("features").to_pylist() if f is not None])
    assert feats.shape[1] == 57 and np.isfinite(feats).all()
    # the silent clip's noisy variants have no defined SNR: null, and the segment stays clean
    silent = df[(df.track_id == "rock.00001") & (df.variant != "clean")]
    assert silent.snr_db.isna().all() if len(silent) else True
    noisy = df[(df.variant == "white@10dB") & (df.track_id != "rock.00001")]
    assert (noisy.snr_db == 10.0).all()


@pytest.mark.integration
def test_noisy_rows_differ_from_clean(prepared):
    _, out, _, _ = prepared
    t = D.read_split(out, "train", variants=["clean", "white@10dB"])
    t = t.filter(np.array([tid == "blues.00000" for tid in t.column("track_id").to_pylist()]))
    mel = D.mel_array(t)
    variants = t.column("variant").to_pylist()
    clean, noisy = mel[[v == "clean" for v in variants]], mel[[v != "clean" for v in variants]]
    assert clean.shape == noisy.shape
    assert np.abs(clean - noisy).mean() > 1.0  # dB


@pytest.mark.integration
def test_rerun_is_bit_identical(prepared, tmp_path):
    corpus, out, _, config = prepared
    again = prepare(corpus, tmp_path / "again", config=config, progress=False).out
    for split in ("train", "valid", "test"):
        a, b = D.read_split(out, split), D.read_split(again, split)
        assert a.num_rows == b.num_rows > 0
        assert np.array_equal(D.mel_array(a), D.mel_array(b))
        assert a.column("snr_db").equals(b.column("snr_db"))


@pytest.mark.integration
def test_existing_output_refused_then_overwritten(prepared, tmp_path):
    corpus, out, _, config = prepared
    target = tmp_path / "copy"
    shutil.copytree(out, target)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        prepare(corpus, target, config=config, progress=False)
    (target / "stale.txt").write_text("from the old run")
    prepare(corpus, target, config=config, overwrite=True, progress=False)
    assert not (target / "stale.txt").exists()
    assert pq.read_table(target / "data").num_rows == pq.read_table(out / "data").num_rows  # no duplicated rows
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.integration
def test_interrupted_run_leaves_only_its_staging_folder(prepared, tmp_path, monkeypatch):
    """Ctrl-C mid-run: no ``out`` a later stage could take for a dataset; the hidden staging folder stays for
    ``--resume`` (tests/prepare/test_resume.py, test_faults.py)."""
    import spectrotune.prepare.driver as pipeline

    corpus, _, _, config = prepared

    def interrupted(*args, staging, **kwargs):
        shard = Path(staging) / "dataset" / "data" / "split=train" / "train-part-00000.parquet"
        shard.parent.mkdir(parents=True)
        shard.write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_run_tasks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, tmp_path / "out", config=config, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == [".out.partial"]
    with pytest.raises(DatasetError):
        D.read_manifest(tmp_path / "out")


@pytest.mark.integration
def test_cli_summary_and_strict(prepared, tmp_path, capsys):
    corpus, _, _, _ = prepared
    lists = corpus.parent / "lists"
    args = ["prepare", "demo", "--source", str(corpus), "--set", "split.kind=lists", "--set", f"split.dir={lists}",
            "--set", "noise.enabled=false", "--set", "features.handcrafted=false", "--no-progress"]
    assert cli_main([*args, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert f"{len(BAD)} input(s) failed" in out
    assert cli_main([*args, "--out", str(tmp_path / "b"), "--strict"]) != 0
    assert "--strict" in capsys.readouterr().err
    assert cli_main([*args, "--out", str(tmp_path / "a")]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    table = pq.read_table(tmp_path / "a" / "data")
    assert set(table.column("variant").to_pylist()) == {"clean"}
    assert table.column("features").null_count == table.num_rows


def test_bad_config_value_exits_2_with_one_line(tmp_path, capsys):
    assert cli_main(["prepare", "demo", "--source", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--set", "audio.sample_rate=fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "audio.sample_rate='fast'" in err and "--set" in err


@pytest.mark.integration
def test_inspect_renders_examples_and_exports_noisy_audio_at_target_snr(prepared, tmp_path):
    from spectrotune.prepare.inspect import inspect_dataset
    from spectrotune.audio.noise import measured_snr_db

    _, out, _, _ = prepared
    text = inspect_dataset(out, out=tmp_path, export_audio=2)
    assert "labels:   3: blues, jazz, rock" in text and "errors:   7" in text
    png = tmp_path / "examples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wavs = sorted((tmp_path / "audio").glob("*.wav"))
    assert len(wavs) == 2 * 3  # clean + two noisy variants for each of two segments
    for clean_path in [w for w in wavs if w.name.endswith("_clean.wav")]:
        clean, _ = sf.read(clean_path, dtype="float64")
        noisy, _ = sf.read(str(clean_path).replace("_clean.wav", "_white_at_10dB.wav"), dtype="float64")
        if np.mean(clean**2) > 1e-8:  # the silent clip has no SNR to check
            assert abs(measured_snr_db(clean, noisy) - 10.0) < 0.5  # 16-bit WAV quantisation aside


@pytest.fixture(scope="module")
def spotify_corpus(tmp_path_factory):
    from spectrotune.sources.spotify_render import render_spotify_corpus
    from spectrotune.sources.synth.corpus import generate_corpus

    base = tmp_path_factory.mktemp("spotify")
    generate_corpus(base / "audio", genres=3, tracks=4, seconds=9.0, seed=1)
    root = base / "dataset"
    render_spotify_corpus(base / "audio" / "genres_original", root, seed=1, fractions=(0.5, 0.25, 0.25))
    bad = root / "training" / "blues" / "broken_0.jpg"
    bad.write_bytes(next(root.rglob("*.jpg")).read_bytes()[:200])  # a truncated JPG
    return base


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["by_song", "folders"])
def test_spotify_images_flow_through_the_same_schema(spotify_corpus, tmp_path, ray_session, kind):
    config = load_config("spotify", overrides=[f"split.kind={kind}", "split.fractions={train: 0.5, valid: 0.25, test: 0.25}"])
    result = prepare(spotify_corpus, tmp_path / "out", config=config, progress=False)
    m = result.manifest
    assert m.source.kind == "spotify" and m.noise.startswith("not applied")
    assert list(m.labels) == ["blues", "classical", "country"]
    table = pq.read_table(tmp_path / "out" / "data")
    assert set(table.column("variant").to_pylist()) == {"clean"}
    mel = D.mel_array(table)
    assert mel.shape[1:] == (128, 130) and np.isfinite(mel).all() and 0.0 <= mel.min() and mel.max() <= 1.0
    errors = D.read_errors(tmp_path / "out").to_pylist()
    assert [Path(e["path"]).name for e in errors] == ["broken_0.jpg"]
    assert table.num_rows == 3 * 4 * 3  # 3 genres x 4 songs x three 3-s clips, the broken JPG aside
    splits_of: dict[str, set[str]] = {}
    for track, split in zip(table.column("track_id").to_pylist(), table.column("split").to_pylist()):
        splits_of.setdefault(track, set()).add(split)
    assert all(len(s) == 1 for s in splits_of.values())  # no track in two splits
    songs: dict[str, set[str]] = {}
    for track, split in zip(table.column("track_id").to_pylist(), table.column("split").to_pylist()):
        songs.setdefault(track.split("/")[-1].rsplit("_", 1)[0], set()).add(str(split))
    if kind == "by_song":
        assert all(len(s) == 1 for s in songs.values())
    else:  # the shipped folders leak songs across splits, as documented
        assert any(len(s) > 1 for s in songs.values())
