"""``spectrotune fetch musicnn``: what the session fetch wrote (through pip, as a user runs it), idempotence, the
``--wheel`` path giving the same files, and every refusal: a tampered or truncated wheel, a checkpoint missing a
tensor, pip failing; and ``configuration.py`` read without being executed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from tf_bundle_writer import write_bundle

from spectrotune import schema
from spectrotune.errors import InputError
from spectrotune.models import pretrained
from spectrotune.sources import musicnn_fetch
from spectrotune.sources.musicnn_fetch import WHEEL_NAME, WHEEL_SHA256, fetch_musicnn, read_configuration

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "musicnn-reference"
QUIET = {"log": lambda _: None}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spectrotune", *args], capture_output=True, text=True, timeout=300,
                          check=False, env=env)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != WHEEL_NAME}


def test_the_fetch_wrote_every_model_its_tags_and_the_licence(musicnn_cache):
    folder = musicnn_cache / "musicnn"
    expected = {f"{m}{ext}" for m in pretrained.MODELS for ext in (".safetensors", ".json")}
    assert set(_files(folder)) == expected | {schema.MUSICNN_LICENSE, schema.MUSICNN_MARKER}
    assert hashlib.sha256((folder / WHEEL_NAME).read_bytes()).hexdigest() == WHEEL_SHA256  # --keep-wheel
    licence = (folder / schema.MUSICNN_LICENSE).read_text()
    assert "Music Technology Group, Universitat Pompeu Fabra" in licence and "Permission to use" in licence
    marker = json.loads((folder / schema.MUSICNN_MARKER).read_text())
    assert marker["wheel_sha256"] == WHEEL_SHA256
    assert {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in marker["files"]} == marker["files"]
    for model in pretrained.MODELS:
        meta, tensors = pretrained.read_pretrained(model, folder)
        with np.load(REFERENCE / f"{model}.npz") as ref:
            assert list(meta.tags) == [str(t) for t in ref["tags"]]
        assert (meta.frontend.sr, meta.frontend.n_fft, meta.frontend.hop_length, meta.frontend.n_mels,
                meta.frontend.n_frames, meta.frontend.fmax) == (16000, 512, 256, 96, 187, 8000.0)
        assert len(tensors) == (64 if meta.architecture == "musicnn" else 36)
        assert len(meta.skipped) == (86 if meta.architecture == "musicnn" else 50)
        assert all("Adam" in s or "power" in s for s in meta.skipped) and "optimizer" in meta.skipped_reason
        assert meta.licence_name == "ISC" and meta.source.wheel_sha256 == WHEEL_SHA256


def test_second_run_does_nothing(musicnn_cache):
    folder = musicnn_cache / "musicnn"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    done = _cli("fetch", "musicnn", "--dest", str(folder))
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stderr + done.stdout
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_the_cache_env_var_and_a_given_wheel_give_the_same_files(musicnn_cache, tmp_path):
    """SPECTROTUNE_CACHE moves the cache; --wheel skips pip; the files equal the pip run's byte for byte."""
    env = dict(os.environ, SPECTROTUNE_CACHE=str(tmp_path / "cache"))
    done = _cli("fetch", "musicnn", "--wheel", str(musicnn_cache / "musicnn" / WHEEL_NAME), env=env)
    assert done.returncode == 0, done.stderr
    assert "pip" not in done.stderr
    assert _files(tmp_path / "cache" / "musicnn") == _files(musicnn_cache / "musicnn")


def test_a_changed_file_is_fetched_again(musicnn_cache, tmp_path):
    wheel = musicnn_cache / "musicnn" / WHEEL_NAME
    dest = fetch_musicnn(wheel=wheel, dest=tmp_path / "m", **QUIET)
    path = dest / "MTT_vgg.safetensors"
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    lines = []
    fetch_musicnn(wheel=wheel, dest=dest, log=lines.append)
    assert any("MTT_vgg.safetensors has changed since it was fetched" in line for line in lines)
    assert _files(dest) == _files(musicnn_cache / "musicnn")


def test_tampered_wheel_is_refused_in_one_line(musicnn_cache, tmp_path):
    payload = bytearray((musicnn_cache / "musicnn" / WHEEL_NAME).read_bytes())
    payload[1000] ^= 0xFF
    bad = tmp_path / WHEEL_NAME
    bad.write_bytes(bytes(payload))
    done = _cli("fetch", "musicnn", "--wheel", str(bad), "--dest", str(tmp_path / "out"))
    assert done.returncode == 2
    (error,) = done.stderr.strip().splitlines()[-1:]
    assert error.startswith(f"spectrotune: error: {bad}: not the musicnn 0.1.0 wheel: sha256 ")
    assert error.endswith(f"expected {WHEEL_SHA256} (same size: modified?)")
    assert not (tmp_path / "out").exists()


