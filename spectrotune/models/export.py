"""ONNX export of a classifier from :mod:`spectrotune.models.networks` (optional extra: ``spectrotune[onnx]``).

The exported graph takes ``"mel"``, float32 ``[batch, n_mels, n_frames]`` log-mel (dB, the same input as the torch
model, normalisation included), and returns ``"logits"``, float32 ``[batch, n_classes]``. Only the batch axis is
dynamic. ``spectrotune export BUNDLE --onnx FILE`` calls :func:`export_onnx` on a bundle's model.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from spectrotune.errors import SpectrotuneError

__all__ = ["export_onnx"]


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    n_mels: int,
    n_frames: int,
    opset: int = 17,
) -> Path:
    """Export ``model`` to an ONNX file with a dynamic batch axis.

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`spectrotune.models.networks.build_model` (normalised or not). It is exported in eval
        mode on the CPU; its training flag is restored afterwards.
    path : str or PathLike
        Output ``.onnx`` file. Written beside the target and renamed on success, so a failed export leaves
        nothing behind.
    n_mels, n_frames : int
        Shape of the example input ``[batch, n_mels, n_frames]``. The batch axis is dynamic; the time axis is
        fixed to ``n_frames`` (segments are a fixed length).
    opset : int
        ONNX opset version.

    Returns
    -------
    pathlib.Path
        The written file. Input name ``"mel"`` (float32 ``[batch, n_mels, n_frames]``), output ``"logits"``.

    Raises
    ------
    SpectrotuneError
        If the optional ``onnx`` package is missing (``pip install spectrotune[onnx]``) or the export fails.
    """
    try:
        import onnx  # noqa: F401  (the exporter needs it; fail early with an actionable message)
    except ImportError as e:
        raise SpectrotuneError("ONNX export needs the onnx package: pip install spectrotune[onnx]") from e

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    was_training = model.training
    device = next(model.parameters()).device
    model.eval().cpu()
    try:
        example = torch.zeros(2, n_mels, n_frames, dtype=torch.float32)
        # The TorchScript exporter needs only `onnx`; the dynamo one would also need onnxscript.
        with warnings.catch_warnings():
            # Shapes other than batch are constants of the export by design; the GRU warning is about a zero h0
            # of fixed batch size, but nn.GRU sizes h0 from the input, which the trace keeps dynamic.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                input_names=["mel"],
                output_names=["logits"],
                dynamic_axes={"mel": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
        os.replace(tmp, path)
    except Exception as e:
        raise SpectrotuneError(f"ONNX export to {str(path)!r} failed: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
        model.to(device).train(was_training)
    return path
