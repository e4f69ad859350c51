"""Test data shared by tests/sources/test_fetch.py and tests/sources/test_archive.py: a tiny GTZAN-like archive."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf


def au_bytes(seed: int, seconds: float = 0.25, sr: int = 22050) -> bytes:
    """A short noise clip encoded as a 16-bit AU file (the Marsyas GTZAN format)."""
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * sr)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, noise, sr, format="AU", subtype="PCM_16")
    return buf.getvalue()


GTZAN_FILES = {
    "genres/blues/blues.00000.au": au_bytes(0),
    "genres/blues/blues.00001.au": au_bytes(1),
    "genres/rock/rock.00000.au": au_bytes(2),
    "genres/bextract_single.mf": b"genres/blues/blues.00000.au\tblues\n",
}


def tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    """A tar archive (compression from ``mode``) holding ``files`` (name -> content), mode 0644."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tree(root: Path) -> list[str]:
    """Every path below ``root`` (files and folders), relative and sorted; [] when ``root`` is absent."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []
