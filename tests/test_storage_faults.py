"""A full disk and an output that is not writable: every write through :mod:`spectrotune.storage` names the path
and the reason, and leaves no half-written file, bundle, report or dataset that a later stage would take for
finished. A full disk is simulated at the storage layer's one writer (half the bytes, then ENOSPC)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spectrotune import dataset as D
from spectrotune import storage
from spectrotune.bundle import load_bundle
from spectrotune.errors import DatasetError, StorageError
from spectrotune.sources.synth.corpus import generate_corpus


def _disk_fills_up(monkeypatch, *, on: str = "") -> list[Path]:
    """Make every local write whose file name contains ``on`` write half its bytes, then fail as a full disk does
    (OSError ENOSPC from the storage layer's one writer); returns the files it failed on."""
    failed: list[Path] = []
    real = storage._write_file

    def full(target: Path, payload: bytes) -> None:
        if on not in target.name:
            return real(target, payload)
        real(target, payload[: len(payload) // 2])
        failed.append(target)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(storage, "_write_file", full)
    return failed


def _visible_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_write_to_a_full_disk_names_the_path_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("the old report")
    failed = _disk_fills_up(monkeypatch)
    with pytest.raises(StorageError) as info:
        storage.write_text(target, "a new report")
    assert str(info.value) == f"{target}: cannot write: the disk is full (no space left on device)"
    assert failed and failed[0].name.startswith(".report.json.tmp-")  # it was written aside ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # ... and that half file removed
    assert target.read_text() == "the old report"


@pytest.mark.parametrize("where", ["under a file", "read-only folder"])
def test_an_output_that_is_not_writable_is_named(tmp_path, where):
    if where == "under a file":  # refused for root too
        (tmp_path / "file").write_text("a regular file")
        target, why = tmp_path / "file" / "out" / "x.json", "a parent of it is a file, not a folder"
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o500)
        target, why = tmp_path / "ro" / "x.json", "permission denied (not writable)"
    try:
        if where == "read-only folder" and os.geteuid() == 0:  # root writes through a mode of 0o500
            storage.write_text(target, "{}")
            assert target.read_text() == "{}"
            return
        with pytest.raises(StorageError) as info:
            storage.write_text(target, "{}")
        assert str(info.value) == f"{target}: cannot write: {why}"
    finally:
        (tmp_path / "ro").exists() and (tmp_path / "ro").chmod(0o700)


def _bundle(path: Path, width: int = 4) -> Path:
    from spectrotune.bundle import save_bundle
    from spectrotune.models.networks import build_model
    from spectrotune.models.params import model_params

    params = model_params("cnn", {"width": width, "depth": 2})
    model = build_model("cnn", n_classes=2, n_mels=16, params=params, norm_mean=torch.zeros(16),
                        norm_std=torch.ones(16))
    return save_bundle(path, model=model.eval(), model_name="cnn", model_params=params, labels=["a", "b"],
                       input_shape=(16, 20), source_kind="audio", audio={}, features={"n_mels": 16},
                       norm_mean=np.zeros(16), norm_std=np.ones(16), metrics={}, config={"seed": 0},
                       config_hash="abc")


@pytest.mark.parametrize("on", ["model.safetensors", "config.yaml", "bundle.json"])
def test_a_bundle_write_that_fills_the_disk_leaves_the_old_bundle_and_no_staging(tmp_path, monkeypatch, on):
    old = _visible_tree(_bundle(tmp_path / "run" / "bundle"))
    _disk_fills_up(monkeypatch, on=on)
    with pytest.raises(StorageError, match="cannot write: the disk is full") as info:
        _bundle(tmp_path / "run" / "bundle", width=8)
    assert f"/{on}: cannot write" in str(info.value)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["bundle"]  # the staging folder is gone
    assert _visible_tree(tmp_path / "run" / "bundle") == old
    assert load_bundle(tmp_path / "run" / "bundle").meta.model.params["width"] == 4


def test_a_bundle_under_a_file_is_refused_by_name(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(StorageError, match=r"runs/\.bundle\.tmp-[0-9a-f]+: cannot create folder: a parent of it is "
                                           "a file, not a folder"):
        _bundle(tmp_path / "runs" / "bundle")


def test_an_evaluate_report_that_fills_the_disk_leaves_the_old_report(tmp_path, monkeypatch, capsys):
    """``spectrotune evaluate`` as typed into the --out of an earlier report; the disk fills up at report.md."""
    from legacy_data import LEGACY_BUNDLE, LEGACY_DATASET

    from spectrotune import runtime
    from spectrotune.cli import main

    monkeypatch.setattr(runtime, "init_ray", lambda **_: pytest.fail("evaluate of a 12-row test split started Ray"))
    data = shutil.copytree(LEGACY_DATASET, tmp_path / "data")
    out = tmp_path / "report"
    argv = ["evaluate", str(LEGACY_BUNDLE), "--data", str(data), "--out", str(out), "--no-baselines"]
    out.mkdir()
    for name in ("report.json", "report.md", "confusion_matrix.png"):  # an earlier run's report
        (out / name).write_text(f"the earlier {name}")
    first = _visible_tree(out)
    failed = _disk_fills_up(monkeypatch, on="report.md")
    assert main(argv) == 2
    assert len(failed) == 1 and failed[0].name.startswith(".report.md.tmp-") and failed[0].parent != out  # staged
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("spectrotune: error: ") and error.endswith(
        "/report.md: cannot write: the disk is full (no space left on device)")
    assert _visible_tree(out) == first  # nothing overwritten: the old report.json still describes its own run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "report"]  # and no staging folder left


@pytest.mark.integration
def test_a_dataset_whose_disk_fills_up_or_is_not_writable_is_not_published(tmp_path, monkeypatch, ray_session):
    """The manifest is the dataset's last file: a disk full there leaves no dataset a later stage would read; an
    --out under a regular file is named."""
    from spectrotune.config import load_config
    from spectrotune.prepare.driver import prepare

    generate_corpus(tmp_path / "corpus", genres=2, tracks=2, seconds=2.0, seed=0)
    failed = _disk_fills_up(monkeypatch, on="manifest.json")
    with pytest.raises(StorageError) as info:
        prepare(tmp_path / "corpus", tmp_path / "ds", config=load_config("demo"), progress=False, log=lambda _: None)
    assert failed and str(info.value).endswith("manifest.json: cannot write: the disk is full (no space left on "
                                               "device)")
    assert not (tmp_path / "ds").exists()
    with pytest.raises(DatasetError, match="not a prepared spectrotune dataset"):
        D.read_manifest(tmp_path / "ds")
    assert not list(tmp_path.rglob("manifest.json")) and not list(tmp_path.rglob(".manifest.json.tmp-*"))
    monkeypatch.undo()
    (tmp_path / "file").write_text("a regular file")  # not writable, for root too
    with pytest.raises(StorageError) as info:
        prepare(tmp_path / "corpus", tmp_path / "file" / "ds", config=load_config("demo"), progress=False,
                log=lambda _: None)
    assert str(info.value).startswith(f"{tmp_path / 'file'}/") and str(info.value).endswith(
        ": cannot create folder: a parent of it is a file, not a folder")
