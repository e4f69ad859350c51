"""Dataset manifests for the musicnn tests: the real manifest of main 325b798 (written before features.frontend
existed: log-mel), or the same made into a dataset prepared with the musicnn front end (configs/musicnn.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

OLD_MANIFEST = Path(__file__).parent / "data" / "main-325b798" / "dataset" / "manifest.json"


def manifest_dict(*, musicnn: bool, n_frames: int = 187, **features) -> dict:
    """The manifest as a dict; ``features`` override the musicnn front end's parameters (``n_fft=1024``)."""
    data = json.loads(OLD_MANIFEST.read_text())
    if musicnn:
        f = {"frontend": "musicnn", "n_fft": 512, "hop_length": 256, "n_mels": 96, "fmin": 0.0, "fmax": None,
             "top_db": None, "handcrafted": True, **features}
        data["config"]["features"] = f
        data["config"]["audio"] |= {"sample_rate": 16000, "segment_seconds": 2.992}
        data["mel"] |= {"shape": [f["n_mels"], n_frames], "sample_rate": 16000,
                        **{k: f[k] for k in ("n_fft", "hop_length", "n_mels", "top_db")}}
    return data


def write_manifest(directory: Path, **kwargs) -> Path:
    """``directory/manifest.json`` of :func:`manifest_dict` (all that reading a dataset's manifest needs)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps(manifest_dict(**kwargs)))
    return directory
