"""The fastsim networks' dense layers on every instruction-set path this CPU has (portable, AVX2/FMA,
AVX-512): the fused kernel picks the widest at run time, so without this a machine with AVX-512
would never run the AVX2 code that CI machines without it rely on."""
from __future__ import annotations

import numpy as np
import pytest

core = pytest.importorskip("trackcore._core", reason="compiled core not built")


def _reference(x, w, b, row_bias, act, leak):
    y = x.astype(np.float64) @ w.astype(np.float64) + b
    if row_bias is not None:
        y = y + row_bias
    return np.maximum(y, leak * y) if act else y


@pytest.mark.parametrize("isa", range(core.fastsim_dense_isa() + 1))
@pytest.mark.parametrize("rows,n_in,n_out", [(1, 14, 32), (3, 32, 24), (64, 18, 64), (130, 64, 64), (67, 64, 3),
                                             (5, 7, 70), (9, 64, 8), (4, 3, 17)])
def test_dense_paths_match_numpy(isa, rows, n_in, n_out):
    rng = np.random.default_rng(rows * 1000 + n_in * 10 + n_out)
    x = rng.normal(size=(rows, n_in)).astype(np.float32)
    w = rng.normal(size=(n_in, n_out)).astype(np.float32)
    b = rng.normal(size=n_out).astype(np.float32)
    rb = rng.normal(size=(rows, n_out)).astype(np.float32)
    for row_bias in (None, rb):
        for act in (False, True):
            got = core.fastsim_dense(x, w, b, row_bias, act, 0.2, isa)
            want = _reference(x, w, b, row_bias, act, 0.2)
            assert got.shape == (rows, n_out) and got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.sqrt(n_in))


def test_dense_paths_agree_and_refuse_what_the_cpu_lacks():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(100, 64)).astype(np.float32)
    w = rng.normal(size=(64, 64)).astype(np.float32)
    b = np.zeros(64, np.float32)
    best = core.fastsim_dense_isa()
    outs = [core.fastsim_dense(x, w, b, None, True, 0.2, isa) for isa in range(best + 1)]
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="not available on this CPU"):
        core.fastsim_dense(x, w, b, None, True, 0.2, best + 1)
    with pytest.raises(ValueError, match="w"):
        core.fastsim_dense(x, w[:5], b)
    with pytest.raises(ValueError, match="row_bias"):
        core.fastsim_dense(x, w, b, np.zeros((3, 64), np.float32))
