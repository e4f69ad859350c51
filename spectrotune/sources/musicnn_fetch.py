"""``spectrotune fetch musicnn``: the pretrained musicnn / vgg taggers from the musicnn 0.1.0 wheel, into the cache.

The ``musicnn`` package (Pons & Serra 2019, ISC licence, Music Technology Group, Universitat Pompeu Fabra) cannot
be installed here (it pins numpy < 1.17 and TensorFlow 1), but its wheel ships four TF1 checkpoints
(``musicnn/<MODEL>/.index`` + ``.data-00000-of-00001``). :func:`fetch_musicnn`:

1. obtains the wheel: ``python -m pip download --no-deps --only-binary=:all: musicnn==0.1.0`` into a temporary
   folder (``--only-binary`` so pip never builds, i.e. never runs, a source distribution), or a wheel file the
   user already has (``wheel=``);
2. checks its SHA-256 against :data:`WHEEL_SHA256` (any other file is refused, whatever its name);
3. reads, without extracting anything and without executing anything, the checkpoints (with the pure-numpy
   reader :mod:`spectrotune.models.tf_checkpoint`, every tensor's CRC-32C checked), the tag lists and signal
   constants of ``musicnn/configuration.py`` (each assignment's value through :func:`ast.literal_eval`: the file
   is parsed, never imported), and the licence text;
4. checks each checkpoint against :func:`spectrotune.models.pretrained.expected_tensors` (a missing or
   misshapen tensor is an error naming it; entries that are not model variables must be optimizer state, which
   is left out and listed in the model's JSON);
5. writes ``<MODEL>.safetensors`` + ``<MODEL>.json`` per model and ``LICENSE.md`` into the musicnn cache folder
   (each file aside, then renamed), and last ``fetched.json`` with the wheel's digest and every file's SHA-256.

Idempotent: when ``fetched.json`` exists and every file it lists still has its digest, nothing is done. With
``keep_wheel=True`` the verified wheel is also kept in the folder (to carry to machines without a package index).
Every failure is an :class:`~spectrotune.errors.InputError` naming the file. Standard library + numpy +
safetensors; no torch, no ``ray``.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from spectrotune import __version__, schema, storage
from spectrotune.audio.musicnn_frontend import MusicnnFrontend
from spectrotune.errors import InputError
from spectrotune.models import pretrained
from spectrotune.models.tf_checkpoint import data_file_name, read_checkpoint

__all__ = ["WHEEL_NAME", "WHEEL_REQUIREMENT", "WHEEL_SHA256", "WHEEL_SIZE", "cache_is_complete", "fetch_musicnn",
           "read_configuration"]

logger = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "musicnn==0.1.0"
WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
WHEEL_SIZE = 29_292_476  # bytes (informational: the digest is what is checked)
LICENCE_MEMBER = "musicnn-0.1.0.dist-info/LICENSE.md"
CONFIG_MEMBER = "musicnn/configuration.py"
LICENCE_NAME = "ISC"
COPYRIGHT = "Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019 (code by Jordi Pons)"
#: Checkpoint entries that are training state, not model variables: Adam's two slots per variable and its powers.
OPTIMIZER_STATE = re.compile(r"(/Adam(_1)?|^beta[12]_power|^global_step)$")
SKIPPED_REASON = ("optimizer state (Adam moment slots and beta powers): used only to resume training the "
                  "original, not by the network")
PIP_TIMEOUT = 600.0  # seconds


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def cache_is_complete(dest: Path) -> tuple[bool, str]:
    """(True, "") when ``dest/fetched.json`` exists and every file it lists has its SHA-256; else (False, why)."""
    marker = dest / schema.MUSICNN_MARKER
    if not marker.is_file():
        return False, f"no {marker.name}"
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        files = dict(record["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return False, f"{marker} is unreadable ({e})"
    if record.get("wheel_sha256") != WHEEL_SHA256:
        return False, f"{marker} records another wheel"
    expected = {f"{m}{ext}" for m in pretrained.MODELS for ext in (".safetensors", ".json")} | {schema.MUSICNN_LICENSE}
    if not expected <= set(files):
        return False, f"{marker} lists no {min(expected - set(files))}"
    for name, digest in sorted(files.items()):
        path = dest / name
        if not path.is_file():
            return False, f"{path} is missing"
        if _sha256_file(path) != digest:
            return False, f"{path} has changed since it was fetched"
    return True, ""


def fetch_musicnn(
    *,
    wheel: str | os.PathLike[str] | None = None,
    dest: str | os.PathLike[str] | None = None,
    keep_wheel: bool = False,
    log: Callable[[str], object] = logger.info,
) -> Path:
    """Obtain and verify the musicnn wheel, convert its four checkpoints into the cache; do nothing if done before.

    Parameters
    ----------
    wheel : path, optional
        ``musicnn-0.1.0-py3-none-any.whl`` already downloaded; without it pip downloads it (network).
    dest : path, optional
        The musicnn cache folder to write (default :func:`spectrotune.models.pretrained.musicnn_cache_dir`:
        ``$SPECTROTUNE_CACHE/musicnn`` or ``~/.cache/spectrotune/musicnn``).
    keep_wheel : bool
        Also keep the verified wheel in ``dest``.
    log : callable
        Receives one-line status messages.

    Returns
    -------
    Path
        The folder written (``dest``).

    Raises
    ------
    InputError
        pip cannot download the wheel (with pip's reason), the wheel file is missing, its SHA-256 differs (a
        tampered or truncated file), a member is missing or corrupt, a checkpoint lacks a tensor or has one of the
        wrong shape or an unknown extra entry, ``configuration.py`` lacks a constant, or ``dest`` is not a folder.
    """
    dest = pretrained.musicnn_cache_dir(dest)
    if dest.exists() and not dest.is_dir():
        raise InputError(f"fetch musicnn: destination {dest} exists and is not a folder")
    done, why = cache_is_complete(dest)
    if done and (not keep_wheel or (dest / WHEEL_NAME).is_file()):
        log(f"musicnn: already fetched into {dest} (every file matches {schema.MUSICNN_MARKER}); nothing to do")
        return dest
    if dest.exists() and why != f"no {schema.MUSICNN_MARKER}":
        log(f"musicnn: fetching again into {dest}: {why}")
    with tempfile.TemporaryDirectory(prefix="spectrotune-musicnn-") as tmp:
        path = Path(wheel).expanduser() if wheel is not None else _pip_download(Path(tmp), log=log)
        payload = _read_verified(path, log=log)
        written = _convert(payload, path.name, dest, log=log)
        if keep_wheel:
            storage.write_bytes(dest / WHEEL_NAME, payload)
            log(f"musicnn: kept the verified wheel as {dest / WHEEL_NAME}")
    storage.write_json(dest / schema.MUSICNN_MARKER, {
        "wheel": WHEEL_NAME, "wheel_sha256": WHEEL_SHA256, "spectrotune": __version__,
        "files": {name: _sha256_file(dest / name) for name in written},
    })
    log(f"musicnn: {len(pretrained.MODELS)} models written to {dest} ({', '.join(pretrained.MODELS)}); "
        f"licence {LICENCE_NAME} in {schema.MUSICNN_LICENSE}")
    return dest


def _pip_download(tmp: Path, *, log: Callable[[str], object]) -> Path:
    """Run pip download for the wheel into ``tmp``; return the wheel's path or raise InputError with pip's reason."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--no-input", "--dest", str(tmp), WHEEL_REQUIREMENT]
    log(f"musicnn: downloading {WHEEL_REQUIREMENT} with pip ({WHEEL_SIZE / 1e6:.1f} MB)")
    hint = "; on a machine without the package index, download the wheel elsewhere and pass --wheel FILE"
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as e:
        raise InputError(f"pip download {WHEEL_REQUIREMENT} did not finish in {PIP_TIMEOUT:.0f} s{hint}") from e
    except OSError as e:
        raise InputError(f"cannot run pip ({sys.executable} -m pip): {e}{hint}") from e
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "no output")
        raise InputError(f"pip download {WHEEL_REQUIREMENT} failed (exit {done.returncode}): {reason}{hint}")
    found = sorted(tmp.glob("*.whl"))
    if [p.name for p in found] != [WHEEL_NAME]:
        raise InputError(f"pip download {WHEEL_REQUIREMENT} gave {[p.name for p in found]}, expected {WHEEL_NAME}")
    return found[0]


