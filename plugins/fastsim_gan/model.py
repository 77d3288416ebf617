"""The generator: a categorical head for the integer observables, then a conditional GAN for the rest.

* Classifier (MLP, trained by maximum likelihood): conditions -> logits over :data:`N_CLASSES`-ish
  joint classes of (d_width_u, d_width_v, d_size), the most frequent combinations of the training set
  (rarer ones are folded into the nearest class). The class is sampled from its softmax.
* Generator (MLP, trained as a GAN against an MLP critic): conditions + the sampled class (one-hot,
  i.e. one row of the first layer's weights added as a bias) + uniform noise -> log_charge, res_u,
  res_v. Trained with the true class of each cluster, so together p(integers | c) p(rest | c, integers).

Randomness is counter based (:func:`hash_uniforms`: splitmix64 of seed and crossing row), so the
numpy reference here and the compiled ``fastsim_generate`` kernel draw the same numbers. Inference
needs no PyTorch: :func:`export_numpy` writes weights and normalisation to a ``.npz`` that
:class:`NumpyGenerator` runs with float32 matrix products (one batch per event).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trackcore.errors import InputError

from .clusters import N_CONDITIONS, N_OBSERVABLES

#: Leaky-ReLU slope of all networks.
LEAK = 0.2
#: Observables the classifier makes (integers) and the GAN generator makes (continuous).
INTEGER_COLUMNS, CONTINUOUS_COLUMNS = (0, 1, 2), (3, 4, 5)
#: Noise: uniform on [-sqrt 3, sqrt 3) (unit variance) in 2^16 steps, four values from one 64-bit hash.
NOISE_DIM = 4
NOISE_HALF_WIDTH = float(np.sqrt(3.0))
#: Format of the exported ``.npz`` (1: the plain GAN of earlier versions, not loadable any more).
FORMAT = 2
NPZ_KEYS = ("format", "x_mean", "x_std", "y_mean", "y_std", "classes", "n_class_layers", "n_gen_layers")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mlp(sizes: list[int]):
    import torch

    layers: list = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.LeakyReLU(LEAK))
    return torch.nn.Sequential(*layers)


def make_networks(hidden: tuple[int, ...], critic_hidden: tuple[int, ...], n_classes: int,
                  class_hidden: tuple[int, ...] | None = None):
    """(classifier, generator, critic) torch modules; inputs standardised outside (see :class:`Normalisation`).

    classifier: conditions -> class logits; generator: conditions + one-hot class + noise -> the three
    continuous observables; critic: conditions + integer + continuous observables -> logit.
    """
    n_cont = len(CONTINUOUS_COLUMNS)
    classifier = _mlp([N_CONDITIONS, *(hidden if class_hidden is None else class_hidden), n_classes])
    gen = _mlp([N_CONDITIONS + n_classes + NOISE_DIM, *hidden, n_cont])
    critic = _mlp([N_CONDITIONS + len(INTEGER_COLUMNS) + n_cont, *critic_hidden, 1])
    return classifier, gen, critic


def integer_classes(y: np.ndarray, max_classes: int, min_count: int = 5) -> np.ndarray:
    """(K, 3) int64 joint classes of the rounded integer observables of ``y``: the most frequent
    combinations seen at least ``min_count`` times, at most ``max_classes``, (0, 0, 0) always first."""
    yi = np.rint(y[:, list(INTEGER_COLUMNS)]).astype(np.int64)
    combos, counts = np.unique(yi, axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    keep = [c for c in combos[order][counts[order] >= min_count][:max_classes]]
    zero = np.zeros(3, np.int64)
    keep = [zero] + [c for c in keep if c.any()][:max_classes - 1]
    return np.array(keep, np.int64)


def class_of(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class row of each observable row: its own combination, else the nearest class (L1)."""
    yi = np.rint(y[:, list(INTEGER_COLUMNS)]).astype(np.int64)
    d = np.abs(yi[:, None, :] - classes[None, :, :]).sum(2)
    return np.argmin(d, axis=1)


