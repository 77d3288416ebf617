"""Worker threads of the compiled kernels: an execution setting, like the backend.

The seeding, the CKF and the transport of the ``cpu`` backend split their work over threads and
join the results in a fixed order, so their output is the same for every thread count. ``None`` or
0 means the environment variable ``TRACKCORE_THREADS`` when it is set, else one thread per CPU this
process may run on; the ``numpy`` reference always runs on one.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import InputError

#: Most worker threads a kernel takes (the compiled core's limit too).
MAX_THREADS = 1024
#: Environment variable giving the default thread count (e.g. 1 for benchmarks on one thread).
ENV_VAR = "TRACKCORE_THREADS"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which a batch system or container sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """The thread count of ``threads`` None or 0: ``TRACKCORE_THREADS`` if set (0: one per CPU), else
    :func:`usable_cpus`."""
    env = os.environ.get(ENV_VAR)
    if env is None or not env.strip():
        return usable_cpus()
    try:
        n = int(env)
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_THREADS:
        raise InputError(f"{ENV_VAR}={env!r} must be an integer in [0, {MAX_THREADS}] (0: one per CPU)")
    return n or usable_cpus()


def resolve_threads(threads: int | None) -> int:
    """The thread count a kernel gets: ``threads``, or :func:`default_threads` for None or 0."""
    if threads is None:
        return default_threads()
    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or not 0 <= threads <= MAX_THREADS:
        raise InputError(f"threads = {threads!r} must be an integer in [0, {MAX_THREADS}] (0 or None: "
                         f"{ENV_VAR}, else one per CPU)")
    return int(threads) or default_threads()
