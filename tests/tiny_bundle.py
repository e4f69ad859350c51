"""A small random-weight bundle written through save_bundle, for the predict tests of formats, short clips and
silence (what a bundle holds matters there, not how well it classifies)."""

from __future__ import annotations

from pathlib import Path

import torch

from spectrotune.audio import logmel
from spectrotune.bundle import save_bundle
from spectrotune.config import load_config
from spectrotune.models.networks import build_model
from spectrotune.models.params import model_params

LABELS = ["blues", "jazz", "metal", "rock"]
SR = 22050
FEATURES = ("features.n_mels=16", "features.n_fft=512", "features.hop_length=256")


def tiny_bundle(path: Path, *, overrides: tuple[str, ...] = (), drop_audio_keys: tuple[str, ...] = ()) -> Path:
    """A 4-genre CNN bundle for 3-s windows at 22050 Hz; ``overrides`` go to the config (``audio.pad=zeros``),
    ``drop_audio_keys`` are left out of its ``audio`` section (as bundles written before those keys existed)."""
    config = load_config("demo", overrides=[*FEATURES, *overrides])
    cfg = config.to_dict()
    audio = {k: v for k, v in cfg["audio"].items() if k not in drop_audio_keys}
    n_mels = config.features.n_mels
    window = round(config.audio.segment_seconds * config.audio.sample_rate)
    n_frames = logmel.n_frames(window, hop_length=config.features.hop_length)
    params = model_params("cnn", {"width": 4, "depth": 2})
    torch.manual_seed(0)
    # Statistics near the log-mel range make the random net's outputs depend on the input (not saturated).
    mean, std = torch.full((n_mels,), -40.0), torch.full((n_mels,), 20.0)
    model = build_model("cnn", n_classes=len(LABELS), n_mels=n_mels, params=params, norm_mean=mean, norm_std=std)
    return save_bundle(path, model=model.eval(), model_name="cnn", model_params=params, labels=LABELS,
                       input_shape=(n_mels, n_frames), source_kind="audio", audio=audio, features=cfg["features"],
                       norm_mean=mean.numpy(), norm_std=std.numpy(), metrics={}, config=cfg,
                       config_hash=config.hash())
