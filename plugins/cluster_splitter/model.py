"""The cluster splitter CNN (PyTorch): charge map + scalars -> P(1), P(2), P(>=3) and crossing positions.

Outputs per cluster: class logits (3) and, for each hypothesis of k = 1, 2, 3 particles, k positions
(offsets from the window's central cell in pitch units) with their Gaussian sigmas. The network regresses
each position as an offset from the charge centroid of the map (computed inside the graph): the centroid
is already the right answer for one particle and the charge-weighted mean of several, so the MLP only
has to learn the separations, not where the cluster sits in the window. 6 slots, slot
:data:`SLOTS` ``[k - 1]`` holds hypothesis k. ONNX graph: input ``maps`` (N, 1, WU, WV) and ``scalars``
(N, S) float32; outputs ``probabilities`` (N, 3), ``positions`` (N, 6, 2), ``sigmas`` (N, 6, 2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trackcore.errors import InputError

from .features import N_SCALARS, WINDOW_U, WINDOW_V

#: Position slots of each hypothesis: 1 particle -> slot 0, 2 -> slots 1-2, >= 3 -> slots 3-5.
SLOTS = (slice(0, 1), slice(1, 3), slice(3, 6))
N_SLOTS = 6
ONNX_INPUTS = ("maps", "scalars")
ONNX_OUTPUTS = ("probabilities", "positions", "sigmas")
ONNX_OPSET = 17
#: log(sigma) limits (pitch units) to keep the Gaussian likelihood finite early in training.
LOG_SIGMA_RANGE = (-4.0, 2.0)


class SplitterCNN(nn.Module):
    """Two 3x3 convolutions over the charge map, then an MLP with the scalars; three heads."""

    def __init__(self, channels: tuple[int, int] = (8, 16), hidden: int = 64):
        super().__init__()
        self.channels, self.hidden = tuple(int(c) for c in channels), int(hidden)
        c1, c2 = self.channels
        self.conv = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU())
        self.mlp = nn.Sequential(nn.Linear(c2 * WINDOW_U * WINDOW_V + N_SCALARS, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())
        self.classes = nn.Linear(hidden, 3)
        self.positions = nn.Linear(hidden, N_SLOTS * 4)
        # Input normalisation, fitted on the training set (saved with the weights).
        self.register_buffer("map_scale", torch.ones(1))
        self.register_buffer("scalar_mean", torch.zeros(N_SCALARS))
        self.register_buffer("scalar_scale", torch.ones(N_SCALARS))
        # Window cell centres as offsets from the central cell (pitch units), for the in-graph centroid.
        self.register_buffer("cell_u", (torch.arange(WINDOW_U, dtype=torch.float32) - WINDOW_U // 2).view(1, WINDOW_U, 1),
                             persistent=False)
        self.register_buffer("cell_v", (torch.arange(WINDOW_V, dtype=torch.float32) - WINDOW_V // 2).view(1, 1, WINDOW_V),
                             persistent=False)

    def set_normalisation(self, maps: np.ndarray, scalars: np.ndarray) -> None:
        nonzero = maps[maps > 0]
        self.map_scale.fill_(1.0 / float(np.mean(nonzero)) if nonzero.size else 1.0)
        self.scalar_mean.copy_(torch.as_tensor(scalars.mean(0), dtype=torch.float32))
        self.scalar_scale.copy_(torch.as_tensor(1.0 / np.maximum(scalars.std(0), 1e-3), dtype=torch.float32))

    def forward(self, maps: torch.Tensor, scalars: torch.Tensor):
        """(logits (N, 3), positions (N, 6, 2), log_sigma (N, 6, 2)) in pitch units."""
        h = self.conv(maps * self.map_scale).flatten(1)
        h = self.mlp(torch.cat([h, (scalars - self.scalar_mean) * self.scalar_scale], dim=1))
        out = self.positions(h).view(-1, N_SLOTS, 4)
        m = maps[:, 0]
        total = m.sum(dim=(1, 2)).clamp_min(1e-9)
        centroid = torch.stack([(m * self.cell_u).sum(dim=(1, 2)) / total, (m * self.cell_v).sum(dim=(1, 2)) / total], 1)
        return self.classes(h), out[..., :2] + centroid[:, None, :], out[..., 2:].clamp(*LOG_SIGMA_RANGE)


class _Exported(nn.Module):
    """What the ONNX graph computes: probabilities, positions and sigmas (not log)."""

    def __init__(self, model: SplitterCNN):
        super().__init__()
        self.model = model

    def forward(self, maps: torch.Tensor, scalars: torch.Tensor):
        logits, pos, log_sigma = self.model(maps, scalars)
        return torch.softmax(logits, dim=1), pos, torch.exp(log_sigma)


def predict_torch(model: SplitterCNN, maps: np.ndarray, scalars: np.ndarray, batch: int = 8192):
    """(probabilities (N, 3), positions (N, 6, 2), sigmas (N, 6, 2)) float32 with PyTorch on CPU."""
    model.eval()
    wrapped = _Exported(model)
    outs = []
    with torch.no_grad():
        for i in range(0, len(maps), batch):
            outs.append([t.numpy() for t in wrapped(torch.as_tensor(maps[i:i + batch], dtype=torch.float32),
                                                    torch.as_tensor(scalars[i:i + batch], dtype=torch.float32))])
    if not outs:
        return (np.zeros((0, 3), np.float32), np.zeros((0, N_SLOTS, 2), np.float32), np.zeros((0, N_SLOTS, 2), np.float32))
    return tuple(np.concatenate([o[k] for o in outs]) for k in range(3))


def save_state(model: SplitterCNN, path: str | Path) -> None:
    """State dict plus architecture as plain ints (loadable with ``weights_only=True``)."""
    torch.save({"state_dict": model.state_dict(), "channels": list(model.channels), "hidden": model.hidden,
                "window": [WINDOW_U, WINDOW_V],
                "n_scalars": N_SCALARS}, Path(path))


def load_state(path: str | Path) -> SplitterCNN:
    """The :class:`SplitterCNN` written by :func:`save_state` (:class:`InputError` if missing or not one)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"cluster splitter: model file {path} not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if list(blob["window"]) != [WINDOW_U, WINDOW_V]:
            raise ValueError(f"window {blob['window']} != {[WINDOW_U, WINDOW_V]}")
        if int(blob.get("n_scalars", -1)) != N_SCALARS:
            raise ValueError(f"{blob.get('n_scalars')} scalar inputs != {N_SCALARS} (model from another version)")
        model = SplitterCNN(tuple(int(c) for c in blob["channels"]), int(blob["hidden"]))
        model.load_state_dict(blob["state_dict"])
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: unpickling, zip, key and shape errors
        raise InputError(f"cluster splitter: {path} is not a cluster splitter state dict "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    model.eval()
    return model


def export_onnx(model: SplitterCNN, path: str | Path) -> None:
    """Write ``model`` as ONNX (see the module docstring for inputs and outputs)."""
    import warnings

    model.eval()
    example = (torch.zeros(2, 1, WINDOW_U, WINDOW_V), torch.zeros(2, N_SCALARS))
    dyn = {name: {0: "n"} for name in ONNX_INPUTS + ONNX_OUTPUTS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_Exported(model), example, str(path), input_names=list(ONNX_INPUTS),
                          output_names=list(ONNX_OUTPUTS), dynamic_axes=dyn, opset_version=ONNX_OPSET, dynamo=False)
