"""Tests of spectrotune.models.export: ONNX export matches torch, and the export-time pooling matches torch's."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spectrotune.errors import SpectrotuneError
from spectrotune.models.export import export_onnx
from spectrotune.models.networks import AdaptiveAvgPool2d, build_model
from spectrotune.models.params import MODEL_NAMES, MUSICNN_MODELS


def _batch(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("size", "out"), [((17, 33), (4, 4)), ((2, 3), (4, 4)), ((16, 16), (4, 4)), ((9, 5), (3, 2))])
def test_export_pooling_matches_adaptive_avg_pool(
    monkeypatch: pytest.MonkeyPatch, size: tuple[int, int], out: tuple[int, int]
) -> None:
    x = _batch((2, 3, *size))
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    torch.testing.assert_close(AdaptiveAvgPool2d(out)(x), F.adaptive_avg_pool2d(x, out))


def test_export_without_onnx_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(SpectrotuneError, match=r"pip install spectrotune\[onnx\]"):
        export_onnx(build_model("cnn", n_classes=3), tmp_path / "m.onnx", n_mels=128, n_frames=130)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_onnx_export_matches_torch(name: str, tmp_path) -> None:
    import onnxruntime as ort  # optional extra spectrotune[onnx], in the test extra: a missing one fails
    n_mels, n_frames = (96, 187) if name in MUSICNN_MODELS else (64, 130)  # the musicnn front end's patches
    rng = np.random.default_rng(0)
    model = build_model(
        name, n_classes=6, n_mels=n_mels,
        norm_mean=rng.normal(-40, 5, n_mels), norm_std=rng.uniform(5, 15, n_mels),
    )  # fmt: skip
    path = export_onnx(model, tmp_path / f"{name}.onnx", n_mels=n_mels, n_frames=n_frames)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the export used batch 2: the batch axis must be dynamic
        x = (rng.normal(size=(batch, n_mels, n_frames)) * 10 - 40).astype(np.float32)
        with torch.no_grad():
            expected = model.eval()(torch.from_numpy(x)).numpy()
        (got,) = session.run(["logits"], {"mel": x})
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
