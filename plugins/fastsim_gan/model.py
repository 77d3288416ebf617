"""The conditional GAN: an MLP generator (conditions + noise -> cluster observables) and an MLP critic.

Inference needs no PyTorch: :func:`export_numpy` writes the generator's weights and normalisation to
a ``.npz`` that :class:`NumpyGenerator` runs with float32 matrix products (one batch per event), which
is cheaper per event than a torch or onnxruntime call for a network this small.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trackcore.errors import InputError

from .clusters import INTEGER_OBSERVABLES, N_CONDITIONS, N_OBSERVABLES

#: Leaky-ReLU slope of both networks.
LEAK = 0.2
#: Keys of the exported ``.npz``.
NPZ_KEYS = ("x_mean", "x_std", "y_mean", "y_std", "noise_dim", "n_layers")


def _mlp(sizes: list[int]):
    import torch

    layers: list = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.LeakyReLU(LEAK))
    return torch.nn.Sequential(*layers)


def make_networks(hidden: tuple[int, ...], noise_dim: int):
    """(generator, critic) torch modules; inputs standardised outside (see :class:`Normalisation`)."""
    gen = _mlp([N_CONDITIONS + noise_dim, *hidden, N_OBSERVABLES])
    critic = _mlp([N_CONDITIONS + N_OBSERVABLES, *hidden, 1])
    return gen, critic


class Normalisation:
    """Means and standard deviations of conditions and observables (from the training set)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x_mean, self.x_std = x.mean(0).astype(np.float32), np.maximum(x.std(0), 1e-6).astype(np.float32)
        self.y_mean, self.y_std = y.mean(0).astype(np.float32), np.maximum(y.std(0), 1e-6).astype(np.float32)


def export_numpy(gen, norm: Normalisation, noise_dim: int, path: str | Path) -> None:
    """Write the generator ``gen`` (torch Sequential) and ``norm`` to ``path`` (.npz)."""
    linears = [layer for layer in gen if hasattr(layer, "weight")]
    arrays = {"x_mean": norm.x_mean, "x_std": norm.x_std, "y_mean": norm.y_mean, "y_std": norm.y_std,
              "noise_dim": np.int64(noise_dim), "n_layers": np.int64(len(linears))}
    for i, layer in enumerate(linears):
        arrays[f"w{i}"] = layer.weight.detach().numpy().T.astype(np.float32).copy()
        arrays[f"b{i}"] = layer.bias.detach().numpy().astype(np.float32).copy()
    np.savez(path, **arrays)


class NumpyGenerator:
    """The exported generator: :meth:`generate` maps conditions to observables with numpy only.

    :param path: the ``.npz`` written by :func:`export_numpy`.
    :raises InputError: the file is missing or is not a generator of this plugin's shape.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"fastsim: generator file {self.path} not found (train one with "
                             f"'trackcore train fastsim_gan')")
        try:
            with np.load(self.path) as z:
                data = {k: z[k] for k in z.files}
        except Exception as exc:  # a truncated or foreign file
            raise InputError(f"fastsim: cannot read generator file {self.path}: {exc}") from exc
        missing = [k for k in NPZ_KEYS if k not in data]
        if missing:
            raise InputError(f"fastsim: {self.path} lacks {', '.join(missing)}; not a fastsim_gan generator")
        self.noise_dim = int(data["noise_dim"])
        n_layers = int(data["n_layers"])
        self.weights = [(data[f"w{i}"], data[f"b{i}"]) for i in range(n_layers)]
        self.x_mean, self.x_std = data["x_mean"], data["x_std"]
        self.y_mean, self.y_std = data["y_mean"], data["y_std"]
        if self.weights[0][0].shape[0] != N_CONDITIONS + self.noise_dim or self.weights[-1][0].shape[1] != N_OBSERVABLES:
            raise InputError(f"fastsim: {self.path} maps {self.weights[0][0].shape[0]} inputs to "
                             f"{self.weights[-1][0].shape[1]} outputs; expected {N_CONDITIONS} conditions + "
                             f"{self.noise_dim} noise -> {N_OBSERVABLES} observables")
        # Normalisation folded into the first and last layers, so inference is the matrix products alone:
        # ((x - mean) / std) @ W = x @ (W / std) - (mean / std) @ W, and y * std + mean likewise.
        w0, b0 = self.weights[0]
        wx = w0[:N_CONDITIONS].astype(np.float64)
        folded = [(np.concatenate([wx / self.x_std[:, None], w0[N_CONDITIONS:]]),
                   b0 - (self.x_mean / self.x_std).astype(np.float64) @ wx), *self.weights[1:]]
        wl, bl = folded[-1]
        folded[-1] = (wl * self.y_std[None, :], bl * self.y_std + self.y_mean)
        self._folded = [(np.ascontiguousarray(w, np.float32), np.asarray(b, np.float32)) for w, b in folded]

    def forward(self, x: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Raw observables (float32, before rounding) of conditions ``x`` (N, C) and noise (N, noise_dim)."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != N_CONDITIONS:
            raise InputError(f"fastsim: conditions must have shape (N, {N_CONDITIONS}), got {x.shape}")
        noise = np.asarray(noise, np.float32)
        if noise.shape != (len(x), self.noise_dim):
            raise InputError(f"fastsim: noise must have shape ({len(x)}, {self.noise_dim}), got {noise.shape}")
        with _one_blas_thread():
            return self._layers(np.concatenate([x, noise], axis=1))

    def _layers(self, h: np.ndarray) -> np.ndarray:
        for i, (w, b) in enumerate(self._folded):
            h = h @ w
            h += b
            if i < len(self._folded) - 1:
                np.maximum(h, LEAK * h, out=h)
        return h

    def generate_raw(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, :data:`N_OBSERVABLES`) float32 observables, integer ones not yet rounded (the renderer rounds)."""
        return self.forward(x, rng.standard_normal((len(x), self.noise_dim), dtype=np.float32))

    def generate(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, :data:`N_OBSERVABLES`) float64 observables, integer ones rounded (see :mod:`.clusters`)."""
        y = self.generate_raw(x, rng).astype(np.float64)
        y[:, INTEGER_OBSERVABLES] = np.rint(y[:, INTEGER_OBSERVABLES])
        return y


_CONTROLLER: list = []


def _one_blas_thread():
    """Limit BLAS to one thread (threadpoolctl, when installed): for these thin matrices OpenBLAS's
    threads cost more than they save, several times more on a busy machine. The controller is made
    once: making one scans the loaded libraries (~0.5 ms a call)."""
    import contextlib

    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    ctl = _CONTROLLER[0]
    return contextlib.nullcontext() if ctl is None else ctl.limit(limits=1, user_api="blas")
