"""The dataset and the bundle written by main at 325b798 (tests/data/main-325b798), and their source corpus.

The corpus is not kept: :func:`legacy_corpus` rebuilds it bit for bit with the synth command the README there
names. :func:`legacy_dataset` copies the dataset with its manifest pointing at that corpus (the original path,
``/tmp/legacy/corpus``, is gone), so the paths that go back to the audio (robustness rebuild, inspect's export)
can run on it. Shared by the tests of dataset, bundle, predict, inspect and robustness.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

LEGACY = Path(__file__).parent / "data" / "main-325b798"
LEGACY_DATASET = LEGACY / "dataset"
LEGACY_BUNDLE = LEGACY / "bundle"


def legacy_corpus(root: Path) -> Path:
    """``spectrotune synth corpus --genres 3 --tracks 4 --seconds 4 --seed 3`` into ``root``; returns ``root``."""
    from spectrotune.sources.synth.corpus import generate_corpus

    generate_corpus(root, genres=3, tracks=4, seconds=4.0, seed=3)
    return root


def legacy_dataset(dst: Path, corpus: Path) -> Path:
    """A copy of the legacy dataset at ``dst`` whose manifest names ``corpus`` as its source."""
    shutil.copytree(LEGACY_DATASET, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["source"]["path"] = str(corpus)
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dst


def track_file(corpus: Path, track_id: str) -> Path:
    """The WAV of ``track_id`` in a synthesized corpus."""
    (path,) = corpus.rglob(f"{track_id}.wav")
    return path