class Normalisation:
    """Means and standard deviations of conditions and of the continuous observables (training set)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        yc = y[:, list(CONTINUOUS_COLUMNS)]
        self.x_mean, self.x_std = x.mean(0).astype(np.float32), np.maximum(x.std(0), 1e-6).astype(np.float32)
        self.y_mean, self.y_std = yc.mean(0).astype(np.float32), np.maximum(yc.std(0), 1e-6).astype(np.float32)


def export_numpy(classifier, gen, classes: np.ndarray, norm: Normalisation, path: str | Path) -> None:
    """Write the torch ``classifier`` and ``gen`` (Sequentials), ``classes`` and ``norm`` to ``path`` (.npz)."""
    arrays = {"format": np.int64(FORMAT), "x_mean": norm.x_mean, "x_std": norm.x_std, "y_mean": norm.y_mean,
              "y_std": norm.y_std, "classes": np.asarray(classes, np.int64)}
    for prefix, net in (("c", classifier), ("g", gen)):
        linears = [layer for layer in net if hasattr(layer, "weight")]
        arrays["n_class_layers" if prefix == "c" else "n_gen_layers"] = np.int64(len(linears))
        for i, layer in enumerate(linears):
            arrays[f"{prefix}_w{i}"] = layer.weight.detach().numpy().T.astype(np.float32).copy()
            arrays[f"{prefix}_b{i}"] = layer.bias.detach().numpy().astype(np.float32).copy()
    np.savez(path, **arrays)


def hash_uniforms(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Counter-based random numbers of crossings 0..n-1: ((n, 4) float32 noise, uniform on
    [-sqrt 3, sqrt 3) in 2^16 steps; (n,) float64 uniforms in (0, 1) in 2^24 steps for the class).

    splitmix64 of ``seed + (2 i + k) * golden`` (k = 0: noise, 1: class); the compiled kernel does the same.
    """
    i = np.arange(n, dtype=np.uint64)
    base = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        h_noise = _splitmix64(base + (i * np.uint64(2)) * _GOLDEN)
        h_class = _splitmix64(base + (i * np.uint64(2) + np.uint64(1)) * _GOLDEN)
    z = np.empty((n, NOISE_DIM), np.float32)
    for k in range(NOISE_DIM):
        bits = ((h_noise >> np.uint64(16 * k)) & np.uint64(0xFFFF)).astype(np.float32)
        z[:, k] = (bits + np.float32(0.5)) * np.float32(2.0 * NOISE_HALF_WIDTH / 65536.0) - np.float32(NOISE_HALF_WIDTH)
    u = ((h_class >> np.uint64(40)).astype(np.float64) + 0.5) * 2.0 ** -24
    return z, u


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class NumpyGenerator:
    """The exported model: :meth:`generate` maps conditions to observables with numpy only.

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
            raise InputError(f"fastsim: {self.path} lacks {', '.join(missing)}; not a fastsim_gan generator "
                             f"of format {FORMAT} (retrain with 'trackcore train fastsim_gan')")
        self.classes = data["classes"].astype(np.int64)
        k = len(self.classes)
        cls = [(data[f"c_w{i}"], data[f"c_b{i}"]) for i in range(int(data["n_class_layers"]))]
        gen = [(data[f"g_w{i}"], data[f"g_b{i}"]) for i in range(int(data["n_gen_layers"]))]
        n_cont = len(CONTINUOUS_COLUMNS)
        if (self.classes.ndim != 2 or self.classes.shape[1] != 3 or cls[0][0].shape[0] != N_CONDITIONS
                or cls[-1][0].shape[1] != k or gen[0][0].shape[0] != N_CONDITIONS + k + NOISE_DIM
                or gen[-1][0].shape[1] != n_cont):
            raise InputError(f"fastsim: {self.path}: layer shapes do not fit {N_CONDITIONS} conditions, {k} classes, "
                             f"{NOISE_DIM} noise and {n_cont} continuous observables")
        x_mean, x_std = data["x_mean"].astype(np.float64), data["x_std"].astype(np.float64)
        y_mean, y_std = data["y_mean"].astype(np.float64), data["y_std"].astype(np.float64)
        # Normalisation folded into the first and last layers, so inference is the matrix products alone:
        # ((x - mean) / std) @ W = x @ (W / std) - (mean / std) @ W, and y * std + mean likewise.
        def fold_input(w, b):
            wx = w[:N_CONDITIONS].astype(np.float64)
            return np.concatenate([wx / x_std[:, None], w[N_CONDITIONS:]]), b - (x_mean / x_std) @ wx

        cls[0] = fold_input(*cls[0])
        gen[0] = fold_input(*gen[0])
        wl, bl = gen[-1]
        gen[-1] = (wl * y_std[None, :], bl * y_std + y_mean)
        f32 = lambda layers: [(np.ascontiguousarray(w, np.float32), np.ascontiguousarray(b, np.float32))
                              for w, b in layers]
        self.class_layers = f32(cls)
        w0, b0 = gen[0]
        #: Generator's first layer split into conditions+noise rows and the per-class rows (added as a bias).
        self.embed = np.ascontiguousarray(w0[N_CONDITIONS:N_CONDITIONS + k], np.float32)
        self.gen_layers = f32([(np.concatenate([w0[:N_CONDITIONS], w0[N_CONDITIONS + k:]]), b0), *gen[1:]])
        self.classes_f32 = np.ascontiguousarray(self.classes, np.float32)

    def compiled_arguments(self) -> tuple:
        """The folded arrays in the order of the compiled ``fastsim_generate`` kernel's model arguments."""
        return ([w for w, _ in self.class_layers], [b for _, b in self.class_layers], self.embed,
                [w for w, _ in self.gen_layers], [b for _, b in self.gen_layers], self.classes_f32)

    def forward(self, x: np.ndarray, noise: np.ndarray, u: np.ndarray) -> np.ndarray:
        """(N, 6) float32 observables of conditions ``x`` (N, 14), ``noise`` (N, 4) and class uniforms ``u`` (N,)."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != N_CONDITIONS:
            raise InputError(f"fastsim: conditions must have shape (N, {N_CONDITIONS}), got {x.shape}")
        noise = np.asarray(noise, np.float32)
        if noise.shape != (len(x), NOISE_DIM) or np.shape(u) != (len(x),):
            raise InputError(f"fastsim: noise must have shape ({len(x)}, {NOISE_DIM}) and class uniforms "
                             f"({len(x)},), got {noise.shape} and {np.shape(u)}")
        with _one_blas_thread():
            logits = _layers(x, self.class_layers)
            k = sample_classes(logits, np.asarray(u, np.float64))
            h = np.concatenate([x, noise], axis=1)
            out = np.empty((len(x), N_OBSERVABLES), np.float32)
            out[:, list(CONTINUOUS_COLUMNS)] = _layers(h, self.gen_layers, first_bias=self.embed[k])
        out[:, list(INTEGER_COLUMNS)] = self.classes_f32[k]
        return out

    def generate_seeded(self, x: np.ndarray, seed: int) -> np.ndarray:
        """(N, 6) float32 observables with the counter-based noise of ``seed`` (what the compiled kernel gives)."""
        z, u = hash_uniforms(len(x), seed)
        return self.forward(x, z, u)

    def generate_raw(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, :data:`N_OBSERVABLES`) float32 observables; the noise seed is drawn from ``rng``."""
        return self.generate_seeded(x, draw_seed(rng))

    def generate(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, :data:`N_OBSERVABLES`) float64 observables (integer ones are whole numbers already)."""
        return self.generate_raw(x, rng).astype(np.float64)


def draw_seed(rng: np.random.Generator) -> int:
    """The 63-bit noise seed of one event from its random generator."""
    return int(rng.integers(0, 2 ** 63 - 1))


def sample_classes(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Class index per row by inverse CDF of softmax(``logits``) (float32 sums, as the compiled kernel) at ``u``."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    cum = np.cumsum(p, axis=1, dtype=np.float32)
    k = (cum < (u * cum[:, -1].astype(np.float64))[:, None]).sum(1)
    return np.minimum(k, logits.shape[1] - 1)


def _layers(h: np.ndarray, layers: list, first_bias: np.ndarray | None = None) -> np.ndarray:
    for i, (w, b) in enumerate(layers):
        h = h @ w
        h += b
        if i == 0 and first_bias is not None:
            h += first_bias
        if i < len(layers) - 1:
            np.maximum(h, LEAK * h, out=h)
    return h


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