def _read_verified(path: Path, *, log: Callable[[str], object]) -> bytes:
    """The bytes of the wheel at ``path`` once its SHA-256 is :data:`WHEEL_SHA256`."""
    try:
        payload = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read the musicnn wheel: {e.strerror or e}") from e
    actual = _sha256(payload)
    if actual != WHEEL_SHA256:
        size = (f"{len(payload):,} bytes, expected {WHEEL_SIZE:,}: truncated?" if len(payload) != WHEEL_SIZE
                else "same size: modified?")
        raise InputError(f"{path}: not the musicnn 0.1.0 wheel: sha256 {actual}, expected {WHEEL_SHA256} ({size})")
    log(f"musicnn: {path.name} sha256 verified ({actual})")
    return payload


def read_configuration(source: str, *, origin: str) -> dict[str, object]:
    """The top-level constants of musicnn's ``configuration.py``, each value read with :func:`ast.literal_eval`.

    Only assignments of literals are read (``SR = 16000``, ``MSD_LABELS = [...]``); nothing is imported or run.
    Returns the names that are found; raises InputError naming ``origin`` when the file does not parse.
    """
    try:
        tree = ast.parse(source, filename=origin)
    except SyntaxError as e:
        raise InputError(f"{origin}: cannot parse: {e}") from e
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # not a literal: not one of the constants we read
    return values