def test_truncated_wheel_is_refused(musicnn_cache, tmp_path):
    bad = tmp_path / "musicnn.whl"
    bad.write_bytes((musicnn_cache / "musicnn" / WHEEL_NAME).read_bytes()[:14_646_238])
    with pytest.raises(InputError, match=r"musicnn\.whl: not the musicnn 0.1.0 wheel: sha256 [0-9a-f]{64}, expected "
                                         r"[0-9a-f]{64} \(14,646,238 bytes, expected 29,292,476: truncated\?\)"):
        fetch_musicnn(wheel=bad, dest=tmp_path / "out", **QUIET)
    assert not (tmp_path / "out").exists()


def _rebuilt_wheel(original: bytes, tmp_path: Path, replace: dict[str, bytes]) -> Path:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename not in replace:
                dst.writestr(info, src.read(info.filename))
        for name, payload in replace.items():
            dst.writestr(name, payload)
    path = tmp_path / WHEEL_NAME
    path.write_bytes(out.getvalue())
    return path


def test_a_checkpoint_missing_a_tensor_is_refused_naming_it(musicnn_cache, tmp_path, monkeypatch):
    original = (musicnn_cache / "musicnn" / WHEEL_NAME).read_bytes()
    tensors = load_file(str(musicnn_cache / "musicnn" / "MSD_vgg.safetensors"))
    del tensors["dense/bias"]
    index, (data,) = write_bundle(f"{tmp_path}/ckpt/", tensors)
    wheel = _rebuilt_wheel(original, tmp_path, {"musicnn/MSD_vgg/.index": index,
                                                "musicnn/MSD_vgg/.data-00000-of-00001": data})
    # Only this test's own wheel passes the digest check: the check itself is tested above.
    monkeypatch.setattr(musicnn_fetch, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    with pytest.raises(InputError, match=rf"{WHEEL_NAME}:musicnn/MSD_vgg/: the checkpoint does not fit the vgg "
                                         r"network \(missing 'dense/bias'\)"):
        fetch_musicnn(wheel=wheel, dest=tmp_path / "out", **QUIET)
    assert not (tmp_path / "out" / schema.MUSICNN_MARKER).exists()


def test_pip_failure_names_pips_reason(tmp_path, monkeypatch):
    def fake_run(cmd, **kwargs):
        assert cmd[:3] == [sys.executable, "-m", "pip"] and "--only-binary=:all:" in cmd and "--no-deps" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "Looking in indexes: x\nERROR: No matching distribution found "
                                                       "for musicnn==0.1.0\n")

    monkeypatch.setattr(musicnn_fetch.subprocess, "run", fake_run)
    with pytest.raises(InputError, match=r"pip download musicnn==0.1.0 failed \(exit 1\): ERROR: No matching "
                                         r"distribution found for musicnn==0.1.0; .*pass --wheel FILE"):
        fetch_musicnn(dest=tmp_path / "out", **QUIET)


def test_missing_wheel_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.whl: cannot read the musicnn wheel"):
        fetch_musicnn(wheel=tmp_path / "nope.whl", dest=tmp_path / "out", **QUIET)


def test_configuration_is_parsed_never_executed(tmp_path):
    flag = tmp_path / "ran"
    source = (f"import os\nos.system('touch {flag}')\nSR = 16000\nN_MELS = int('96')\n"
              f"MSD_LABELS = ['rock', 'pop']\nX = open('{flag}', 'w')\n")
    values = read_configuration(source, origin="configuration.py")
    assert values == {"SR": 16000, "MSD_LABELS": ["rock", "pop"]}  # N_MELS is a call, not a literal: not read
    assert not flag.exists()
    with pytest.raises(InputError, match="configuration.py: cannot parse"):
        read_configuration("SR = (", origin="configuration.py")


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv(schema.CACHE_ENV, str(tmp_path / "c"))
    assert pretrained.musicnn_cache_dir() == tmp_path / "c" / "musicnn"
    assert pretrained.musicnn_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv(schema.CACHE_ENV)
    assert pretrained.musicnn_cache_dir() == Path.home() / ".cache" / "spectrotune" / "musicnn"
