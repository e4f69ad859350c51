"""The source kinds own what differs between audio and images; the one audio chain (cut -> noise -> log-mel)
rebuilds a dataset's noisy rows bit for bit, here those of a dataset written by main at 325b798."""

from __future__ import annotations

import numpy as np
import pytest
from legacy_data import LEGACY_DATASET, legacy_corpus, track_file

from spectrotune import dataset as D
from spectrotune.config import load_config
from spectrotune.errors import InputError
from spectrotune.sources.kinds import AUDIO, KINDS, SPOTIFY, LogMel, Windowing, cut_windows, noisy_copies, source_kind


def test_kinds_by_name():
    assert source_kind("audio") is AUDIO and source_kind("spotify") is SPOTIFY and set(KINDS) == {"audio", "spotify"}
    with pytest.raises(InputError, match="unknown source kind 'video'"):
        source_kind("video")


@pytest.mark.parametrize("name, audio, image", [("a.WAV", True, False), ("a.flac", True, False),
                                                ("a.jpg", False, True), ("a.PNG", False, True),
                                                ("a.txt", False, False)])
def test_which_files_each_kind_reads(name, audio, image):
    assert AUDIO.is_input_file(name) is audio and SPOTIFY.is_input_file(name) is image


def test_what_each_kind_makes_of_a_config():
    config = load_config("demo", overrides=["features.n_mels=32", "image.n_frames=40", "audio.segment_seconds=1.0",
                                            "features.hop_length=256"])
    assert AUDIO.mel_shape(config) == (32, 87) and SPOTIFY.mel_shape(config) == (32, 40)
    assert AUDIO.has_audio and not SPOTIFY.has_audio
    assert AUDIO.noise_note(config.noise) == "applied to splits ['train']"
    assert SPOTIFY.noise_note(config.noise) == "not applied: image sources have no audio"
    off = load_config("demo", overrides=["noise.enabled=false"]).noise
    assert AUDIO.noise_note(off) == "off"
    assert (AUDIO.noun, SPOTIFY.noun) == ("audio", "image")


def test_a_window_rebuilt_alone_gets_the_noise_it_got_among_its_track():
    segs = np.random.default_rng(0).standard_normal((5, 2205)).astype(np.float32) * 0.1
    (all_of_them,) = noisy_copies(segs, [("pink", 5.0)], seed=3, track_id="t")
    (alone,) = noisy_copies(segs[3:4], [("pink", 5.0)], seed=3, track_id="t", segment_indices=[3])
    assert all_of_them.name == alone.name == "pink@5dB" and all_of_them.snr_db == [5.0] * 5
    np.testing.assert_array_equal(alone.audio[0], all_of_them.audio[3])


def test_silent_windows_stay_clean_with_no_snr():
    segs = np.zeros((2, 1000), np.float32)
    segs[1] = 0.1
    (copy,) = noisy_copies(segs, [("white", 10.0)], seed=0, track_id="t")
    assert copy.snr_db == [None, 10.0] and np.array_equal(copy.audio[0], segs[0])


def test_the_chain_rebuilds_the_legacy_noisy_train_rows_bit_for_bit(tmp_path):
    corpus = legacy_corpus(tmp_path / "corpus")
    manifest = D.read_manifest(LEGACY_DATASET)
    table = D.read_split(LEGACY_DATASET, "train", columns=[D.TRACK_ID, D.VARIANT, D.MEL, D.SNR_DB])
    windowing = Windowing.from_config(manifest.audio_config, split="train")
    log_mel = LogMel.from_config(manifest.feature_config, sample_rate=manifest.audio_config.sample_rate)
    track = table.column(D.TRACK_ID)[0].as_py()
    segs, padded = cut_windows(track_file(corpus, track), windowing)
    (noisy,) = noisy_copies(segs, [("white", 20.0)], seed=manifest.seed, track_id=track)
    rows = table.filter(np.array([t == track for t in table.column(D.TRACK_ID).to_pylist()]))
    variants = rows.column(D.VARIANT).to_pylist()
    mel = D.mel_array(rows)
    assert not padded and variants.count("white@20dB") == len(segs)
    np.testing.assert_array_equal(mel[[v == "clean" for v in variants]], log_mel(segs))
    np.testing.assert_array_equal(mel[[v == "white@20dB" for v in variants]], log_mel(noisy.audio))
    assert [s for s, v in zip(rows.column(D.SNR_DB).to_pylist(), variants) if v != "clean"] == noisy.snr_db


def test_the_musicnn_front_end_is_a_parameter_of_the_one_chain():
    """configs/musicnn.yaml: 2.992-s windows at 16 kHz become musicnn's 96 x 187 patches (frames 1.. exactly those
    of the whole file; frame 0 is reflect-padded at the window's own start); images refuse the front end."""
    from spectrotune.audio.io import segment
    from spectrotune.audio.musicnn_frontend import musicnn_logmel, musicnn_patches
    from spectrotune.errors import ConfigError

    config = load_config("musicnn")
    assert AUDIO.mel_shape(config) == (96, 187)
    log_mel = LogMel.from_config(config.features, sample_rate=config.audio.sample_rate)
    assert (log_mel.frontend, log_mel.values) == ("musicnn", "log10(10000 x mel power + 1) (musicnn)")
    y = np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 10).astype(np.float32)
    w = Windowing.from_config(config.audio, split="test")
    windows, _ = segment(y, sr=w.sample_rate, seconds=w.segment_seconds, hop_seconds=w.hop_seconds, pad=w.pad)
    mel = log_mel(windows)
    whole, _ = musicnn_patches(musicnn_logmel(y))
    assert mel.shape == whole.shape == (3, 96, 187) and mel.dtype == np.float32
    np.testing.assert_array_equal(mel[0], whole[0])
    np.testing.assert_array_equal(mel[1:, :, 1:], whole[1:, :, 1:])
    assert LogMel.from_config(load_config("demo").features, sample_rate=22050).values == "log-mel dB"
    with pytest.raises(ConfigError, match="spotify images are spectrograms already.*use logmel"):
        SPOTIFY.mel_shape(config)
    with pytest.raises(ConfigError, match="fmax"):
        AUDIO.mel_shape(load_config("musicnn", overrides=["features.fmax=9000"]))