def _constant(config: dict[str, object], name: str, kind: type, origin: str) -> object:
    value = config.get(name)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InputError(f"{origin}: no {kind.__name__} constant {name} (found {value!r})")
    if kind is list and not all(isinstance(v, str) for v in value):  # type: ignore[union-attr]
        raise InputError(f"{origin}: {name} must be a list of strings")
    return value


def _convert(payload: bytes, wheel_name: str, dest: Path, *, log: Callable[[str], object]) -> list[str]:
    """Write every model's safetensors + JSON and the licence into ``dest``; return the file names written."""
    from safetensors.numpy import save

    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except zipfile.BadZipFile as e:
        raise InputError(f"{wheel_name}: not a readable wheel (zip): {e}") from e

    def member(name: str) -> bytes:
        try:
            return archive.read(name)
        except KeyError:
            raise InputError(f"{wheel_name}: no {name} in the wheel") from None
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:  # bad CRC, truncated member
            raise InputError(f"{wheel_name}: {name} is corrupt: {e}") from e

    origin = f"{wheel_name}:{CONFIG_MEMBER}"
    config = read_configuration(member(CONFIG_MEMBER).decode("utf-8"), origin=origin)
    sr, n_fft, hop, n_mels = (int(_constant(config, name, int, origin))  # type: ignore[call-overload]
                              for name in ("SR", "FFT_SIZE", "FFT_HOP", "N_MELS"))
    # The original's patch length: librosa.time_to_frames(3 s) + 1 (187 frames); its sr / 2 is the mel fmax.
    n_frames = (3 * sr - n_fft // 2) // hop + 1
    frontend = MusicnnFrontend(sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmax=sr / 2, n_frames=n_frames,
                               patch_hop=n_frames)
    licence = member(LICENCE_MEMBER)
    written = []
    for model in pretrained.MODELS:
        arch = pretrained.architecture_of(model)
        tags = tuple(_constant(config, f"{model[:3]}_LABELS", list, origin))  # type: ignore[arg-type]
        prefix = f"musicnn/{model}/"
        index, data = member(prefix + ".index"), member(data_file_name(prefix, 0, 1))
        ckpt = read_checkpoint(index, [data], source=f"{wheel_name}:{prefix}")
        expected = pretrained.expected_tensors(arch, n_classes=len(tags))
        shapes = {name: e.shape for name, e in ckpt.entries.items() if name in expected}
        if shapes != expected:
            raise InputError(f"{wheel_name}:{prefix}: the checkpoint does not fit the {arch} network "
                             f"({pretrained.tensor_difference(shapes, expected)})")
        skipped = sorted(n for n in ckpt.entries if n not in expected)
        unknown = [n for n in skipped if not OPTIMIZER_STATE.search(n)]
        if unknown:
            raise InputError(f"{wheel_name}:{prefix}: unexpected checkpoint entry {unknown[0]!r} "
                             f"(neither a {arch} variable nor optimizer state)")
        tensors = {name: np.ascontiguousarray(ckpt.tensor(name), dtype=np.float32) for name in sorted(expected)}
        meta = pretrained.PretrainedMeta(
            format=pretrained.FORMAT, model=model, architecture=arch, trained_on=pretrained.DATASETS[model[:3]],
            tags=tags, frontend=frontend, weights=f"{model}.safetensors", tensors=expected, skipped=tuple(skipped),
            skipped_reason=SKIPPED_REASON,
            source=pretrained.CheckpointSource(wheel=WHEEL_NAME, wheel_sha256=WHEEL_SHA256, checkpoint=prefix,
                                               index_sha256=_sha256(index), data_sha256=_sha256(data)),
            licence=schema.MUSICNN_LICENSE, licence_name=LICENCE_NAME, copyright=COPYRIGHT,
        )
        # One metadata key: safetensors orders several in a hash map, and the files should be byte-reproducible.
        storage.write_bytes(dest / meta.weights, save(tensors, metadata={"model": f"{pretrained.FORMAT}:{model}"}))
        storage.write_text(dest / f"{model}.json", meta.to_json() + "\n")
        written += [meta.weights, f"{model}.json"]
        log(f"musicnn: {model} ({arch}, {len(tags)} tags): {len(tensors)} tensors, "
            f"{sum(t.size for t in tensors.values()):,} weights; {len(skipped)} optimizer entries left out")
    storage.write_bytes(dest / schema.MUSICNN_LICENSE, licence)
    return written + [schema.MUSICNN_LICENSE]

