"""Worker threads of the compiled kernels: an execution setting, like the backend.

The seeding and the CKF of the ``cpu`` backend split their work over threads and join the results
in a fixed order, so their output is the same for every thread count. ``None`` or 0 means one
thread per CPU this process may run on; the ``numpy`` reference always runs on one.
"""
from __future__ import annotations

import os

from ..errors import InputError

#: Most worker threads a kernel takes (the compiled core's limit too).
MAX_THREADS = 1024


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which a batch system or container sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_threads(threads: int | None) -> int:
    """The thread count a kernel gets: ``threads``, or :func:`usable_cpus` for None or 0."""
    if threads is None:
        return usable_cpus()
    import numpy as np

    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or not 0 <= threads <= MAX_THREADS:
        raise InputError(f"threads = {threads!r} must be an integer in [0, {MAX_THREADS}] (0 or None: one per CPU)")
    return int(threads) or usable_cpus()
