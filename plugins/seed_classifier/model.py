"""The seed classifier network (PyTorch; only training, export and the parity tests import this).

A small MLP: standardised features -> hidden layers (ReLU) -> 3 logits (good, medium, bad). The
feature means and scales are buffers of the module, so the exported ONNX graph takes raw features
and returns class probabilities: nothing but the graph is needed at inference.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from trackcore.errors import InputError

from .features import N_FEATURES

#: Name of the graph's input and output in the ONNX file.
ONNX_INPUT, ONNX_OUTPUT = "features", "probabilities"
#: ONNX opset used for export.
ONNX_OPSET = 17


class SeedMLP(nn.Module):
    """MLP over :data:`~.features.FEATURE_NAMES`; ``forward`` returns logits, ``probabilities`` softmax."""

    def __init__(self, n_features: int = N_FEATURES, hidden: Sequence[int] = (64, 64), n_classes: int = 3):
        super().__init__()
        self.n_features, self.hidden, self.n_classes = int(n_features), tuple(int(h) for h in hidden), int(n_classes)
        self.register_buffer("mean", torch.zeros(self.n_features))
        self.register_buffer("scale", torch.ones(self.n_features))
        layers: list[nn.Module] = []
        width = self.n_features
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, self.n_classes))
        self.net = nn.Sequential(*layers)

    def set_normalisation(self, features: np.ndarray) -> None:
        """Standardise with the mean and spread of ``features`` (N, n_features), the training set."""
        x = np.asarray(features, np.float64)
        self.mean.copy_(torch.as_tensor(x.mean(0), dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(1.0 / np.maximum(x.std(0), 1e-6), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InputError(f"seed classifier: input must have shape (N, {self.n_features}), got {tuple(x.shape)}")
        return self.net((x - self.mean) * self.scale)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.forward(x), dim=1)


class _Probabilities(nn.Module):
    """Wrapper exported to ONNX: raw features in, softmax probabilities out."""

    def __init__(self, model: SeedMLP):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model.net((x - self.model.mean) * self.model.scale), dim=1)


def predict_torch(model: SeedMLP, features: np.ndarray, batch: int = 65536) -> np.ndarray:
    """(N, 3) float32 class probabilities of ``features`` (N, n_features) with PyTorch, on CPU."""
    model.eval()
    out = []
    with torch.no_grad():
        x = torch.as_tensor(np.asarray(features, np.float32))
        for i in range(0, len(x), batch):
            out.append(model.probabilities(x[i:i + batch]).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.n_classes), np.float32)


def save_state(model: SeedMLP, path: str | Path) -> None:
    """Write the state dict plus the architecture (plain ints, loadable with ``weights_only=True``)."""
    torch.save({"state_dict": model.state_dict(), "n_features": model.n_features, "hidden": list(model.hidden),
                "n_classes": model.n_classes}, Path(path))


def load_state(path: str | Path) -> SeedMLP:
    """The :class:`SeedMLP` saved by :func:`save_state` (``weights_only=True``: no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"seed classifier: model file {path} not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: UnpicklingError, EOFError, zip errors...
        raise InputError(f"seed classifier: cannot load model file {path} "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    try:
        if not isinstance(blob, dict):
            raise TypeError(f"expected a dict, got {type(blob).__name__}")
        model = SeedMLP(int(blob["n_features"]), [int(h) for h in blob["hidden"]], int(blob["n_classes"]))
        model.load_state_dict(blob["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"seed classifier: {path} is not a seed classifier state dict: {str(exc)[:200]}") from exc
    model.eval()
    return model


def export_onnx(model: SeedMLP, path: str | Path) -> None:
    """Write ``model`` as ONNX (input ``features`` (N, n_features) float32, output ``probabilities`` (N, 3))."""
    import warnings

    model.eval()
    example = torch.zeros(2, model.n_features)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs the extra
        # package onnxscript; for a plain MLP both give the same graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_Probabilities(model), (example,), str(path), input_names=[ONNX_INPUT],
                          output_names=[ONNX_OUTPUT], dynamic_axes={ONNX_INPUT: {0: "n"}, ONNX_OUTPUT: {0: "n"}},
                          opset_version=ONNX_OPSET, dynamo=False)
