"""Kernel ``kalman_update`` on the GPU: the 2-D measurement update of many tracks at once.

Bound parameters (loc0, loc1 mm, phi, theta rad, q/p 1/GeV) and 5x5 covariances; the math is
trackcore/kalman_math.hpp, the same as the compiled CKF. Numpy twin:
:func:`trackcore.backends.cupy_kernels.reference.kalman_update_numpy`.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError
from . import inputs, outputs


def kalman_update(params, cov, meas, var, dry_run: bool = False, *, runtime):
    """Update ``params`` (N, 5) and ``cov`` (N, 5, 5) with measurements ``meas`` (N, 2) mm of
    variances ``var`` (N, 2) mm^2. Returns ``(params, cov, chi2)`` as new arrays (inputs untouched);
    chi2 is 1e30 and the state unchanged where the residual covariance is not positive definite.
    With ``dry_run`` only chi2 is computed and the state is returned unchanged."""
    rt = runtime
    host, (p, c, m, v) = inputs(rt, params, cov, meas, var, dtype=np.float64)
    n = len(p)
    for name, a, shape in (("params", p, (n, 5)), ("cov", c, (n, 5, 5)), ("meas", m, (n, 2)), ("var", v, (n, 2))):
        if a.shape != shape:
            raise InputError(f"kalman_update: {name} has shape {a.shape}, expected {shape}")
    p, c = p.copy(), c.copy()
    chi2 = rt.xp.empty(n, rt.xp.float64)
    rt.launch(rt.function("kalman", "tc_kalman_update"), n, (np.int64(n), p, c, m, v, np.int32(bool(dry_run)), chi2))
    return outputs(rt, host, p, c, chi2)
