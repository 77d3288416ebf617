"""The two networks: a Deep Sets b-tagger over a jet's tracks and a CNN quark/gluon tagger on jet images.

Both standardise their inputs inside the module (buffers set from the training data), so a saved
state dict is all that inference needs. Both return one logit per jet (b, resp. quark).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trackcore.errors import InputError


class DeepSets(nn.Module):
    """phi: per-track MLP; masked sum over tracks; rho: MLP to one logit (b vs light).

    Input (B, T, F) track features and (B, T) bool mask; padded tracks contribute nothing, so the
    output does not depend on track order or padding length.
    """

    def __init__(self, n_features: int, hidden: int = 64, latent: int = 64):
        super().__init__()
        self.n_features = n_features
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.phi = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, latent), nn.ReLU())
        self.rho = nn.Sequential(nn.Linear(latent + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def set_normalisation(self, x: np.ndarray, mask: np.ndarray) -> None:
        """Per-feature mean and std over the real (unmasked) training tracks."""
        t = np.asarray(x)[np.asarray(mask, bool)]
        self.mean.copy_(torch.as_tensor(t.mean(0), dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(t.std(0), 1e-6), dtype=torch.float32))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[2] != self.n_features or mask.shape != x.shape[:2]:
            raise InputError(f"jet tagger DeepSets: expected x (B, T, {self.n_features}) and mask (B, T), "
                             f"got {tuple(x.shape)} and {tuple(mask.shape)}")
        m = mask.to(x.dtype).unsqueeze(-1)
        h = self.phi((x - self.mean) / self.std) * m
        n = m.sum(1)
        # the sum carries the track count; log(1 + n) given explicitly keeps rho's inputs O(1)
        return self.rho(torch.cat([h.sum(1) / 10.0, torch.log1p(n)], dim=1)).squeeze(1)


class JetCNN(nn.Module):
    """Three conv blocks on (B, C, N, N) jet images, then a dense layer to one logit (quark vs gluon)."""

    def __init__(self, channels: int = 3, pixels: int = 24, width: int = 16):
        super().__init__()
        if pixels % 4:
            raise InputError(f"jet tagger JetCNN: pixels must be a multiple of 4, got {pixels}")
        self.channels, self.pixels = channels, pixels
        self.register_buffer("scale", torch.ones(channels))
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * (pixels // 4) ** 2, 64), nn.ReLU(),
                                  nn.Linear(64, 1))

    def set_normalisation(self, images: np.ndarray) -> None:
        """Per-channel scale: the mean pixel sum of each channel over the training images."""
        s = np.asarray(images, np.float64).sum(axis=(2, 3)).mean(0)
        self.scale.copy_(torch.as_tensor(np.maximum(s, 1e-6), dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or tuple(images.shape[1:]) != (self.channels, self.pixels, self.pixels):
            raise InputError(f"jet tagger JetCNN: expected images (B, {self.channels}, {self.pixels}, {self.pixels}), "
                             f"got {tuple(images.shape)}")
        x = images / self.scale.view(1, -1, 1, 1) * 10.0
        return self.head(self.features(x)).squeeze(1)


def save(model: nn.Module, path: str | Path, config: dict) -> None:
    """State dict plus the constructor arguments ``config`` (plain numbers) in one ``.pt`` file."""
    torch.save({"config": config, "state": model.state_dict()}, Path(path))


def load(cls: type, path: str | Path) -> nn.Module:
    """A model of class ``cls`` from a file written by :func:`save`; :class:`InputError` when absent or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"jet tagger: model file {path} not found (train one: trackcore train jet_tagger)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = cls(**blob["config"])
        model.load_state_dict(blob["state"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"jet tagger: {path} is not a {cls.__name__} model ({type(exc).__name__}: {exc})") from exc
    return model.eval()


def predict(model: nn.Module, *arrays: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Sigmoid outputs (n,) float64 of ``model`` on numpy inputs, in batches, without gradients."""
    n = len(arrays[0])
    out = np.zeros(n)
    model.eval()
    with torch.no_grad():
        for i in range(0, n, batch):
            args = [torch.as_tensor(np.asarray(a[i:i + batch])) for a in arrays]
            args = [a.float() if a.dtype.is_floating_point else a for a in args]
            out[i:i + batch] = torch.sigmoid(model(*args)).double().numpy()
    return out
