"""Array helpers for code that runs on host numpy arrays and on device (CuPy) arrays alike.

The reconstruction chain keeps its arrays where its backend's kernels want them: host numpy arrays
for ``numpy`` and ``cpu``, device arrays for ``cupy``. Functions on the chain take their array
namespace from their inputs (:func:`namespace_of`) and never convert implicitly; moving data is
explicit: :func:`to_host`, and ``xp.asarray`` of host data.
"""
from __future__ import annotations

import numpy as np


def namespace_of(*arrays):
    """The array namespace of ``arrays``: CuPy (or the test suite's device model) when one of them is a
    device array, else numpy."""
    for a in arrays:
        ns = getattr(type(a), "trackcore_namespace", None)
        if ns is not None:
            return ns.__get__(a)
        if type(a).__module__.split(".")[0] == "cupy":
            import cupy

            return cupy
    return np


def is_device(a) -> bool:
    """Whether ``a`` is a device array (CuPy's, or the device model's)."""
    return namespace_of(a) is not np


def to_host(a):
    """``a`` as a host numpy array (a copy from the device for device arrays; ``a`` itself otherwise)."""
    return a.get() if is_device(a) else a


def repeat_index(counts, xp=np):
    """``np.repeat(np.arange(len(counts)), counts)`` with the counts an array of ``xp`` (CuPy's repeat
    takes host counts only): the row of each output position, by binary search in the running total."""
    ends = xp.cumsum(counts)
    total = int(ends[-1]) if len(counts) else 0
    return xp.searchsorted(ends, xp.arange(total, dtype=ends.dtype), side="right")


def detector_array(detector, name: str, xp):
    """``detector.<name>`` on ``xp``'s device: uploaded once per detector and namespace, then kept."""
    value = getattr(detector, name)
    if xp is np:
        return value
    cache = detector.cached_view("device_arrays", lambda _: {})
    key = (id(xp), name)
    if key not in cache:
        cache[key] = xp.asarray(value)
    return cache[key]
