"""Backends: one array namespace and one kernel table each, chosen by one word.

``numpy`` is the readable reference, ``cpu`` runs the compiled core, ``cupy`` runs on a GPU.
Choose per call (``backend="cpu"``), per block (``with trackcore.use_backend("cupy"):``) or for
the process (environment variable ``TRACKCORE_BACKEND``). The default is ``cpu`` when the
compiled core is built, else ``numpy``.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import BackendError

ENV_VAR = "TRACKCORE_BACKEND"
BACKEND_NAMES = ("numpy", "cpu", "cupy")


@dataclass
class Backend:
    """An array namespace (``xp``) plus a table of named kernels with the same signatures across backends."""

    name: str
    xp: object
    kernels: dict[str, Callable] = field(default_factory=dict)

    def kernel(self, name: str) -> Callable:
        try:
            return self.kernels[name]
        except KeyError:
            raise BackendError(
                f"backend {self.name!r} has no kernel {name!r} (it has: {', '.join(sorted(self.kernels))})"
            ) from None

    def asarray(self, a):
        """Move an array onto this backend's device."""
        return self.xp.asarray(a)

    def to_numpy(self, a):
        """Bring an array back to host numpy."""
        return a.get() if hasattr(a, "get") else a

    def __repr__(self) -> str:
        return f"<trackcore backend {self.name!r}: {len(self.kernels)} kernels>"


_loaded: dict[str, Backend] = {}
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("trackcore_backend", default=None)


def _load(name: str) -> Backend:
    if name not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name not in _loaded:
        if name == "numpy":
            from .numpy_backend import make_backend
        elif name == "cpu":
            from .cpu_backend import make_backend
        else:
            from .cupy_backend import make_backend
        _loaded[name] = make_backend()
    return _loaded[name]


def default_backend_name() -> str:
    env = os.environ.get(ENV_VAR)
    if env:
        if env not in BACKEND_NAMES:
            raise BackendError(f"{ENV_VAR}={env!r} is not a backend; choose one of {', '.join(BACKEND_NAMES)}")
        return env
    from .._corelib import core_available

    return "cpu" if core_available() else "numpy"


def get_backend(name: str | Backend | None = None) -> Backend:
    """The backend named, else the one of the enclosing :func:`use_backend`, else the default."""
    if isinstance(name, Backend):
        return name
    return _load(name or _current.get() or default_backend_name())


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Backend]:
    """Run the enclosed block on backend ``name`` (checked and loaded on entry)."""
    backend = _load(name)
    token = _current.set(name)
    try:
        yield backend
    finally:
        _current.reset(token)


def available_backends() -> dict[str, str]:
    """Each backend name mapped to ``"ok"`` or the reason it cannot be used here."""
    out = {}
    for name in BACKEND_NAMES:
        try:
            _load(name)
            out[name] = "ok"
        except (BackendError, ImportError) as exc:
            out[name] = str(exc)
    return out


__all__ = ["Backend", "BACKEND_NAMES", "available_backends", "default_backend_name", "get_backend", "use_backend"]
